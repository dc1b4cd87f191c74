// The entry points' shared flag parsing: VSO's --backoff-* flags and their env twins, and the client
// cache's bound and namespace quota (the operator and the CSI driver read them alike), and the logger.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { VSO_SOURCE_BACKOFF } from '../../../src/backoff.ts';
import { clientCacheOptions, secretSafeLogger, sourceBackoff } from '../../../src/cli/common.ts';
import { classify, errorFor } from '../../../src/controllers/outcome.ts';
import { CODES, FerryError } from '../../../src/errors.ts';

describe('sourceBackoff (--backoff-*)', () => {
  it("keeps VSO's defaults when nothing is set", () => {
    assert.deepEqual(sourceBackoff({}, {}), VSO_SOURCE_BACKOFF);
  });

  it('reads flags (Go durations), falling back to the VSO_BACKOFF_* env', () => {
    const p = sourceBackoff(
      {
        'backoff-initial-interval': '1m30s',
        'backoff-max-interval': '2h',
        'backoff-multiplier': '2.00',
        'backoff-randomization-factor': '0.25',
      },
      { VSO_BACKOFF_MAX_ELAPSED_TIME: '10m', VSO_BACKOFF_MULTIPLIER: '3' },
    );
    assert.equal(p.initialMs, 90_000);
    assert.equal(p.maxMs, 7_200_000);
    assert.equal(p.maxElapsedMs, 600_000);
    assert.equal(p.multiplier, 2);
    assert.equal(p.jitter, 0.25);
    assert.equal(p.jitterMode, 'spread');
  });

  it('refuses nonsense with a config error naming the flag', () => {
    for (const [flags, name] of [
      [{ 'backoff-initial-interval': '5 seconds' }, 'backoff-initial-interval'],
      [{ 'backoff-initial-interval': '0s' }, 'backoff-initial-interval'],
      [{ 'backoff-multiplier': '0.5' }, 'backoff-multiplier'],
      [{ 'backoff-randomization-factor': '1.5' }, 'backoff-randomization-factor'],
      [{ 'backoff-initial-interval': '2m', 'backoff-max-interval': '1m' }, 'backoff-'],
    ] as const) {
      assert.throws(
        () => sourceBackoff(flags, {}),
        (e: Error & { code?: string }) => e.code === 'FERRY_ERR_INVALID_CONFIG' && e.message.includes(name),
      );
    }
  });
});

describe('clientCacheOptions (--client-cache-size, --client-cache-namespace-quota)', () => {
  it('defaults to 10000 and no quota of its own (the cache takes a tenth)', () => {
    assert.deepEqual(clientCacheOptions({}, {}), { clientCacheSize: 10_000 });
  });

  it('reads flags, falling back to the env twins; ignores what is not a positive integer', () => {
    assert.deepEqual(
      clientCacheOptions({ 'client-cache-size': '50', 'client-cache-namespace-quota': '5' }, {}),
      { clientCacheSize: 50, clientCacheNamespaceQuota: 5 },
    );
    assert.deepEqual(
      clientCacheOptions({}, { VSO_CLIENT_CACHE_SIZE: '40', FERRY_CLIENT_CACHE_NAMESPACE_QUOTA: '4' }),
      { clientCacheSize: 40, clientCacheNamespaceQuota: 4 },
    );
    for (const bad of ['0', '-1', '1.5', 'x', ''])
      assert.deepEqual(
        clientCacheOptions({ 'client-cache-size': bad, 'client-cache-namespace-quota': bad }, {}),
        { clientCacheSize: 10_000 },
      );
  });
});

describe('secretSafeLogger', () => {
  /** The `err.message` the logger writes for `err`. */
  const logged = (err: unknown): string => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    secretSafeLogger('info', sink).error({ err }, 'reconciler error');
    return JSON.parse(lines[0]!).err.message;
  };

  it('says a wrapped error once: a terminal outcome keeps its cause with the same message', () => {
    const cause = new FerryError(CODES.INVALID_CONFIG, 'duration "9999999h" is too large');
    const err = errorFor(cause, classify(cause, 'spec'));
    assert.notEqual(err, cause);
    assert.equal(logged(err), 'duration "9999999h" is too large');
  });

  it('skips a cause whose message the wrapper already holds, and keeps what a cause adds', () => {
    const inner = new Error('connect ECONNREFUSED 127.0.0.1:1');
    const k8s = new FerryError(CODES.K8S_TRANSPORT, `GET /api/v1/secrets: ${inner.message}`, {
      cause: inner,
    });
    assert.equal(logged(k8s), 'GET /api/v1/secrets: connect ECONNREFUSED 127.0.0.1:1');
    const outer = new FerryError(CODES.VAULT_AUTH, 'login failed', { cause: k8s });
    assert.equal(logged(outer), 'login failed: GET /api/v1/secrets: connect ECONNREFUSED 127.0.0.1:1');
  });

  it('stops at a circular cause', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    assert.equal(logged(a), 'a: b');
  });
});
