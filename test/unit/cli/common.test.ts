// The entry points' shared flag parsing: VSO's --backoff-* flags and their env twins, and the client
// cache's bound and namespace quota (the operator and the CSI driver read them alike).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VSO_SOURCE_BACKOFF } from '../../../src/backoff.ts';
import { clientCacheOptions, sourceBackoff } from '../../../src/cli/common.ts';

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
