import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { K8sApiError } from '../../../src/k8s/errors.ts';
import type { KubeList, KubeObject, Secret } from '../../../src/k8s/types.ts';
import { kubernetesAuth } from '../../../src/vault/auth/kubernetes.ts';
import { VaultClient } from '../../../src/vault/client.ts';
import {
  type CacheEncryption,
  ClientCacheStorage,
  type PersistedToken,
  parsePersistenceModel,
  purgeClientCacheStorage,
  type StorageKube,
  type StorageOwner,
  storageSecretName,
} from '../../../src/vault/persistence.ts';
import { type SessionEvent, VaultSession } from '../../../src/vault/session.ts';
import { authBody, FakeVault, ManualClock } from './helpers.ts';

const NS = 'ferry-system';

/** An in-memory Secret store with the apiserver's answers that matter: AlreadyExists, NotFound,
 * immutability (no update verb at all), label selection. */
class FakeKube {
  readonly secrets = new Map<string, Secret>();
  readonly ops: string[] = [];
  api(): StorageKube {
    const nf = (n: string) => new K8sApiError(404, 'NotFound', `secrets "${n}" not found`);
    return {
      get: (async (_rt: unknown, name: string) => {
        const s = this.secrets.get(name);
        if (!s) throw nf(name);
        return structuredClone(s);
      }) as StorageKube['get'],
      create: (async (_rt: unknown, obj: KubeObject) => {
        const name = obj.metadata.name ?? '';
        if (this.secrets.has(name)) throw new K8sApiError(409, 'AlreadyExists', 'exists');
        this.ops.push(`create ${name}`);
        this.secrets.set(name, structuredClone(obj as Secret));
        return obj;
      }) as StorageKube['create'],
      delete: (async (_rt: unknown, name: string) => {
        if (!this.secrets.delete(name)) throw nf(name);
        this.ops.push(`delete ${name}`);
      }) as StorageKube['delete'],
      list: (async (_rt: unknown, opts: { labelSelector?: string } = {}) => {
        const want = (opts.labelSelector ?? '').split(',').filter(Boolean);
        const items = [...this.secrets.values()].filter((s) =>
          want.every((w) => {
            const [k, v] = w.split('=');
            return s.metadata.labels?.[k ?? ''] === v;
          }),
        );
        return { items } as unknown as KubeList<KubeObject>;
      }) as StorageKube['list'],
    };
  }
}

const owner = (cacheKey = 'kubernetes-0011223344556677889900'): StorageOwner => ({
  cacheKey,
  authNamespace: 'app',
  authUID: 'auth-uid',
  authGeneration: 2,
  connectionNamespace: NS,
  connectionUID: 'conn-uid',
  connectionGeneration: 1,
  providerUID: 'sa-uid',
  providerNamespace: 'app',
});
const token = (t = 's.secret-token-1', ttl = 3600): PersistedToken => ({
  token: t,
  accessor: 'acc-1',
  policies: ['default', 'app'],
  renewable: true,
  leaseDuration: ttl,
  loginTtlSeconds: ttl,
  expiresAt: 1_700_000_000_000 + ttl * 1000,
});
const hmacKey = async () => Buffer.alloc(16, 7);
const unencrypted = (kube: FakeKube): ClientCacheStorage =>
  new ClientCacheStorage({ client: kube.api(), namespace: NS, model: 'direct-unencrypted', hmacKey });

/** Reversible, visibly different "encryption" that records calls. */
function fakeTransit(): CacheEncryption & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    vaultAuthName: 'cache-enc',
    async encrypt(plain) {
      calls.push('encrypt');
      return Buffer.from(`vault:v1:${Buffer.from(plain).reverse().toString('base64')}`);
    },
    async decrypt(cipher) {
      calls.push('decrypt');
      const s = cipher.toString('utf8');
      if (!s.startsWith('vault:v1:')) throw Object.assign(new Error('bad ciphertext'), { status: 400 });
      return Buffer.from(s.slice(9), 'base64').reverse();
    },
  };
}

describe('parsePersistenceModel', () => {
  it('defaults to none and rejects unknown models', () => {
    assert.equal(parsePersistenceModel(undefined), 'none');
    assert.equal(parsePersistenceModel(''), 'none');
    assert.equal(parsePersistenceModel('direct-encrypted'), 'direct-encrypted');
    assert.throws(() => parsePersistenceModel('direct'));
  });
});

describe('ClientCacheStorage', () => {
  it('direct-unencrypted: stores an immutable vso-cc-<cacheKey> Secret with VSO labels and restores it', async () => {
    const kube = new FakeKube();
    const st = unencrypted(kube);
    assert.equal(await st.store(owner(), token()), true);
    const s = kube.secrets.get(storageSecretName(owner().cacheKey));
    assert.ok(s);
    assert.equal(s.immutable, true);
    assert.equal(s.metadata.namespace, NS);
    assert.deepEqual(
      {
        c: s.metadata.labels?.['app.kubernetes.io/component'],
        m: s.metadata.labels?.['app.kubernetes.io/managed-by'],
        k: s.metadata.labels?.cacheKey,
        g: s.metadata.labels?.['auth/generation'],
        e: s.metadata.labels?.encrypted,
      },
      { c: 'client-cache-storage', m: 'vso', k: owner().cacheKey, g: '2', e: undefined },
    );
    assert.ok(s.data?.messageMAC);
    const r = await st.load(owner().cacheKey);
    assert.equal(r.status, 'found');
    assert.deepEqual(r.status === 'found' ? r.token : undefined, token());
  });

  it('skips rewriting the same token and replaces (delete, create) a changed one', async () => {
    const kube = new FakeKube();
    const st = unencrypted(kube);
    await st.store(owner(), token());
    assert.equal(await st.store(owner(), token()), false);
    await st.store(owner(), token('s.secret-token-2'));
    const name = storageSecretName(owner().cacheKey);
    assert.deepEqual(kube.ops, [`create ${name}`, `delete ${name}`, `create ${name}`]);
    const r = await st.load(owner().cacheKey);
    assert.equal(r.status === 'found' ? r.token.token : '', 's.secret-token-2');
  });

  it('rejects and deletes a tampered entry (MAC), an entry under another key, or one of the other model', async () => {
    const kube = new FakeKube();
    const st = unencrypted(kube);
    const name = storageSecretName(owner().cacheKey);
    await st.store(owner(), token());
    const s = kube.secrets.get(name) as Secret;
    const forged = JSON.parse(Buffer.from(s.data?.secret ?? '', 'base64').toString()) as {
      auth: { client_token: string };
    };
    forged.auth.client_token = 's.attacker';
    (s.data as Record<string, string>).secret = Buffer.from(JSON.stringify(forged)).toString('base64');
    const r = await st.load(owner().cacheKey);
    assert.deepEqual(r, { status: 'invalid', reason: 'messageMAC mismatch' });
    assert.equal(kube.secrets.has(name), false);

    // Copied under another cacheKey: label and MAC (which covers the name) disagree.
    await st.store(owner(), token());
    const other = 'kubernetes-ffffffffffffffffffffff';
    const copy = structuredClone(kube.secrets.get(name) as Secret);
    copy.metadata.name = storageSecretName(other);
    (copy.metadata.labels as Record<string, string>).cacheKey = other;
    kube.secrets.set(storageSecretName(other), copy);
    assert.equal((await st.load(other)).status, 'invalid');

    // Unencrypted entry, encrypted model.
    const enc = new ClientCacheStorage({
      client: kube.api(),
      namespace: NS,
      model: 'direct-encrypted',
      hmacKey,
      encryption: async () => fakeTransit(),
    });
    assert.deepEqual(await enc.load(owner().cacheKey), {
      status: 'invalid',
      reason: 'entry is not encrypted',
    });
    assert.deepEqual(await enc.load('kubernetes-none'), { status: 'missing' });
  });

  it('direct-encrypted: the payload is Transit ciphertext (no token in clear), labelled with the encryption VaultAuth', async () => {
    const kube = new FakeKube();
    const transit = fakeTransit();
    const st = new ClientCacheStorage({
      client: kube.api(),
      namespace: NS,
      model: 'direct-encrypted',
      hmacKey,
      encryption: async () => transit,
    });
    await st.store(owner(), token());
    const s = kube.secrets.get(storageSecretName(owner().cacheKey)) as Secret;
    const raw = Buffer.from(s.data?.secret ?? '', 'base64').toString();
    assert.match(raw, /^vault:v1:/);
    assert.ok(!JSON.stringify(s).includes('s.secret-token-1'), 'token not stored in clear');
    assert.equal(s.metadata.labels?.encrypted, 'true');
    assert.equal(s.metadata.labels?.vaultTransitRef, 'cache-enc');
    const r = await st.load(owner().cacheKey);
    assert.equal(r.status === 'found' ? r.token.token : '', 's.secret-token-1');
    assert.deepEqual(transit.calls, ['encrypt', 'decrypt']);
  });

  it('delete and purge remove only storage entries', async () => {
    const kube = new FakeKube();
    const st = unencrypted(kube);
    await st.store(owner('kubernetes-a'), token());
    await st.store(owner('kubernetes-b'), token());
    kube.secrets.set('unrelated', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'unrelated' } });
    await st.delete('kubernetes-a');
    await st.delete('kubernetes-a'); // already gone: no error
    assert.equal(await purgeClientCacheStorage(kube.api(), NS), 1);
    assert.deepEqual([...kube.secrets.keys()], ['unrelated']);
  });
});

describe('VaultSession.restore', () => {
  it('validates with lookup-self, resumes renewal from the remaining TTL, and never logs in', async () => {
    const vault = await FakeVault.start();
    const clock = new ManualClock();
    let logins = 0;
    vault.handler = (req) => {
      if (req.path === '/v1/auth/token/lookup-self')
        return { body: { data: { ttl: 600, renewable: true, accessor: 'acc-1', policies: ['default'] } } };
      if (req.path === '/v1/auth/token/renew-self')
        return { body: authBody('s.secret-token-1', { ttl: 3600 }) };
      if (req.path.startsWith('/v1/auth/kubernetes/login')) {
        logins += 1;
        return { body: authBody('s.new', { ttl: 3600 }) };
      }
      return { status: 404, body: { errors: [] } };
    };
    const client = new VaultClient({ address: vault.address });
    const events: SessionEvent[] = [];
    const stored: PersistedToken[] = [];
    const session = await VaultSession.restore(
      {
        client,
        auth: kubernetesAuth({ mount: 'kubernetes', role: 'r', getToken: async () => 'jwt' }),
        clock,
        random: () => 0,
        onEvent: (e) => events.push(e),
        onToken: (t) => stored.push(t),
      },
      token('s.secret-token-1', 3600),
    );
    try {
      assert.equal(session.expiresAt, clock.now() + 600_000);
      // random 0 → 2/3 of the 3600 s granted, scaled to the 600 s left: 400 s.
      assert.deepEqual(clock.pending(), [400_000]);
      assert.equal(events[0]?.type, 'restored');
      assert.equal(stored.length, 0, 'a restored token is not stored again');
      await clock.advance(400_000);
      assert.ok(vault.requests.some((r) => r.path === '/v1/auth/token/renew-self'));
      assert.equal(logins, 0);
      assert.equal(session.expiresAt, clock.now() + 3_600_000);
      assert.ok(!JSON.stringify(events).includes('s.secret-token-1'), 'no token in events');
    } finally {
      session.close();
      await client.close();
      await vault.close();
    }
  });

  it('throws when Vault rejects the stored token', async () => {
    const vault = await FakeVault.start();
    vault.handler = () => ({ status: 403, body: { errors: ['permission denied'] } });
    const client = new VaultClient({ address: vault.address });
    try {
      await assert.rejects(
        VaultSession.restore(
          {
            client,
            auth: kubernetesAuth({ mount: 'kubernetes', role: 'r', getToken: async () => 'jwt' }),
            clock: new ManualClock(),
          },
          token(),
        ),
        (e: unknown) => (e as { status?: number }).status === 403,
      );
    } finally {
      await client.close();
      await vault.close();
    }
  });
});
