// The Vault client against a real OpenBao/Vault. The shared server comes from FERRY_VAULT_ADDR and
// FERRY_VAULT_TOKEN, else from a running stack (.stack/env.json), else a dev server started here.
// TLS and sealing always use a private `bao server -dev -dev-tls` started here, because sealing a
// shared server would break every other test.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CODES, isFerryError } from '../../src/errors.ts';
import { appRoleAuth } from '../../src/vault/auth/approle.ts';
import { VaultClient } from '../../src/vault/client.ts';
import { isVaultError, type VaultError } from '../../src/vault/errors.ts';
import { readKV } from '../../src/vault/kv.ts';
import { type SessionEvent, VaultSession } from '../../src/vault/session.ts';
import { type DevVault, devVaultBinary, startDevVault } from '../../stack/lib/devvault.ts';
import { type Flavor, loadStackEnv } from '../../stack/lib/stack.ts';
import { UNRELATED_CA_PEM } from '../unit/vault/fixtures.ts';

const FAST_RETRY = { maxRetries: 2, minDelayMs: 20, maxDelayMs: 50 };

async function sharedServerFromEnv(): Promise<{ addr: string; token: string } | undefined> {
  const addr = process.env.FERRY_VAULT_ADDR;
  if (addr) return { addr, token: process.env.FERRY_VAULT_TOKEN ?? 'root' };
  let stack: { addr: string; token: string };
  try {
    const env = loadStackEnv();
    stack = { addr: env.vaultAddr, token: env.vaultToken };
  } catch {
    return undefined;
  }
  // A stack description can outlive its stack; use it only if its Vault answers.
  const probe = new VaultClient({
    address: stack.addr,
    timeoutMs: 2000,
    retry: { ...FAST_RETRY, maxRetries: 0 },
  });
  try {
    await probe.sealStatus();
    return stack;
  } catch {
    return undefined;
  } finally {
    await probe.close();
  }
}

async function rejectsWith(p: Promise<unknown>, check: (err: unknown) => boolean, label: string) {
  try {
    await p;
  } catch (err) {
    assert.ok(check(err), `${label}: unexpected error ${String(err)}`);
    return err;
  }
  assert.fail(`${label}: expected a rejection`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const flavor: Flavor = process.env.FERRY_VAULT_FLAVOR === 'vault' ? 'vault' : 'openbao';
const bin = devVaultBinary(flavor);

describe('Vault client against a real server', () => {
  let own: DevVault | undefined;
  let root: VaultClient;
  let base: VaultClient;
  const kv1 = `ferry-kv1-${suffix}`;
  const kv2 = `ferry-kv2-${suffix}`;

  before(async () => {
    let shared = await sharedServerFromEnv();
    if (!shared) {
      assert.ok(
        bin,
        'no FERRY_VAULT_ADDR, no running stack, and no OpenBao binary (stack/peers.sh ensure openbao)',
      );
      own = await startDevVault(bin);
      shared = { addr: own.addr, token: own.token };
    }
    base = new VaultClient({ address: shared.addr, retry: FAST_RETRY });
    root = base.withToken(shared.token);
    await root.write(`sys/mounts/${kv1}`, { type: 'kv', options: { version: '1' } });
    await root.write(`sys/mounts/${kv2}`, { type: 'kv', options: { version: '2' } });
  });

  after(async () => {
    await root?.delete(`sys/mounts/${kv1}`).catch(() => {});
    await root?.delete(`sys/mounts/${kv2}`).catch(() => {});
    await root?.delete(`sys/auth/approle-${suffix}`).catch(() => {});
    await base?.close();
    own?.stop();
  });

  it('reads seal status without a token', async () => {
    const st = await base.sealStatus();
    assert.equal(st.sealed, false);
    assert.equal(st.initialized, true);
    assert.match(st.version ?? '', /^\d+\.\d+/);
  });

  it('reads KV v1, lists and deletes', async () => {
    await root.write(`${kv1}/app/config`, { user: 'alice', port: 5432 });
    const s = await readKV(root, { mount: kv1, path: 'app/config', type: 'kv-v1' });
    assert.deepEqual(s.data, { user: 'alice', port: 5432 });
    assert.equal(s.metadata, undefined);
    const listed = await root.list(`${kv1}/app`);
    assert.deepEqual(listed?.data?.keys, ['config']);
    await root.delete(`${kv1}/app/config`);
    const err = await rejectsWith(
      readKV(root, { mount: kv1, path: 'app/config', type: 'kv-v1' }),
      (e) => isVaultError(e) && e.isNotFound(),
      'deleted kv-v1',
    );
    assert.equal((err as VaultError).code, CODES.VAULT_API);
  });

  it('reads KV v2 latest and pinned versions; deleted and destroyed versions are not found', async () => {
    // A fresh kv-v2 mount upgrades its storage in the background and refuses writes meanwhile.
    for (let i = 0; ; i++) {
      try {
        await root.write(`${kv2}/data/db`, { data: { password: 'one' } });
        break;
      } catch (err) {
        if (i > 50) throw err;
        await sleep(100);
      }
    }
    await root.write(`${kv2}/data/db`, { data: { password: 'two' } });
    const latest = await readKV(root, { mount: kv2, path: 'db', type: 'kv-v2' });
    assert.deepEqual(latest.data, { password: 'two' });
    assert.equal(latest.metadata?.version, 2);
    assert.deepEqual(latest.raw.data, { password: 'two' });
    const v1 = await readKV(root, { mount: kv2, path: 'db', type: 'kv-v2', version: 1 });
    assert.deepEqual(v1.data, { password: 'one' });
    assert.equal(v1.metadata?.version, 1);
    const v0 = await readKV(root, { mount: kv2, path: 'db', type: 'kv-v2', version: 0 });
    assert.equal(v0.metadata?.version, 2, 'version 0 means latest');

    await root.write(`${kv2}/delete/db`, { versions: [2] });
    await rejectsWith(
      readKV(root, { mount: kv2, path: 'db', type: 'kv-v2' }),
      (e) => isVaultError(e) && e.isNotFound() && /deleted/.test(e.message),
      'deleted latest',
    );
    await root.write(`${kv2}/destroy/db`, { versions: [1] });
    await rejectsWith(
      readKV(root, { mount: kv2, path: 'db', type: 'kv-v2', version: 1 }),
      (e) => isVaultError(e) && e.isNotFound() && /destroyed/.test(e.message),
      'destroyed v1',
    );
    await rejectsWith(
      readKV(root, { mount: kv2, path: 'nope', type: 'kv-v2' }),
      (e) => isVaultError(e) && e.isNotFound(),
      'missing',
    );
  });

  it('maps permission denied to a redacted 403 VaultError', async () => {
    const bogus = 'hvs.CAESIThisIsNotARealTokenButLooksLikeOne0123456789';
    const err = await rejectsWith(
      base.withToken(bogus).read(`${kv1}/x`),
      (e) => isVaultError(e) && e.isForbidden(),
      'bad token',
    );
    assert.ok(!(err as Error).message.includes(bogus));
    assert.match((err as Error).message, /GET .*\/x failed with status 403/);
  });

  it('logs in with AppRole, renews, and re-logs in after the token is revoked', async () => {
    const mount = `approle-${suffix}`;
    await root.write(`sys/auth/${mount}`, { type: 'approle' });
    await root.write(`sys/policies/acl/ferry-${suffix}`, {
      policy: `path "${kv1}/*" { capabilities = ["read", "list"] }`,
    });
    await root.write(`auth/${mount}/role/app`, {
      token_ttl: '4s',
      token_max_ttl: '60s',
      token_policies: [`ferry-${suffix}`],
    });
    const roleId = String((await root.read(`auth/${mount}/role/app/role-id`))?.data?.role_id);
    const newSecretId = async () =>
      String((await root.write(`auth/${mount}/role/app/secret-id`, {}))?.data?.secret_id);
    await root.write(`${kv1}/approle`, { k: 'v' });

    const events: SessionEvent[] = [];
    const session = await VaultSession.login({
      client: base,
      auth: appRoleAuth({ mount, roleId, getSecretId: newSecretId }),
      onEvent: (e) => events.push(e),
    });
    try {
      assert.equal(session.method, 'appRole');
      assert.match(session.clientId, /^[0-9a-f]{64}$/);
      assert.ok(session.policies.includes(`ferry-${suffix}`));
      assert.deepEqual((await readKV(session, { mount: kv1, path: 'approle', type: 'kv-v1' })).data, {
        k: 'v',
      });

      // Renewal at 60–67 % of the 4 s TTL.
      const deadline = Date.now() + 6000;
      while (!events.some((e) => e.type === 'renew') && Date.now() < deadline) await sleep(100);
      const renew = events.find((e) => e.type === 'renew');
      assert.ok(renew, `expected a renewal, saw ${events.map((e) => e.type).join(',')}`);

      // Revoke the token behind the session's back: the next request sees 403 and taints it.
      const firstId = session.clientId;
      await root.write('auth/token/revoke-accessor', { accessor: session.accessor });
      await rejectsWith(session.read(`${kv1}/approle`), (e) => isVaultError(e) && e.isForbidden(), 'revoked');
      assert.equal(session.tainted, true);
      await session.validate();
      assert.equal(session.tainted, false);
      assert.notEqual(session.clientId, firstId);
      assert.ok(events.some((e) => e.type === 'login' && e.reason === 'invalid'));
      assert.deepEqual((await readKV(session, { mount: kv1, path: 'approle', type: 'kv-v1' })).data, {
        k: 'v',
      });

      // A policy denial (403 on a path the token may not read) taints, but lookup-self clears it.
      await rejectsWith(session.read(`${kv2}/data/db`), (e) => isVaultError(e) && e.isForbidden(), 'denied');
      const idBefore = session.clientId;
      await session.validate();
      assert.equal(session.tainted, false);
      assert.equal(session.clientId, idBefore, 'a valid token is kept');
    } finally {
      await session.revoke();
    }
  });

  it('logs in again when renewal is truncated by the max TTL', async () => {
    const mount = `approle-${suffix}`;
    await root.write(`auth/${mount}/role/short`, { token_ttl: '4s', token_max_ttl: '5s' });
    const roleId = String((await root.read(`auth/${mount}/role/short/role-id`))?.data?.role_id);
    const events: SessionEvent[] = [];
    const session = await VaultSession.login({
      client: base,
      auth: appRoleAuth({
        mount,
        roleId,
        getSecretId: async () =>
          String((await root.write(`auth/${mount}/role/short/secret-id`, {}))?.data?.secret_id),
      }),
      onEvent: (e) => events.push(e),
    });
    try {
      const deadline = Date.now() + 8000;
      while (!events.some((e) => e.type === 'login' && e.reason === 'max-ttl') && Date.now() < deadline) {
        await sleep(100);
      }
      // Vault rounds the remaining TTL to whole seconds, so the cap may show after one or two renewals.
      const seen = events.map((e) => (e.type === 'login' ? `login:${e.reason}` : e.type));
      assert.equal(seen[0], 'login:initial');
      assert.equal(seen.at(-1), 'login:max-ttl', seen.join(','));
      assert.ok(seen.slice(1, -1).every((t) => t === 'renew') && seen.length >= 3, seen.join(','));
      await session.read('auth/token/lookup-self');
    } finally {
      await session.revoke();
    }
  });
});

describe('Vault client over TLS and sealing (private dev-tls server)', {
  skip: !bin && `no ${flavor} binary`,
}, () => {
  let srv: DevVault;
  let ca: string;

  before(async () => {
    srv = await startDevVault(bin!, { tls: true });
    ca = readFileSync(join(srv.dir, 'vault-ca.pem'), 'utf8');
  });

  after(() => srv.stop());

  it('verifies the server with the given CA', async () => {
    const c = new VaultClient({ address: srv.addr, caCertPem: ca });
    try {
      assert.equal((await c.sealStatus()).sealed, false);
    } finally {
      await c.close();
    }
  });

  it('fails clearly with the wrong CA, or with none', async () => {
    for (const opts of [{ caCertPem: UNRELATED_CA_PEM }, {}]) {
      const c = new VaultClient({ address: srv.addr, retry: FAST_RETRY, ...opts });
      try {
        const err = await rejectsWith(
          c.sealStatus(),
          (e) => isFerryError(e) && e.code === CODES.VAULT_TRANSPORT,
          'wrong CA',
        );
        assert.match((err as Error).message, /GET sys\/seal-status: .*certificate/i);
      } finally {
        await c.close();
      }
    }
  });

  it('skips verification only when asked', async () => {
    const c = new VaultClient({ address: srv.addr, skipTLSVerify: true });
    try {
      assert.equal((await c.sealStatus()).initialized, true);
    } finally {
      await c.close();
    }
  });

  it('verifies against tlsServerName (SNI), not the address host', async () => {
    // `localhost4` is in the dev certificate's SANs but does not resolve: success proves the name is
    // used for TLS only, and the mismatch case proves it is the name verified.
    const good = new VaultClient({ address: srv.addr, caCertPem: ca, tlsServerName: 'localhost4' });
    const bad = new VaultClient({ address: srv.addr, caCertPem: ca, tlsServerName: 'not-in-cert.example' });
    try {
      assert.equal((await good.sealStatus()).sealed, false);
      await rejectsWith(
        bad.sealStatus(),
        (e) => isFerryError(e) && e.code === CODES.VAULT_TRANSPORT && /not-in-cert|altnames/i.test(e.message),
        'SNI mismatch',
      );
    } finally {
      await good.close();
      await bad.close();
    }
  });

  it('sends tlsServerName as the SNI extension', async () => {
    // Reuse the dev server's key pair on a local TLS listener that records the SNI it receives.
    let seen: string | undefined;
    const https = createHttpsServer(
      {
        key: readFileSync(join(srv.dir, 'vault-key.pem')),
        cert: readFileSync(join(srv.dir, 'vault-cert.pem')),
      },
      (req, res) => {
        seen = (req.socket as { servername?: string }).servername;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ sealed: false, initialized: true }));
      },
    );
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
    const port = (https.address() as { port: number }).port;
    const c = new VaultClient({
      address: `https://127.0.0.1:${port}`,
      caCertPem: ca,
      tlsServerName: 'localhost',
    });
    try {
      await c.sealStatus();
      assert.equal(seen, 'localhost');
    } finally {
      await c.close();
      https.close();
    }
  });

  it('reports a sealed Vault through seal-status and isSealed, and recovers after unseal', async () => {
    const c = new VaultClient({ address: srv.addr, caCertPem: ca, retry: FAST_RETRY });
    const root = c.withToken(srv.token);
    try {
      await root.write('sys/seal');
      assert.equal((await c.sealStatus()).sealed, true);
      const err = await rejectsWith(
        root.read('secret/data/anything'),
        (e) => isVaultError(e) && e.isSealed(),
        'sealed read',
      );
      assert.equal((err as VaultError).status, 503);
      await c.write('sys/unseal', { key: srv.unsealKey });
      assert.equal((await c.sealStatus()).sealed, false);
    } finally {
      await c.close();
    }
  });
});
