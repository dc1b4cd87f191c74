import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { CODES, FerryError, isFerryError } from '../../../src/errors.ts';
import { appRoleAuth } from '../../../src/vault/auth/approle.ts';
import { jwtAuth, kubernetesAuth } from '../../../src/vault/auth/kubernetes.ts';
import type { RequestOptions, VaultApi, VaultResponse } from '../../../src/vault/client.ts';
import { VaultClient } from '../../../src/vault/client.ts';
import { isVaultError } from '../../../src/vault/errors.ts';
import { kvReadPath, readKV } from '../../../src/vault/kv.ts';
import { authBody, FakeVault } from './helpers.ts';

describe('auth methods', () => {
  let vault: FakeVault;
  let client: VaultClient;
  before(async () => {
    vault = await FakeVault.start();
    client = new VaultClient({ address: vault.address, namespace: 'ns1' });
  });
  after(async () => {
    await client.close();
    await vault.close();
  });
  beforeEach(() => {
    vault.requests.length = 0;
    vault.handler = () => ({ body: authBody('hvs.issued', { ttl: 60, policies: ['p1'] }) });
  });

  it('kubernetes: PUT auth/<mount>/login {role, jwt} with params merged and headers on this call only', async () => {
    const method = kubernetesAuth({
      mount: '/k8s-prod/',
      role: 'app',
      getToken: async () => 'sa.jwt.value',
      params: { role: 'override-attempt', extra: 'x' },
      headers: { 'X-Login-Only': '1' },
    });
    assert.equal(method.method, 'kubernetes');
    const info = await method.login(client);
    assert.equal(info.client_token, 'hvs.issued');
    assert.equal(info.lease_duration, 60);
    assert.deepEqual(info.policies, ['p1']);
    const [r] = vault.requests;
    assert.equal(r?.method, 'PUT');
    assert.equal(r?.path, '/v1/auth/k8s-prod/login');
    // The method's own fields win over VaultAuth params.
    assert.deepEqual(r?.body, { role: 'app', jwt: 'sa.jwt.value', extra: 'x' });
    assert.equal(r?.headers['x-login-only'], '1');
    assert.equal(r?.headers['x-vault-namespace'], 'ns1');
    assert.equal(r?.headers['x-vault-token'], undefined);
    await client.read('other');
    assert.equal(vault.requests[1]?.headers['x-login-only'], undefined);
  });

  it('jwt and appRole build their login bodies', async () => {
    await jwtAuth({ mount: 'jwt', role: 'r', getToken: async () => 'a.b.c' }).login(client);
    await appRoleAuth({ mount: 'approle', roleId: 'rid', getSecretId: async () => 'sid' }).login(client);
    assert.deepEqual(vault.requests[0]?.body, { role: 'r', jwt: 'a.b.c' });
    assert.deepEqual(vault.requests[1]?.body, { role_id: 'rid', secret_id: 'sid' });
    assert.equal(vault.requests[1]?.path, '/v1/auth/approle/login');
  });

  it('fetches a fresh credential on every login', async () => {
    let n = 0;
    const m = kubernetesAuth({ mount: 'kubernetes', role: 'r', getToken: async () => `jwt-${++n}` });
    await m.login(client);
    await m.login(client);
    assert.deepEqual(
      vault.requests.map((r) => (r.body as { jwt: string }).jwt),
      ['jwt-1', 'jwt-2'],
    );
  });

  it('reports credential failures as VAULT_AUTH without sending a request', async () => {
    const m = kubernetesAuth({
      mount: 'kubernetes',
      role: 'r',
      getToken: async () => {
        throw new Error('TokenRequest forbidden');
      },
    });
    await assert.rejects(m.login(client), (e: unknown) => {
      assert.ok(isFerryError(e));
      assert.equal(e.code, CODES.VAULT_AUTH);
      assert.equal(e.message, 'could not obtain ServiceAccount token for Vault login');
      return true;
    });
    await assert.rejects(
      kubernetesAuth({
        mount: 'kubernetes',
        role: 'r',
        getToken: async () => {
          throw new FerryError(CODES.INVALID_CONFIG, 'Secret app/jwt has no jwt key');
        },
      }).login(client),
      (e: unknown) =>
        isFerryError(e) &&
        e.message === 'could not obtain ServiceAccount token for Vault login: Secret app/jwt has no jwt key',
    );
    await assert.rejects(
      kubernetesAuth({ mount: 'kubernetes', role: 'r', getToken: async () => '' }).login(client),
      (e: unknown) => isFerryError(e) && e.code === CODES.VAULT_AUTH,
    );
    assert.equal(vault.requests.length, 0);
  });

  it('rejects a login answer without a token, and keeps the JWT out of login errors', async () => {
    vault.handler = () => ({ body: { data: {} } });
    const m = kubernetesAuth({ mount: 'kubernetes', role: 'r', getToken: async () => 'eyJ.secret.jwt' });
    await assert.rejects(m.login(client), (e: unknown) => isFerryError(e) && e.code === CODES.VAULT_AUTH);
    vault.handler = () => ({ status: 403, body: { errors: ['permission denied'] } });
    await assert.rejects(m.login(client), (e: unknown) => {
      assert.ok(isVaultError(e) && e.isForbidden());
      assert.ok(!e.message.includes('eyJ'));
      return true;
    });
  });
});

describe('readKV', () => {
  const fake = (
    answer: VaultResponse | undefined,
    seen: { path?: string; opts?: RequestOptions },
  ): VaultApi => ({
    async read(path, opts) {
      seen.path = path;
      if (opts) seen.opts = opts;
      return answer;
    },
    write: async () => undefined,
    delete: async () => undefined,
    list: async () => undefined,
  });

  it('builds v1 and v2 paths', () => {
    assert.equal(kvReadPath({ mount: '/kv/', path: '/a/b', type: 'kv-v1' }), 'kv/a/b');
    assert.equal(kvReadPath({ mount: 'kv', path: 'a/b', type: 'kv-v2' }), 'kv/data/a/b');
    assert.throws(
      () => kvReadPath({ mount: '', path: 'x', type: 'kv-v1' }),
      (e: unknown) => isFerryError(e),
    );
  });

  it('pins kv-v2 versions only when positive', async () => {
    const answer = { data: { data: { k: 'v' }, metadata: { version: 4 } } };
    const seen: { path?: string; opts?: RequestOptions } = {};
    const s = await readKV(fake(answer, seen), { mount: 'kv', path: 'app', type: 'kv-v2', version: 4 });
    assert.equal(seen.path, 'kv/data/app');
    assert.deepEqual(seen.opts?.query, { version: '4' });
    assert.deepEqual(s, { data: { k: 'v' }, metadata: { version: 4 }, raw: answer.data });
    const seen0: { path?: string; opts?: RequestOptions } = {};
    await readKV(fake(answer, seen0), { mount: 'kv', path: 'app', type: 'kv-v2', version: 0 });
    assert.equal(seen0.opts?.query, undefined);
  });

  it('returns v1 data as is', async () => {
    const s = await readKV(fake({ data: { a: 1 } }, {}), { mount: 'kv', path: 'x', type: 'kv-v1' });
    assert.deepEqual(s, { data: { a: 1 }, raw: { a: 1 } });
  });

  it('treats missing, deleted and destroyed versions as not found', async () => {
    const notFound = (e: unknown) => isVaultError(e) && e.isNotFound();
    await assert.rejects(readKV(fake(undefined, {}), { mount: 'kv', path: 'x', type: 'kv-v2' }), notFound);
    const deleted = { data: { data: null, metadata: { version: 2, deletion_time: '2026-01-01T00:00:00Z' } } };
    await assert.rejects(readKV(fake(deleted, {}), { mount: 'kv', path: 'x', type: 'kv-v2' }), notFound);
    const destroyed = { data: { data: null, metadata: { version: 2, destroyed: true } } };
    await assert.rejects(readKV(fake(destroyed, {}), { mount: 'kv', path: 'x', type: 'kv-v2' }), notFound);
  });

  it('keeps data whose deletion is scheduled in the future (delete_version_after)', async () => {
    const answer = {
      data: { data: { k: 'v' }, metadata: { version: 1, deletion_time: '2999-01-01T00:00:00Z' } },
    };
    const s = await readKV(fake(answer, {}), { mount: 'kv', path: 'x', type: 'kv-v2' });
    assert.deepEqual(s.data, { k: 'v' });
  });

  it('says so when a kv-v2 read hits a v1 mount', async () => {
    await assert.rejects(
      readKV(fake({ data: { plain: 'v1' } }, {}), { mount: 'kv', path: 'x', type: 'kv-v2' }),
      /not a kv-v2 secret/,
    );
  });
});
