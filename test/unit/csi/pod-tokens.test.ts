// The pod's kubelet-issued tokens: strict, bounded parsing of hostile volume contexts, the choice
// of audience for a VaultAuth, and the per-target store the Vault sessions re-login from.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CsiError, toCsiError } from '../../../src/csi/errors.ts';
import {
  MAX_AUDIENCES,
  MAX_TOKENS_JSON_BYTES,
  type PodTokenSet,
  PodTokens,
  parsePodTokens,
  pickPodToken,
} from '../../../src/csi/pod-tokens.ts';
import { CODES, FerryError, isFerryError } from '../../../src/errors.ts';

const T0 = Date.parse('2030-01-01T00:00:00Z');
const at = (ms: number) => new Date(ms).toISOString();
const ctx = (tokens: Record<string, { token: string; exp?: number }>) =>
  JSON.stringify(
    Object.fromEntries(
      Object.entries(tokens).map(([a, t]) => [
        a,
        { token: t.token, ...(t.exp !== undefined ? { expirationTimestamp: at(t.exp) } : {}) },
      ]),
    ),
  );
const invalid = (raw: string) =>
  assert.throws(
    () => parsePodTokens(raw),
    (e: unknown) => e instanceof CsiError && e.code === 'INVALID_ARGUMENT' && !e.message.includes('SECRET'),
  );

describe('parsePodTokens', () => {
  it('reads kubelet’s JSON: tokens by audience, with their expiry', () => {
    const set = parsePodTokens(
      ctx({ 'csi.vso.hashicorp.com': { token: 'a.b.c', exp: T0 }, '': { token: 'd.e.f', exp: T0 + 1000 } }),
    );
    assert.deepEqual([...set.keys()], ['csi.vso.hashicorp.com', '']);
    assert.deepEqual(set.get(''), { token: 'd.e.f', expiresAtMs: T0 + 1000 });
    assert.equal(
      parsePodTokens('{"v":{"token":"x","expirationTimestamp":"2030-01-01T00:00:00.5+01:00"}}').get('v')
        ?.expiresAtMs,
      T0 - 3_600_000 + 500,
    );
    // kubelet always sends the expiry; without one the token never counts as expired.
    assert.equal(parsePodTokens('{"v":{"token":"x"}}').get('v')?.expiresAtMs, Number.POSITIVE_INFINITY);
  });

  it('refuses malformed and hostile input with INVALID_ARGUMENT, never quoting a token', () => {
    for (const raw of [
      'not json SECRET',
      'null',
      '[]',
      '"SECRET"',
      '{"v":null}',
      '{"v":[]}',
      '{"v":"SECRET"}',
      '{"v":{}}',
      '{"v":{"token":""}}',
      '{"v":{"token":42}}',
      '{"v":{"token":"SECRET with space"}}',
      '{"v":{"token":"SECRET\\u0000"}}',
      '{"v":{"token":"SECRET","expirationTimestamp":"tomorrow"}}',
      '{"v":{"token":"SECRET","expirationTimestamp":1893456000}}',
      '{"v":{"token":"SECRET","expirationTimestamp":"2030-02-31T00:00:00Z junk"}}',
      `{"${'a'.repeat(300)}":{"token":"SECRET"}}`,
      '{"\\u0000":{"token":"SECRET"}}',
      `{"v":{"token":"${'S'.repeat(17 * 1024)}"}}`,
    ])
      invalid(raw);
  });

  it('bounds what it parses: size and number of audiences', () => {
    invalid(`{"v":{"token":"x","pad":"${'x'.repeat(MAX_TOKENS_JSON_BYTES)}"}}`);
    const many = Object.fromEntries(
      Array.from({ length: MAX_AUDIENCES + 1 }, (_, i) => [`a${i}`, { token: 't' }]),
    );
    invalid(JSON.stringify(many));
    // Deep nesting is refused by size before JSON.parse could recurse through it.
    invalid('['.repeat(MAX_TOKENS_JSON_BYTES + 1));
  });

  it('a __proto__ audience is an audience like any other, not a prototype', () => {
    const set = parsePodTokens('{"__proto__":{"token":"x"}}');
    assert.equal(set.get('__proto__')?.token, 'x');
  });

  it('never throws anything but INVALID_ARGUMENT, whatever the input', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json(),
          fc.jsonValue().map((v) => JSON.stringify({ a: v })),
        ),
        (raw) => {
          try {
            parsePodTokens(raw);
          } catch (e) {
            assert.ok(e instanceof CsiError && e.code === 'INVALID_ARGUMENT', String(e));
          }
        },
      ),
    );
  });
});

describe('pickPodToken', () => {
  const set: PodTokenSet = new Map([
    ['', { token: 'default', expiresAtMs: T0 + 600_000 }],
    ['vault', { token: 'vault', expiresAtMs: T0 + 600_000 }],
    ['old', { token: 'old', expiresAtMs: T0 - 1 }],
  ]);

  it('no VaultAuth audiences: the API server’s default audience ""', () => {
    assert.equal(pickPodToken(set, undefined, T0).token.token, 'default');
    assert.equal(pickPodToken(set, [], T0).token.token, 'default');
  });

  it('the first of the VaultAuth’s audiences kubelet issued a valid token for', () => {
    assert.equal(pickPodToken(set, ['vault'], T0).audience, 'vault');
    assert.equal(pickPodToken(set, ['missing', 'vault', ''], T0).audience, 'vault');
    assert.equal(pickPodToken(set, ['old', ''], T0).audience, '', 'an expired token is skipped');
  });

  it('a missing audience names the chart value to change; an expired one says kubelet renews it', () => {
    const err = (aud: string[], now = T0) => {
      try {
        pickPodToken(set, aud, now);
      } catch (e) {
        return e;
      }
      assert.fail('no error');
    };
    const missing = err(['https://vault.example.com']);
    assert.ok(isFerryError(missing) && missing.code === CODES.CSI_PRECONDITION);
    assert.match(
      String((missing as Error).message),
      /"https:\/\/vault\.example\.com".*csi\.driver\.tokenAudiences/,
    );
    // As kubelet sees it: FAILED_PRECONDITION, also when a login wrapped it.
    const wrapped = new FerryError(CODES.VAULT_AUTH, 'login failed', { cause: missing });
    assert.equal(toCsiError(wrapped).code, 'FAILED_PRECONDITION');
    assert.match(String((err(['old']) as Error).message), /expired/);
    assert.match(String((err(['vault'], T0 + 600_000) as Error).message), /expired/);
    for (const e of [missing, err(['old'])]) assert.ok(!String((e as Error).message).includes('default'));
  });
});

describe('PodTokens', () => {
  const sa = { namespace: 'ns', name: 'web' };
  const tokens = (token: string, expiresAtMs: number, audience = 'vault'): PodTokenSet =>
    new Map([[audience, { token, expiresAtMs }]]);

  it('keeps the newest token per target, serves the freshest of the ServiceAccount’s pods, forgets on unpublish', () => {
    let now = T0;
    const store = new PodTokens({ now: () => now, maxTargets: 10 });
    store.keep('/t1', sa, tokens('t1-a', T0 + 600_000));
    store.keep('/t1', sa, tokens('t1-stale', T0 + 100_000)); // a replayed older context does not win
    assert.equal(store.token(sa, ['vault']), 't1-a');
    store.keep('/t2', sa, tokens('t2', T0 + 900_000));
    assert.equal(store.token(sa, ['vault']), 't2');
    store.keep('/t3', { namespace: 'ns', name: 'other' }, tokens('other', T0 + 999_999));
    assert.equal(store.token(sa, ['vault']), 't2', 'another ServiceAccount’s token is never used');
    store.forget('/t2');
    assert.equal(store.token(sa, ['vault']), 't1-a');
    // A republish brings a fresh token; the old one expires.
    now = T0 + 700_000;
    assert.throws(() => store.token(sa, ['vault']), /expired/);
    store.keep('/t1', sa, tokens('t1-b', now + 600_000));
    assert.equal(store.token(sa, ['vault']), 't1-b');
    store.forget('/t1');
    store.forget('/t3');
    assert.equal(store.size, 0);
    assert.throws(
      () => store.token(sa, ['vault']),
      (e: unknown) =>
        isFerryError(e) && e.code === CODES.CSI_PRECONDITION && /next republish/.test(e.message),
    );
  });

  it('a target whose pod changed ServiceAccount keeps only the new one’s tokens', () => {
    const store = new PodTokens({ now: () => T0, maxTargets: 10 });
    store.keep('/t', sa, tokens('old-sa', T0 + 600_000, ''));
    store.keep('/t', { namespace: 'ns', name: 'next' }, tokens('new-sa', T0 + 600_000));
    assert.throws(() => store.token(sa, undefined));
    assert.equal(store.token({ namespace: 'ns', name: 'next' }, ['vault']), 'new-sa');
  });

  it('is bounded: expired targets go first, then the oldest', () => {
    let now = T0;
    const store = new PodTokens({ now: () => now, maxTargets: 3 });
    store.keep('/a', sa, tokens('a', T0 + 10));
    store.keep('/b', sa, tokens('b', T0 + 600_000));
    store.keep('/c', sa, tokens('c', T0 + 700_000));
    now = T0 + 20;
    store.keep('/d', sa, tokens('d', T0 + 500_000));
    assert.equal(store.size, 3);
    store.forget('/c');
    assert.equal(store.token(sa, ['vault']), 'b', '/a (expired) was dropped, /b kept');
    store.keep('/e', sa, tokens('e', T0 + 1));
    store.keep('/f', sa, tokens('f', T0 + 400_000));
    assert.equal(store.size, 3);
    for (let i = 0; i < 100; i++) store.keep(`/x${i}`, sa, tokens(`x${i}`, T0 + 800_000));
    assert.equal(store.size, 3);
  });
});
