import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import type { AuthMethod } from '../../../src/vault/auth/index.ts';
import { type CacheKeyInput, computeCacheKey, VaultClientCache } from '../../../src/vault/cache.ts';
import { VaultClient } from '../../../src/vault/client.ts';
import { VaultSession } from '../../../src/vault/session.ts';
import { authBody } from './helpers.ts';

const input = (over: Partial<CacheKeyInput> = {}): CacheKeyInput => ({
  method: 'kubernetes',
  authUID: 'auth-uid-1',
  authGeneration: 3,
  connectionUID: 'conn-uid-2',
  connectionGeneration: 7,
  providerUID: 'sa-uid-3',
  ...over,
});

describe('computeCacheKey', () => {
  it('matches the VSO layout on a known vector', () => {
    // python3: d = sha256(b'auth-uid-1-3.conn-uid-2-7.sa-uid-3').digest(); (d[:7] + d[-4:]).hex()
    assert.equal(computeCacheKey(input()), 'kubernetes-208c1851bc04bb90f57e4b');
  });

  it('is a valid label value and changes with every component', () => {
    const uid = fc.stringMatching(/^[0-9a-f-]{1,36}$/);
    fc.assert(
      fc.property(
        fc.constantFrom('kubernetes', 'jwt', 'appRole', 'aws', 'gcp' as const),
        uid,
        fc.nat(),
        uid,
        fc.nat(),
        uid,
        (method, authUID, authGeneration, connectionUID, connectionGeneration, providerUID) => {
          const k = { method, authUID, authGeneration, connectionUID, connectionGeneration, providerUID };
          const key = computeCacheKey(k);
          assert.match(key, /^[a-zA-Z]+-[0-9a-f]{22}$/);
          assert.ok(key.length <= 63);
          const d = createHash('sha256')
            .update(`${authUID}-${authGeneration}.${connectionUID}-${connectionGeneration}.${providerUID}`)
            .digest('hex');
          assert.equal(key, `${method}-${d.slice(0, 14)}${d.slice(-8)}`);
          assert.notEqual(computeCacheKey({ ...k, authGeneration: authGeneration + 1 }), key);
          assert.notEqual(computeCacheKey({ ...k, connectionGeneration: connectionGeneration + 1 }), key);
        },
      ),
    );
  });
});

describe('VaultClientCache.keyOf', () => {
  it('is computeCacheKey, one string per input, and bounded', () => {
    const cache = new VaultClientCache();
    const k = cache.keyOf(input());
    assert.equal(k, computeCacheKey(input()));
    assert.equal(cache.keyOf(input()), k);
    assert.equal(cache.keyOf(input({ authGeneration: 4 })), computeCacheKey(input({ authGeneration: 4 })));
    assert.equal(cache.keyOf(input({ method: 'jwt' })), computeCacheKey(input({ method: 'jwt' })));
    // Past its bound the memo starts over and still answers right.
    for (let i = 0; i < 3000; i++) assert.equal(cache.keyOf(input({ providerUID: `sa-${i}` })).length, 33);
    assert.equal(cache.keyOf(input()), k);
  });
});

describe('VaultClientCache', () => {
  // No request leaves the process: the fake auth method answers logins, and sessions with TTL 0
  // schedule nothing and validate without a lookup unless tainted.
  const client = new VaultClient({ address: 'http://127.0.0.1:9' });
  after(() => client.close());
  let logins = 0;
  const auth: AuthMethod = {
    method: 'kubernetes',
    mount: 'kubernetes',
    async login() {
      logins++;
      await new Promise((r) => setTimeout(r, 10));
      return authBody(`tok-${logins}`).auth;
    },
  };
  const create = () => VaultSession.login({ client, auth });
  const instant = () =>
    VaultSession.login({ client, auth: { ...auth, login: async () => authBody('t').auth } });

  it('shares one login between concurrent gets of a key', async () => {
    const cache = new VaultClientCache();
    logins = 0;
    const [a, b, c] = await Promise.all([
      cache.get(input(), create),
      cache.get(input(), create),
      cache.get(input(), create),
    ]);
    assert.equal(logins, 1);
    assert.equal(a, b);
    assert.equal(b, c);
    assert.equal(await cache.get(input(), create), a, 'a hit returns the cached session');
    assert.equal(logins, 1);
    const other = await cache.get(input({ providerUID: 'other-sa' }), create);
    assert.notEqual(other, a);
    assert.equal(logins, 2);
    assert.equal(cache.size, 2);
  });

  it('does not cache a failed login and lets the next get retry', async () => {
    const cache = new VaultClientCache();
    let calls = 0;
    const failing = async (): Promise<VaultSession> => {
      calls++;
      throw new Error('login refused');
    };
    const results = await Promise.allSettled([cache.get(input(), failing), cache.get(input(), failing)]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected'],
    );
    assert.equal(calls, 1);
    assert.equal(cache.size, 0);
    await cache.get(input(), create);
    assert.equal(cache.size, 1);
  });

  it('evicts the least recently used session beyond its bound and closes it', async () => {
    const evictions: number[] = [];
    const cache = new VaultClientCache({
      maxSize: 2,
      namespaceQuota: 2,
      metrics: { eviction: () => evictions.push(1) },
    });
    const s1 = await cache.get(input({ providerUID: '1' }), create);
    const s2 = await cache.get(input({ providerUID: '2' }), create);
    await cache.get(input({ providerUID: '1' }), create); // 1 is now the most recent
    await cache.get(input({ providerUID: '3' }), create);
    assert.equal(cache.size, 2);
    assert.equal(s2.closed, true);
    assert.equal(s1.closed, false);
    assert.equal(evictions.length, 1);
  });

  it("a namespace beyond its quota evicts its own sessions, never another namespace's", async () => {
    const cache = new VaultClientCache({ maxSize: 10, namespaceQuota: 3 });
    const victims = await Promise.all(
      ['1', '2'].map((id) => cache.get(input({ providerUID: `b-${id}` }), create, { namespace: 'b' })),
    );
    for (let i = 0; i < 50; i++) {
      await cache.get(input({ providerUID: `a-${i}` }), create, { namespace: 'a' });
    }
    assert.equal(cache.held('a'), 3);
    assert.deepEqual(
      victims.map((s) => s.closed),
      [false, false],
    );
    assert.equal(cache.size, 5);
  });

  it('when full, the namespace holding the most gives one up', async () => {
    const cache = new VaultClientCache({ maxSize: 6, namespaceQuota: 4 });
    const b = await cache.get(input({ providerUID: 'b' }), create, { namespace: 'b' });
    const c = await cache.get(input({ providerUID: 'c' }), create, { namespace: 'c' });
    for (let i = 0; i < 4; i++) await cache.get(input({ providerUID: `a-${i}` }), create, { namespace: 'a' });
    // Full (6); b's session is the least recently used overall, but a holds the most.
    await cache.get(input({ providerUID: 'd' }), create, { namespace: 'd' });
    assert.equal(cache.size, 6);
    assert.equal(cache.held('a'), 3);
    assert.deepEqual([b.closed, c.closed], [false, false]);
  });

  it('quota and size hold for any sequence of gets (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.nat(20)), { maxLength: 60 }),
        async (gets) => {
          const cache = new VaultClientCache({ maxSize: 8, namespaceQuota: 4 });
          const live = new Map<string, VaultSession>();
          for (const [ns, id] of gets) {
            live.set(ns, await cache.get(input({ providerUID: `${ns}-${id}` }), instant, { namespace: ns }));
            assert.ok(cache.size <= 8);
            for (const n of ['a', 'b', 'c']) assert.ok(cache.held(n) <= 4);
          }
          // The namespace's latest session is never the one evicted on its behalf.
          for (const s of live.values()) assert.equal(s.closed, false);
          await cache.clear();
        },
      ),
      { numRuns: 50 },
    );
  });

  it('prunes by VaultAuth and VaultConnection, optionally only older generations', async () => {
    const cache = new VaultClientCache();
    const a3 = await cache.get(input({ authGeneration: 3 }), create);
    const a4 = await cache.get(input({ authGeneration: 4 }), create);
    const otherAuth = await cache.get(input({ authUID: 'other', connectionGeneration: 1 }), create);
    assert.equal((await cache.pruneAuth('auth-uid-1', { belowGeneration: 4 })).length, 1);
    assert.equal(a3.closed, true);
    assert.equal(a4.closed, false);
    assert.equal((await cache.pruneConnection('conn-uid-2', { belowGeneration: 7 })).length, 1);
    assert.equal(otherAuth.closed, true);
    assert.equal((await cache.pruneAuth('auth-uid-1')).length, 1);
    assert.equal(cache.size, 0);
  });

  it('counts hits and misses', async () => {
    let hits = 0;
    let misses = 0;
    const cache = new VaultClientCache({ metrics: { hit: () => hits++, miss: () => misses++ } });
    await cache.get(input(), create);
    await cache.get(input(), create);
    await cache.get(input(), create);
    assert.deepEqual([hits, misses], [2, 1]);
  });
});
