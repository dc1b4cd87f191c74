// Leased secrets in a CSI volume, end to end with the real database secrets engine and PostgreSQL,
// the real PKI engine, and the driver in process as its own ServiceAccount: credentials and a
// certificate are delivered, the lease is renewed for as long as the volume is published, replaced
// when its max TTL runs out (the old one revoked), the certificate re-issued in its window (the old
// serial revoked), everything revoked at unpublish, and a restarted driver picks all of it up from its
// state directory. No password or private key may reach Events, the CSISecrets or etcd.
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { CSISecretsResource } from '../../src/api/resources.ts';
import type { CSISecrets } from '../../src/api/v1beta1/csisecrets.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import {
  type CsiTenant,
  csiSecretsManifest,
  csiTenant,
  makePod,
  type PodRef,
  scanEtcd,
  startTestDriver,
  type TestDriver,
  targetOf,
} from '../../stack/lib/csi.ts';
import {
  apply,
  assertNotIn,
  eventsOf,
  eventually,
  leasedSecretsPolicy,
  pgLogin,
  type VaultAdmin,
} from '../../stack/lib/fixtures.ts';
import { freePort } from '../../stack/lib/proc.ts';
import { type StackEnv, uniqueName, useStack } from './harness.ts';

const DOMAIN = 'ferry.test';

describe('CSI volumes with leased secrets (database credentials, PKI certificates)', () => {
  let env: StackEnv;
  let t: CsiTenant;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let csi: TestDriver;
  let dir: string;
  let ns: string;
  let db: string;
  let pki: string;
  /** Every password and private key the driver wrote: none may leave the volume. */
  const secrets = new Set<string>();
  const figures: Record<string, unknown> = {};
  let metricsPort: number;
  const driverOptions = () => ({
    stateDir: join(dir, 'state'),
    healthAddress: `127.0.0.1:${metricsPort}`,
  });

  const file = async (p: PodRef, name: string): Promise<string> => {
    const v = await readFile(join(targetOf(dir, p), name), 'utf8');
    if (/password|private_key|tls\.key/.test(name)) secrets.add(v);
    return v;
  };
  const creds = async (p: PodRef) => ({
    username: await file(p, 'dynamic_secret_0_username'),
    password: await file(p, 'dynamic_secret_0_password'),
  });
  const serialOf = (p: PodRef) => file(p, 'pki_secret_0_serial_number');
  /** Leases under the dynamic role (LIST sys/leases/lookup/<mount>/creds/dyn). */
  const leases = async (): Promise<string[]> => {
    const res = await vault.call('GET', `sys/leases/lookup/${db}/creds/dyn?list=true`);
    return (res?.data as { keys?: string[] } | undefined)?.keys ?? [];
  };
  const revoked = async (serial: string): Promise<boolean> => {
    const r = await vault.call('GET', `${pki}/cert/${serial}`);
    return ((r?.data as { revocation_time?: number } | undefined)?.revocation_time ?? 0) > 0;
  };

  before(async () => {
    env = await useStack();
    metricsPort = await freePort();
    t = await csiTenant(env, uniqueName('csi-lease'), ['web'], (d: string) => {
      dir = d;
      return driverOptions();
    });
    ({ kube, vault, csi, dir, ns } = t);
    db = `db-${ns}`;
    pki = `pki-${ns}`;
    await vault.policy(`t-${ns}`, leasedSecretsPolicy(db, pki).join('\n'));
    await vault.postgresEngine(db, { defaultTtl: '10s', maxTtl: '30s' });
    await vault.pkiEngine(pki, {
      allowed_domains: [DOMAIN],
      allow_subdomains: true,
      max_ttl: '1h',
      not_before_duration: '1s',
    });
    await apply(
      kube,
      csiSecretsManifest(ns, 'db', {
        vaultAuthRef: { name: 'auth' },
        accessControl: { serviceAccountPattern: 'web', namespacePatterns: [ns] },
        secrets: {
          vaultDynamicSecrets: [{ mount: db, path: 'creds/dyn' }],
          vaultPKISecrets: [{ mount: pki, role: 'web', commonName: `app.${DOMAIN}`, ttl: '24s' }],
        },
      }),
    );
  });

  after(async () => {
    process.stderr.write(`[csi leased e2e] ${JSON.stringify(figures)}\n`);
    await vault?.call('DELETE', `sys/mounts/${db}`).catch(() => {});
    await vault?.call('DELETE', `sys/mounts/${pki}`).catch(() => {});
    await t?.close();
  });

  it('delivers credentials and a certificate, renews, replaces and revokes them for the pod', async () => {
    const p = await makePod(kube, { namespace: ns, name: 'web-1', serviceAccount: 'web' });
    const t0 = Date.now();
    await eventually('published', async () => {
      await csi.publish(p);
      return true;
    });
    figures.publishMs = Date.now() - t0;

    const first = await creds(p);
    assert.equal(await pgLogin(env, first.username, first.password), first.username, 'credentials log in');
    const cert = new X509Certificate(await file(p, 'pki_secret_0_certificate'));
    assert.match(cert.subject, new RegExp(`CN=app\\.${DOMAIN.replace('.', '\\.')}`));
    assert.ok(cert.checkPrivateKey(createPrivateKey(await file(p, 'pki_secret_0_tls.key'))), 'key matches');
    assert.ok((await file(p, 'pki_secret_0_tls.crt')).startsWith(cert.toString().trim()));
    await file(p, 'pki_secret_0_ca.crt');
    const serial1 = await serialOf(p);
    assert.equal((await leases()).length, 1);

    // Renewal in place: same user, still logs in (lease 10 s, renewed at ~67-77 %).
    const renewals0 = csi.driver.node.stats.renewals;
    await eventually('a lease renewal', async () => csi.driver.node.stats.renewals > renewals0, 15_000);
    assert.equal((await creds(p)).username, first.username, 'renewal keeps the user');
    assert.equal(await pgLogin(env, first.username, first.password), first.username);

    // The max TTL (30 s) truncates a renewal: new credentials in the files, the old lease revoked.
    const second = await eventually(
      'new credentials after the max TTL',
      async () => {
        const c = await creds(p);
        return c.username !== first.username ? c : undefined;
      },
      40_000,
    );
    figures.replacedAfterMs = Date.now() - t0;
    assert.equal(await pgLogin(env, second.username, second.password), second.username, 'new ones log in');
    await eventually(
      'the old credentials revoked',
      async () => (await pgLogin(env, first.username, first.password)) instanceof Error,
    );
    await eventually('one lease left under the role', async () => (await leases()).length === 1);

    // The certificate (24 s) is re-issued at two thirds of its life; the old serial is revoked.
    const serial2 = await eventually(
      'a new certificate',
      async () => {
        const s = await serialOf(p);
        return s !== serial1 ? s : undefined;
      },
      30_000,
    );
    figures.certReplacedAfterMs = Date.now() - t0;
    await eventually('the old serial revoked', () => revoked(serial1));
    assert.equal(await revoked(serial2), false);

    // Unpublish: files gone, then every lease and the certificate revoked.
    const last = await creds(p);
    await csi.unpublish(p);
    await assert.rejects(lstat(targetOf(dir, p)), { code: 'ENOENT' });
    await eventually('no lease left', async () => (await leases()).length === 0);
    await eventually('the last serial revoked', () => revoked(serial2));
    assert.ok((await pgLogin(env, last.username, last.password)) instanceof Error, 'revoked at unpublish');
  });

  it('a restarted driver resumes the volume: its lease replaced under the new token, then revoked at unpublish', async () => {
    const p = await makePod(kube, { namespace: ns, name: 'web-2', serviceAccount: 'web' });
    await eventually('published', async () => {
      await csi.publish(p);
      return true;
    });
    const before = await creds(p);
    const serial = await serialOf(p);
    await csi.stop();
    csi = t.csi = await startTestDriver(env, kube, dir, driverOptions());
    // The new process holds no pod token (they live in memory only) until kubelet republishes;
    // its upkeep retries until then.
    await csi.publish(p);
    const after = await eventually(
      'the lease replaced by the new process',
      async () => {
        const c = await creds(p);
        return c.username !== before.username ? c : undefined;
      },
      15_000,
    );
    assert.equal(await pgLogin(env, after.username, after.password), after.username);
    await eventually(
      'the previous lease revoked',
      async () => (await pgLogin(env, before.username, before.password)) instanceof Error,
    );
    assert.equal(await serialOf(p), serial, 'the certificate is kept');
    await csi.unpublish(p);
    await eventually('no lease left', async () => (await leases()).length === 0);
    await eventually('the serial revoked', () => revoked(serial));
  });

  it('no password or private key reached Events, the CSISecrets, the driver metrics or etcd', async () => {
    assert.ok(secrets.size >= 4, `collected ${secrets.size} values`);
    const events = await eventsOf(kube, ns);
    const objs = await kube.list<CSISecrets>(CSISecretsResource, { namespace: ns });
    assertNotIn(secrets, JSON.stringify(events) + JSON.stringify(objs.items), 'an Event or object');
    const res = await request(`http://127.0.0.1:${metricsPort}/metrics`);
    const metrics = await res.body.text();
    assert.equal(res.statusCode, 200);
    assert.match(metrics, /ferry_csi_upkeep_total\{action="revocations"\} [1-9]/);
    assert.match(metrics, /^ferry_csi_volumes 0$/m, 'the restarted driver resumed, then unpublished');
    assertNotIn(secrets, metrics, 'the driver metrics');
    const found = await scanEtcd(env.etcd, [...secrets]);
    figures.etcd = { keys: found.keys, found: found.hits.size, of: secrets.size };
    assert.equal(found.hits.size, 0, 'a leased secret value is in etcd');
  });
});
