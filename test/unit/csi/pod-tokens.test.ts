// The pod's kubelet-issued tokens: strict, bounded parsing of hostile volume contexts, the choice
// of audience for a VaultAuth, and the per-target store the Vault sessions re-login from.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CsiError, toCsiError } from '../../../src/csi/errors.ts';
import {
  claimsMatch,
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

/** A JWT-shaped token with kubelet's claims (the signature is Vault's and the API server's business). */
const jwt = (ns: string, sa: string, podUid: string | undefined, tag: string): string => {
  const claims = {
    sub: `system:serviceaccount:${ns}:${sa}`,
    ...(podUid ? { 'kubernetes.io': { namespace: ns, pod: { name: 'p', uid: podUid } } } : {}),
    tag,
  };
  return `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;
};

describe('claimsMatch', () => {
  const pod = { namespace: 'ns', serviceAccount: 'web', uid: 'u1' };
  it('is the pod’s ServiceAccount and, when bound, the pod', () => {
    assert.equal(claimsMatch(jwt('ns', 'web', 'u1', 'x'), pod), true);
    assert.equal(claimsMatch(jwt('ns', 'web', undefined, 'x'), pod), true);
    assert.equal(claimsMatch(jwt('ns', 'web', 'u2', 'x'), pod), false, 'another pod');
    assert.equal(claimsMatch(jwt('ns', 'api', 'u1', 'x'), pod), false, 'another ServiceAccount');
    assert.equal(claimsMatch(jwt('other', 'web', 'u1', 'x'), pod), false, 'another namespace');
    for (const t of ['not-a-jwt', 'a.b.c', 'a..c', `a.${Buffer.from('[1]').toString('base64url')}.c`])
      assert.equal(claimsMatch(t, pod), false, t);
  });
});

describe('PodTokens', () => {
  const sa = { namespace: 'ns', name: 'web' };
  const DRIVER = 'csi.vso.hashicorp.com';
  const podOf = (uid: string, name = 'web') => ({ namespace: 'ns', serviceAccount: name, uid });
  const tokens = (
    tag: string,
    expiresAtMs: number,
    audience = 'vault',
    uid = 'u1',
    name = 'web',
  ): PodTokenSet => new Map([[audience, { token: jwt('ns', name, uid, tag), expiresAtMs }]]);
  const tagOf = (token: string) =>
    (JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as { tag: string }).tag;
  const store = (now: () => number, maxTargets = 10) =>
    new PodTokens({ now, maxTargets, driverAudience: DRIVER });

  it('keeps the newest token per target, serves the freshest of the ServiceAccount’s pods, forgets on unpublish', () => {
    let now = T0;
    const s = store(() => now);
    s.keep('/t1', podOf('u1'), tokens('t1-a', T0 + 600_000));
    s.keep('/t1', podOf('u1'), tokens('t1-stale', T0 + 100_000)); // a replayed older context does not win
    assert.equal(tagOf(s.token(sa, ['vault'])), 't1-a');
    s.keep('/t2', podOf('u2'), tokens('t2', T0 + 900_000, 'vault', 'u2'));
    assert.equal(tagOf(s.token(sa, ['vault'])), 't2');
    s.keep('/t3', podOf('u3', 'other'), tokens('other', T0 + 999_999, 'vault', 'u3', 'other'));
    assert.equal(tagOf(s.token(sa, ['vault'])), 't2', 'another ServiceAccount’s token is never used');
    s.forget('/t2');
    assert.equal(tagOf(s.token(sa, ['vault'])), 't1-a');
    // A republish brings a fresh token; the old one expires.
    now = T0 + 700_000;
    assert.throws(() => s.token(sa, ['vault']), /expired/);
    s.keep('/t1', podOf('u1'), tokens('t1-b', now + 600_000));
    assert.equal(tagOf(s.token(sa, ['vault'])), 't1-b');
    s.forget('/t1');
    s.forget('/t3');
    assert.equal(s.size, 0);
    assert.throws(
      () => s.token(sa, ['vault']),
      (e: unknown) =>
        isFerryError(e) && e.code === CODES.CSI_PRECONDITION && /next republish/.test(e.message),
    );
  });

  it('never keeps the driver’s own audience, nor a token whose claims are not the pod’s', () => {
    const s = store(() => T0);
    s.keep('/t', podOf('u1'), tokens('driver', T0 + 600_000, DRIVER));
    assert.throws(() => s.token(sa, [DRIVER]), /no token for audience "csi\.vso\.hashicorp\.com"/);
    s.keep('/t', podOf('u1'), tokens('other-pod', T0 + 600_000, 'vault', 'u9'));
    s.keep('/t', podOf('u1'), tokens('other-sa', T0 + 600_000, '', 'u1', 'api'));
    assert.throws(() => s.token(sa, ['vault', '']), /no token/);
  });

  it('the API server’s audience "" only where it may go', () => {
    const s = store(() => T0);
    s.keep('/t', podOf('u1'), tokens('api-audience', T0 + 600_000, ''));
    assert.equal(tagOf(s.token(sa, undefined)), 'api-audience');
    assert.throws(
      () => s.token(sa, undefined, { refuseApiAudience: 'VaultConnection x/y is elsewhere' }),
      (e: unknown) =>
        isFerryError(e) &&
        e.code === CODES.CSI_PRECONDITION &&
        /x\/y is elsewhere.*audiences/.test(e.message),
    );
    s.keep('/t', podOf('u1'), tokens('vault', T0 + 600_000, 'vault'));
    assert.equal(tagOf(s.token(sa, ['', 'vault'], { refuseApiAudience: 'elsewhere' })), 'vault');
  });

  it('a target whose pod changed ServiceAccount keeps only the new one’s tokens', () => {
    const s = store(() => T0);
    s.keep('/t', podOf('u1'), tokens('old-sa', T0 + 600_000, ''));
    s.keep('/t', podOf('u1', 'next'), tokens('new-sa', T0 + 600_000, 'vault', 'u1', 'next'));
    assert.throws(() => s.token(sa, undefined));
    assert.equal(tagOf(s.token({ namespace: 'ns', name: 'next' }, ['vault'])), 'new-sa');
  });

  it('is bounded: expired targets go first, then the oldest', () => {
    let now = T0;
    const s = store(() => now, 3);
    s.keep('/a', podOf('u1'), tokens('a', T0 + 10));
    s.keep('/b', podOf('u1'), tokens('b', T0 + 600_000));
    s.keep('/c', podOf('u1'), tokens('c', T0 + 700_000));
    now = T0 + 20;
    s.keep('/d', podOf('u1'), tokens('d', T0 + 500_000));
    assert.equal(s.size, 3);
    s.forget('/c');
    assert.equal(tagOf(s.token(sa, ['vault'])), 'b', '/a (expired) was dropped, /b kept');
    for (let i = 0; i < 100; i++) s.keep(`/x${i}`, podOf('u1'), tokens(`x${i}`, T0 + 800_000));
    assert.equal(s.size, 3);
  });
});
