// NodePublishVolume latency for a pod with 5 KV secrets, and for a pod with leased secrets, against
// the running stack
// (`npm run stack -- up`): the driver runs in process as its ServiceAccount (deploy/csi/rbac.yaml)
// and is called over its unix socket as kubelet would.
//   cold: the Vault client cache is emptied before each publish (TokenRequest for the VaultAuth's
//         ServiceAccount + Vault login + 5 reads)
//   warm: the Vault session is cached (5 reads)
//   leased: 3 KV secrets, database credentials (PostgreSQL) and a PKI certificate, warm session;
//         and after the last unpublish, how long until the lease and certificate are revoked
// Every iteration is a full publish (the previous one is unpublished first, so the idempotency
// check never short-circuits) including the TokenReview of the pod token, the Pod GET, the tmpfs
// mount (or directory where mounting is not permitted) and the atomic write.
//   node bench/csi-publish.ts [--cold N] [--warm N] [--leased N]
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Namespaces } from '../src/k8s/resources.ts';
import {
  csiSecretsManifest,
  makePod,
  publishRequest,
  startTestDriver,
  type TestDriver,
  targetOf,
  volumeIdOf,
} from '../stack/lib/csi.ts';
import {
  adminClient,
  apply,
  ensureNamespace,
  leasedSecretsPolicy,
  tenant,
  VaultAdmin,
} from '../stack/lib/fixtures.ts';
import { loadStackEnv } from '../stack/lib/stack.ts';
import { benchArgs } from './lib/args.ts';

const values = benchArgs({ cold: 30, warm: 100, leased: 30 });
const _ROOT = join(import.meta.dirname, '..');

const env = loadStackEnv();
const kube = adminClient(env);
const vault = new VaultAdmin(env);
const ns = `csi-bench-${randomBytes(3).toString('hex')}`;
const dir = await mkdtemp(join(tmpdir(), 'ferry-csi-bench-'));
let csi: TestDriver | undefined;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? Number.NaN;
}

try {
  await tenant(env, kube, vault, ns);
  await ensureNamespace(kube, ns, ['web']);
  const statics = [];
  for (let i = 0; i < 5; i++) {
    await vault.kvPut('kvv2', `${ns}/s${i}`, {
      username: `u${i}`,
      password: randomBytes(16).toString('hex'),
    });
    statics.push({ mount: 'kvv2', path: `${ns}/s${i}`, type: 'kv-v2' });
  }
  await apply(
    kube,
    csiSecretsManifest(ns, 'db', {
      vaultAuthRef: { name: 'auth' },
      accessControl: { serviceAccountPattern: 'web', namespacePatterns: [ns], podLabels: { app: 'web' } },
      secrets: { vaultStaticSecrets: statics },
    }),
  );
  // Leased: a database engine on the stack's PostgreSQL and a PKI mount.
  const db = `db-${ns}`;
  const pki = `pki-${ns}`;
  await vault.policy(
    `t-${ns}`,
    [`path "kvv2/data/${ns}/*" { capabilities = ["read"] }`, ...leasedSecretsPolicy(db, pki)].join('\n'),
  );
  await vault.postgresEngine(db, { defaultTtl: '1h', maxTtl: '2h' });
  await vault.pkiEngine(pki, { allow_any_name: true, max_ttl: '1h' });
  await apply(
    kube,
    csiSecretsManifest(ns, 'leased', {
      vaultAuthRef: { name: 'auth' },
      accessControl: { serviceAccountPattern: 'web', namespacePatterns: [ns], podLabels: { app: 'web' } },
      secrets: {
        vaultStaticSecrets: statics.slice(0, 3),
        vaultDynamicSecrets: [{ mount: db, path: 'creds/dyn' }],
        vaultPKISecrets: [{ mount: pki, role: 'web', commonName: 'web.bench', ttl: '1h' }],
      },
    }),
  );
  const pod = await makePod(kube, {
    namespace: ns,
    name: 'web',
    serviceAccount: 'web',
    labels: { app: 'web' },
  });
  const leasedPod = await makePod(kube, {
    namespace: ns,
    name: 'leased',
    serviceAccount: 'web',
    labels: { app: 'web' },
    csiSecretsName: 'leased',
  });
  csi = await startTestDriver(env, kube, dir);
  const { client, driver } = csi;
  const target = targetOf(dir, pod);
  const volumeId = volumeIdOf(pod);
  const req = publishRequest(dir, pod);
  const c = client;
  const d = driver;
  const tmpfs = csi.tmpfs;
  const once = async (cold: boolean): Promise<number> => {
    await c.node('NodeUnpublishVolume', { volume_id: volumeId, target_path: target });
    if (cold) await d.vaultClients.clear({ revoke: true });
    const t0 = performance.now();
    await c.node('NodePublishVolume', req);
    return performance.now() - t0;
  };
  for (let i = 0; i < 5; i++) await once(false); // JIT and connection warm-up
  const cold: number[] = [];
  for (let i = 0; i < values.cold; i++) cold.push(await once(true));
  const warm: number[] = [];
  for (let i = 0; i < values.warm; i++) warm.push(await once(false));
  const t0 = performance.now();
  await c.node('NodePublishVolume', req);
  const idem = performance.now() - t0;

  const leasedReq = publishRequest(dir, leasedPod, { attrs: { csiSecretsName: 'leased' } });
  const leasedUnpublish = { volume_id: volumeIdOf(leasedPod), target_path: targetOf(dir, leasedPod) };
  const leased: number[] = [];
  for (let i = 0; i < values.leased; i++) {
    const t = performance.now();
    await c.node('NodePublishVolume', leasedReq);
    leased.push(performance.now() - t);
    await c.node('NodeUnpublishVolume', leasedUnpublish);
  }
  await c.node('NodePublishVolume', leasedReq);
  const revoked0 = d.node.stats.revocations;
  const tu = performance.now();
  await c.node('NodeUnpublishVolume', leasedUnpublish);
  const unpublishMs = performance.now() - tu;
  while (d.node.stats.revocations < revoked0 + 2) await new Promise((r) => setTimeout(r, 2));
  const revokedMs = performance.now() - tu;
  const fmt = (xs: number[]) =>
    `p50 ${pct(xs, 50).toFixed(1)} ms  p99 ${pct(xs, 99).toFixed(1)} ms  (n=${xs.length}, max ${Math.max(...xs).toFixed(1)} ms)`;
  process.stdout.write(
    [
      `NodePublishVolume, 5 kv-v2 secrets (${env.flavor}, ${tmpfs ? 'tmpfs' : 'plain directory'}):`,
      `  cold (no cached Vault session): ${fmt(cold)}`,
      `  warm (cached Vault session):    ${fmt(warm)}`,
      `  idempotent republish:           ${idem.toFixed(1)} ms`,
      'NodePublishVolume, 3 kv-v2 + database credentials + PKI certificate (warm session):',
      `  publish:                        ${fmt(leased)}`,
      `  unpublish returned after ${unpublishMs.toFixed(1)} ms; lease and certificate revoked after ${revokedMs.toFixed(1)} ms`,
      '',
    ].join('\n'),
  );
  await c.node('NodeUnpublishVolume', { volume_id: volumeId, target_path: target });
} finally {
  await csi?.stop();
  await kube.delete(Namespaces, ns).catch(() => {});
  for (const m of [`db-${ns}`, `pki-${ns}`]) await vault.call('DELETE', `sys/mounts/${m}`).catch(() => {});
  await vault.close();
  await kube.close();
  await rm(dir, { recursive: true, force: true });
}
