import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { CODES, isFerryError } from '../../../src/errors.ts';
import { DEFAULT_MAX_RESPONSE_BYTES, USER_AGENT, VaultClient } from '../../../src/vault/client.ts';
import { isVaultError } from '../../../src/vault/errors.ts';
import { UNRELATED_CA_PEM } from './fixtures.ts';
import { authBody, dripBody, FakeVault, floodBody, hostileServer } from './helpers.ts';

const FAST = { maxRetries: 2, minDelayMs: 1, maxDelayMs: 2 };

describe('VaultClient configuration', () => {
  it('rejects X-Vault-Namespace, X-Vault-Token and Host in connection headers', () => {
    for (const h of ['X-Vault-Namespace', 'x-vault-token', 'Host']) {
      assert.throws(
        () => new VaultClient({ address: 'http://127.0.0.1:1', headers: { [h]: 'x' } }),
        (e: unknown) => isFerryError(e) && e.code === CODES.VAULT_CONFIG && e.message.includes(h),
      );
    }
  });

  it('rejects bad addresses and CA data without a certificate', () => {
    for (const address of ['not a url', 'ftp://vault:8200']) {
      assert.throws(
        () => new VaultClient({ address }),
        (e: unknown) => isFerryError(e) && e.code === CODES.VAULT_CONFIG,
      );
    }
    assert.throws(
      () => new VaultClient({ address: 'https://v:8200', caCertPem: 'garbage' }),
      (e: unknown) => isFerryError(e) && e.code === CODES.VAULT_CONFIG,
    );
    // skipTLSVerify makes the CA irrelevant, as in VSO.
    new VaultClient({ address: 'https://v:8200', caCertPem: 'garbage', skipTLSVerify: true });
    new VaultClient({ address: 'https://v:8200', caCertPem: UNRELATED_CA_PEM });
  });
});

describe('VaultClient requests', () => {
  let vault: FakeVault;
  let client: VaultClient;

  before(async () => {
    vault = await FakeVault.start();
    client = new VaultClient({
      address: `${vault.address}/prefix/`,
      headers: { 'X-Custom': 'yes' },
      namespace: 'team-a',
      retry: FAST,
    });
  });
  after(async () => {
    await client.close();
    await vault.close();
  });
  beforeEach(() => {
    vault.requests.length = 0;
    vault.handler = () => ({ body: { data: { ok: true } } });
  });

  it('sends the Vault headers, the token and the namespace', async () => {
    const res = await client.withToken('tok-1').read('secret/data/app');
    assert.deepEqual(res?.data, { ok: true });
    const [r] = vault.requests;
    assert.equal(r?.method, 'GET');
    assert.equal(r?.path, '/prefix/v1/secret/data/app');
    assert.equal(r?.headers['x-vault-token'], 'tok-1');
    assert.equal(r?.headers['x-vault-namespace'], 'team-a');
    assert.equal(r?.headers['x-vault-request'], 'true');
    assert.equal(r?.headers['x-custom'], 'yes');
    assert.equal(r?.headers['user-agent'], USER_AGENT);
    assert.match(USER_AGENT, /^ferry\/\d+\.\d+\.\d+/);
  });

  it('derives views that share the pool: withNamespace, withToken', async () => {
    await client.withNamespace(undefined).read('a');
    await client.withToken('t').withNamespace('team-b').read('b');
    assert.equal(vault.requests[0]?.headers['x-vault-namespace'], undefined);
    assert.equal(vault.requests[0]?.headers['x-vault-token'], undefined);
    assert.equal(vault.requests[1]?.headers['x-vault-namespace'], 'team-b');
    assert.equal(vault.requests[1]?.headers['x-vault-token'], 't');
  });

  it('sends LIST as GET ?list=true, writes as PUT JSON, and encodes path segments', async () => {
    await client.list('kv/metadata/dir');
    await client.write('kv/data/a b', { data: { k: 'v' } });
    await client.delete('kv/metadata/x?y');
    await client.read('kv/data/x', { query: { version: '3' } });
    const [list, write, del, read] = vault.requests;
    assert.equal(list?.method, 'GET');
    assert.equal(list?.query.get('list'), 'true');
    assert.equal(write?.method, 'PUT');
    assert.equal(write?.path, '/prefix/v1/kv/data/a%20b');
    assert.equal(write?.headers['content-type'], 'application/json');
    assert.deepEqual(write?.body, { data: { k: 'v' } });
    assert.equal(del?.method, 'DELETE');
    assert.equal(del?.path, '/prefix/v1/kv/metadata/x%3Fy');
    assert.equal(read?.query.get('version'), '3');
  });

  it('rejects reserved headers per request too', async () => {
    await assert.rejects(
      client.read('x', { headers: { 'X-Vault-Token': 'sneaky' } }),
      (e: unknown) => isFerryError(e) && e.code === CODES.VAULT_CONFIG,
    );
    await assert.rejects(
      client.write('auth/kubernetes/login', {}, { headers: { host: 'internal.example' } }),
      (e: unknown) => isFerryError(e) && e.code === CODES.VAULT_CONFIG,
    );
  });

  it('retries GET on 5xx and 429, up to twice, and then surfaces the Vault error', async () => {
    let n = 0;
    vault.handler = () =>
      ++n < 3 ? { status: n === 1 ? 503 : 429, body: { errors: ['busy'] } } : { body: { data: { n } } };
    assert.deepEqual((await client.read('x'))?.data, { n: 3 });
    vault.handler = () => ({ status: 503, body: { errors: ['busy'] } });
    const err = await client.read('y').catch((e: unknown) => e);
    assert.ok(isVaultError(err));
    assert.equal(err.status, 503);
    assert.deepEqual(err.errors, ['busy']);
    assert.equal(vault.requests.filter((r) => r.path.endsWith('/y')).length, 3);
  });

  it('does not retry writes or 4xx answers', async () => {
    vault.handler = () => ({ status: 500, body: { errors: ['boom'] } });
    await assert.rejects(client.write('w', {}), (e: unknown) => isVaultError(e) && e.status === 500);
    vault.handler = () => ({ status: 400, body: { errors: ['bad'] } });
    await assert.rejects(client.read('r'), (e: unknown) => isVaultError(e) && e.status === 400);
    assert.equal(vault.requests.length, 2);
  });

  it('treats 404 like vault/api: empty → undefined, with data → the answer, with errors → VaultError', async () => {
    vault.handler = () => ({ status: 404, body: { errors: [] } });
    assert.equal(await client.read('a'), undefined);
    vault.handler = () => ({ status: 404, body: { data: { data: null, metadata: { version: 2 } } } });
    assert.deepEqual((await client.read('b'))?.data, { data: null, metadata: { version: 2 } });
    vault.handler = () => ({ status: 404, body: { errors: ["no handler for route 'nope/x'"] } });
    await assert.rejects(client.read('nope/x'), (e: unknown) => isVaultError(e) && e.isNotFound());
    vault.handler = () => ({ status: 204 });
    assert.equal(await client.delete('c'), undefined);
  });

  it('never puts request bodies or response data into errors', async () => {
    vault.handler = () => ({
      status: 400,
      body: { errors: ['invalid'], data: { secret: 'response-secret' } },
    });
    const err = await client
      .write('auth/approle/login', { secret_id: 'request-secret' })
      .catch((e: unknown) => e);
    assert.ok(isVaultError(err));
    assert.equal(err.message, 'Vault PUT auth/approle/login failed with status 400: invalid');
    assert.ok(!JSON.stringify({ ...err, message: err.message }).includes('secret-'));
  });

  it('hides client_token from enumeration so a logged auth answer carries no token', async () => {
    vault.handler = () => ({ body: authBody('hvs.secret-token-value', { ttl: 30 }) });
    const res = await client.write('auth/x/login', {});
    assert.equal(res?.auth?.client_token, 'hvs.secret-token-value');
    assert.ok(!JSON.stringify(res).includes('secret-token'));
    assert.equal(res?.auth?.lease_duration, 30);
  });

  it('keeps the token out of util.inspect of the client', async () => {
    const { inspect } = await import('node:util');
    assert.ok(!inspect(client.withToken('hvs.do-not-print'), { depth: 5 }).includes('do-not-print'));
  });

  it('rejects non-JSON success bodies', async () => {
    vault.handler = () => ({ body: undefined, status: 200 });
    assert.equal(await client.read('empty'), undefined);
  });

  it('parses seal-status', async () => {
    vault.handler = () => ({ body: { sealed: true, initialized: true, version: '2.7.2', t: 1 } });
    assert.deepEqual(await client.sealStatus(), { sealed: true, initialized: true, version: '2.7.2' });
    assert.equal(vault.requests[0]?.path, '/prefix/v1/sys/seal-status');
    vault.handler = () => ({ body: { nope: 1 } });
    await assert.rejects(client.sealStatus(), (e: unknown) => isVaultError(e));
  });
});

describe('VaultClient transport failures', () => {
  it('maps connection refused to VAULT_TRANSPORT after retries', async () => {
    const c = new VaultClient({ address: 'http://127.0.0.1:9', retry: FAST });
    try {
      await assert.rejects(c.sealStatus(), (e: unknown) => {
        assert.ok(isFerryError(e));
        assert.equal(e.code, CODES.VAULT_TRANSPORT);
        assert.match(e.message, /^Vault GET sys\/seal-status: /);
        assert.ok(e.cause instanceof Error);
        return true;
      });
    } finally {
      await c.close();
    }
  });

  it('times out a request that gets no answer', async () => {
    const vault = await FakeVault.start();
    vault.handler = () => new Promise(() => {});
    const c = new VaultClient({ address: vault.address, timeoutMs: 100, retry: { ...FAST, maxRetries: 0 } });
    try {
      await assert.rejects(
        c.write('slow', {}),
        (e: unknown) => isFerryError(e) && e.code === CODES.VAULT_TRANSPORT,
      );
    } finally {
      await c.close();
      await vault.close();
    }
  });
});

describe('VaultClient against a hostile server', () => {
  it('cuts off a response body beyond the size limit', async () => {
    // Three times the limit, so that without one the client would read it all.
    const total = 3 * DEFAULT_MAX_RESPONSE_BYTES;
    const vault = await hostileServer(floodBody(total));
    const c = new VaultClient({ address: vault.address, retry: { ...FAST, maxRetries: 0 } });
    try {
      await assert.rejects(c.read('secret/big'), (e: unknown) => {
        assert.ok(isFerryError(e));
        assert.equal(e.code, CODES.VAULT_RESPONSE_TOO_LARGE);
        assert.equal(
          e.message,
          `Vault GET secret/big: response body exceeds the limit of ${DEFAULT_MAX_RESPONSE_BYTES} bytes`,
        );
        return true;
      });
      assert.ok(vault.sent.bytes < total, `the server wrote all ${vault.sent.bytes} bytes`);
    } finally {
      await c.close();
      await vault.close();
    }
  });

  it('caps the timeout, so a huge one neither holds a request for days nor overflows the timers', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on('warning', onWarning);
    const vault = await hostileServer(async (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"data":');
      await new Promise((r) => setTimeout(r, 50));
      res.end('{"k":"v"}}');
    });
    // 1000 h: past 2^31 ms, where a Node timer fires after 1 ms instead.
    const c = new VaultClient({ address: vault.address, timeoutMs: 3_600_000_000, retry: FAST });
    try {
      assert.deepEqual((await c.read('secret/x'))?.data, { k: 'v' });
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(
        warnings.filter((w) => w.name === 'TimeoutOverflowWarning'),
        [],
      );
    } finally {
      process.off('warning', onWarning);
      await c.close();
      await vault.close();
    }
  });

  it('times out a body that trickles in slower than the timeout allows', async () => {
    // One byte every 20 ms never trips an idle timer; the whole-body deadline stops it.
    const vault = await hostileServer(dripBody(150, 20));
    const c = new VaultClient({ address: vault.address, timeoutMs: 300, retry: { ...FAST, maxRetries: 0 } });
    try {
      await assert.rejects(c.read('secret/slow'), (e: unknown) => {
        assert.ok(isFerryError(e));
        assert.equal(e.code, CODES.VAULT_TRANSPORT);
        assert.match(e.message, /^Vault GET secret\/slow: response body not received within 300 ms/);
        return true;
      });
    } finally {
      await c.close();
      await vault.close();
    }
  });
});
