// VaultPKISecret end to end against the real PKI engine of the stack's Vault/OpenBao: certificates
// checked with a real X.509 parser (chain, SANs, TTL, key pair), renewal inside the window, revocation
// checked in the CRL (parsed by openssl) and in cert/<serial>, re-issue on spec change and drift,
// deletion (revoke, clear), rollout restarts only on rotation, and no private key anywhere visible.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { VaultAuths, VaultPKISecrets } from '../../src/api/resources.ts';
import type { VaultPKISecret } from '../../src/api/v1beta1/vaultpkisecret.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Deployments, Secrets } from '../../src/k8s/resources.ts';
import type { KubeObject, Secret } from '../../src/k8s/types.ts';
import {
  adminClient,
  apply,
  assertNoLeak,
  condition,
  decodeData,
  deployment,
  eventsOf,
  eventually,
  type Manifest,
  restartedAt,
  tamper,
  tenant,
  VaultAdmin,
  vps,
} from '../../stack/lib/fixtures.ts';
import { type StackEnv, uniqueName, useStack } from './harness.ts';

const DOMAIN = 'example.test';

/** Vault writes serials as colon-separated hex, Node and openssl as bare upper-case hex. */
const normSerial = (s: string): string => s.replace(/:/g, '').toUpperCase().replace(/^0+/, '');

/** A string field of a Vault response's data. */
function field(res: Record<string, unknown> | undefined, key: string): string {
  const v = (res?.data as Record<string, unknown> | undefined)?.[key];
  assert.equal(typeof v, 'string', `response has ${key}`);
  return v as string;
}

function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** The base64 body of a PEM private key: what must never show up anywhere but the Secret. */
function keyBody(pem: string): string {
  return pem
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('-----'))
    .join('');
}

describe('VaultPKISecret', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  let mount: string;
  let rootPem: string;
  let intPem: string;
  const privateKeys: string[] = [];

  const get = (name: string): Promise<VaultPKISecret> => kube.get<VaultPKISecret>(VaultPKISecrets, name, ns);
  /** A VaultPKISecret issuing from the PKI role `web`. */
  const webCert = (name: string, spec: Record<string, unknown>) => vps(ns, name, { role: 'web', ...spec });
  const secret = (name: string): Promise<Secret | undefined> => kube.getIfExists<Secret>(Secrets, name, ns);
  /** The VaultPKISecret once it reports a synced certificate, optionally a different one than `not`. */
  const issued = (name: string, not?: string, timeoutMs = 30_000): Promise<VaultPKISecret> =>
    eventually(
      `certificate of ${name}${not ? ` other than ${not}` : ''}`,
      async () => {
        const o = await get(name);
        const s = o.status;
        const ok = s?.valid && s.serialNumber && s.serialNumber !== not;
        return ok && s.lastGeneration === o.metadata.generation ? o : undefined;
      },
      timeoutMs,
    );
  /** Destination data once it carries the certificate with `serial`. */
  const dataFor = async (name: string, serial: string): Promise<Record<string, string>> =>
    eventually(`Secret ${name} with ${serial}`, async () => {
      const d = decodeData((await secret(name))?.data);
      if (d.serial_number !== serial) return undefined;
      if (d.private_key) privateKeys.push(keyBody(d.private_key));
      return d;
    });
  const revocationTime = async (serial: string): Promise<number> => {
    const r = await vault.call('GET', `${mount}/cert/${serial}`);
    return Number((r?.data as { revocation_time?: number } | undefined)?.revocation_time ?? 0);
  };
  const crlSerials = async (): Promise<Set<string>> => {
    const res = await request(`${env.vaultAddr}/v1/${mount}/crl/pem`);
    const pem = await res.body.text();
    if (res.statusCode !== 200 || !pem.includes('BEGIN X509 CRL')) return new Set();
    const text = execFileSync('openssl', ['crl', '-inform', 'PEM', '-text', '-noout'], {
      input: pem,
      encoding: 'utf8',
    });
    return new Set([...text.matchAll(/Serial Number:\s*([0-9A-Fa-f]+)/g)].map((m) => normSerial(m[1] ?? '')));
  };
  const assertRevoked = async (serial: string): Promise<void> => {
    await eventually(
      `${serial} in the CRL`,
      async () => (await crlSerials()).has(normSerial(serial)),
      15_000,
    );
    assert.ok((await revocationTime(serial)) > 0, `${serial} has a revocation_time`);
  };

  before(async () => {
    env = await useStack();
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('vps');
    mount = `pki-${ns}`;
    await tenant(env, kube, vault, ns);

    // A root issuer (the mount's default) and an intermediate signed by it, in one mount.
    await vault.call('POST', `sys/mounts/${mount}`, { type: 'pki' });
    await vault.call('POST', `sys/mounts/${mount}/tune`, { max_lease_ttl: '48h' });
    const root = await vault.call('POST', `${mount}/root/generate/internal`, {
      common_name: `Ferry test root ${ns}`,
      issuer_name: 'root',
      key_type: 'ec',
      ttl: '24h',
    });
    rootPem = field(root, 'certificate').trim();
    const csr = await vault.call('POST', `${mount}/intermediate/generate/internal`, {
      common_name: `Ferry test intermediate ${ns}`,
      key_type: 'ec',
    });
    const signed = await vault.call('POST', `${mount}/root/sign-intermediate`, {
      csr: field(csr, 'csr'),
      common_name: `Ferry test intermediate ${ns}`,
      ttl: '23h',
      issuer_ref: 'root',
    });
    intPem = field(signed, 'certificate').trim();
    const set = await vault.call('POST', `${mount}/intermediate/set-signed`, { certificate: intPem });
    const [intId] = (set?.data as { imported_issuers?: string[] } | undefined)?.imported_issuers ?? [];
    assert.ok(intId, 'the intermediate was imported');
    await vault.call('POST', `${mount}/issuer/${intId}`, { issuer_name: 'int' });
    await vault.call('POST', `${mount}/config/issuers`, { default: 'root' });
    await vault.call('POST', `${mount}/roles/web`, {
      allowed_domains: [DOMAIN],
      allow_subdomains: true,
      allow_ip_sans: true,
      allowed_uri_sans: ['spiffe://*'],
      key_type: 'ec',
      max_ttl: '2h',
    });
    await vault.policy(
      `pki-${ns}`,
      [
        `path "${mount}/issue/web" { capabilities = ["update"] }`,
        `path "${mount}/issuer/+/issue/web" { capabilities = ["update"] }`,
        `path "${mount}/revoke" { capabilities = ["update"] }`,
      ].join('\n'),
    );
    await vault.kubernetesRole(`t-${ns}`, {
      serviceAccount: 'app',
      namespace: ns,
      policies: [`t-${ns}`, `pki-${ns}`],
    });
  });

  after(async () => {
    // No private key may reach the operator's log, Events or status of any object in the namespace.
    assert.ok(privateKeys.length > 0, 'private keys were collected');
    await assertNoLeak(env, kube, ns, VaultPKISecrets, privateKeys, 'a private key');
    await vault.call('DELETE', `sys/mounts/${mount}`).catch(() => undefined);
    await vault.close();
    await kube.close();
  });

  it('issues into a kubernetes.io/tls Secret: chain, SANs, TTL, key pair, ca.crt and all response keys', async () => {
    await apply(
      kube,
      webCert('web', {
        mount,
        commonName: `web.${DOMAIN}`,
        altNames: [`alt.${DOMAIN}`],
        ipSans: ['10.0.0.7'],
        uriSans: ['spiffe://cluster/ns/app'],
        ttl: '30m',
        destination: { name: 'web-tls', create: true, type: 'kubernetes.io/tls' },
      }),
    );
    const o = await issued('web');
    const serial = o.status?.serialNumber ?? '';
    const d = await dataFor('web-tls', serial);
    const s = await secret('web-tls');
    assert.equal(s?.type, 'kubernetes.io/tls');

    const blocks = pemBlocks(d['tls.crt'] ?? '');
    assert.equal(blocks.length, 2, 'tls.crt is the leaf followed by the issuing CA');
    const leaf = new X509Certificate(blocks[0] ?? '');
    const root = new X509Certificate(rootPem);
    assert.ok(leaf.checkIssued(root) && leaf.verify(root.publicKey), 'leaf verifies against the root CA');
    assert.equal(d['ca.crt']?.trim(), rootPem, 'ca.crt is the issuing CA');
    assert.equal(normSerial(leaf.serialNumber), normSerial(serial));

    const sans = (leaf.subjectAltName ?? '').split(', ').sort();
    assert.deepEqual(sans, [
      `DNS:alt.${DOMAIN}`,
      `DNS:web.${DOMAIN}`,
      'IP Address:10.0.0.7',
      'URI:spiffe://cluster/ns/app',
    ]);
    const ttlS = (leaf.validToDate.getTime() - Date.now()) / 1000;
    assert.ok(Math.abs(ttlS - 1800) < 60, `TTL ≈ 30 min (got ${ttlS.toFixed(0)} s)`);
    assert.equal(o.status?.expiration, Math.floor(leaf.validToDate.getTime() / 1000));

    const key = createPrivateKey(d['tls.key'] ?? '');
    assert.ok(leaf.checkPrivateKey(key), 'tls.key matches the certificate');
    assert.deepEqual(
      createPublicKey(key).export({ type: 'spki', format: 'der' }),
      leaf.publicKey.export({ type: 'spki', format: 'der' }),
    );
    for (const k of [
      'certificate',
      'private_key',
      'private_key_type',
      'issuing_ca',
      'serial_number',
      'expiration',
      '_raw',
    ])
      assert.ok(d[k] !== undefined, `original key ${k} kept`);
    assert.equal(d.ca_chain, undefined, 'a root issuer leaves ca_chain empty (remove_roots_from_chain)');
    assert.equal(d.private_key, d['tls.key']);
    assert.equal(JSON.parse(d._raw ?? '{}').serial_number, serial);
    assert.match(o.status?.secretMAC ?? '', /^[A-Za-z0-9+/]{43}=$/);
    for (const t of ['SecretSynced', 'Healthy', 'Ready']) assert.equal(condition(o, t)?.status, 'True', t);
    assert.ok(o.metadata.finalizers?.includes('vaultpkisecrets.secrets.hashicorp.com/finalizer'));
  });

  it('issues through issuerRef from an intermediate: ca_chain set and ca.crt still present (VSO #178)', async () => {
    await apply(
      kube,
      webCert('via-int', {
        mount,
        issuerRef: 'int',
        commonName: `int.${DOMAIN}`,
        ttl: '10m',
        destination: { name: 'via-int', create: true, type: 'kubernetes.io/tls' },
      }),
    );
    const o = await issued('via-int');
    const d = await dataFor('via-int', o.status?.serialNumber ?? '');
    const [leafPem, chainPem, ...rest] = pemBlocks(d['tls.crt'] ?? '');
    assert.equal(rest.length, 0, 'the root is not in tls.crt');
    const leaf = new X509Certificate(leafPem ?? '');
    const int = new X509Certificate(chainPem ?? '');
    const root = new X509Certificate(rootPem);
    assert.equal(int.fingerprint256, new X509Certificate(intPem).fingerprint256);
    assert.ok(leaf.checkIssued(int) && leaf.verify(int.publicKey), 'leaf ← intermediate');
    assert.ok(int.checkIssued(root) && int.verify(root.publicKey), 'intermediate ← root');
    assert.equal(d.ca_chain?.trim(), intPem, 'ca_chain is newline-joined PEM without the root');
    assert.equal(d['ca.crt']?.trim(), intPem, 'ca.crt is the issuing CA');
  });

  it('renews inside the window, restarts the rollout only on rotation, revokes the previous serial', async () => {
    await apply(kube, deployment(ns, 'app', 0));
    const appRestartedAt = () => restartedAt(kube, Deployments, 'app', ns);

    await apply(
      kube,
      webCert('short', {
        mount,
        commonName: `short.${DOMAIN}`,
        ttl: '10s',
        expiryOffset: '5s',
        revoke: true,
        rolloutRestartTargets: [{ kind: 'Deployment', name: 'app' }],
        destination: { name: 'short', create: true },
      }),
    );
    const first = await issued('short');
    const s1 = first.status?.serialNumber ?? '';
    const exp1 = first.status?.expiration ?? 0;
    await dataFor('short', s1);
    assert.equal(await appRestartedAt(), undefined, 'no restart on the first issue');

    const second = await issued('short', s1, 15_000);
    const s2 = second.status?.serialNumber ?? '';
    const rotatedAt = (second.status?.lastRotation ?? 0) * 1000;
    assert.ok(rotatedAt < exp1 * 1000, 'renewed before the old certificate expired');
    assert.ok(
      rotatedAt >= (exp1 - 6) * 1000,
      `renewed inside the window (${exp1 * 1000 - rotatedAt} ms before expiry)`,
    );
    await dataFor('short', s2);
    assert.ok(await eventually('restartedAt annotation', appRestartedAt), 'restart on rotation');
    await assertRevoked(s1);
    const events = await eventsOf(kube, ns, 'short');
    assert.ok(events.some((e) => e.reason === 'SecretRotated'));
    assert.ok(events.some((e) => e.reason === 'RolloutRestartTriggered'));

    // Deletion revokes the current certificate and releases the finalizer.
    const last = (await get('short')).status?.serialNumber ?? '';
    await kube.delete(VaultPKISecrets, 'short', ns);
    await eventually(
      'short gone',
      async () => (await kube.getIfExists(VaultPKISecrets, 'short', ns)) === undefined,
    );
    await assertRevoked(last);
  });

  it('re-issues on any spec change (altNames, VSO #465), on drift and when the destination is deleted', async () => {
    const before = (await issued('web')).status?.serialNumber ?? '';
    await apply(
      kube,
      webCert('web', {
        mount,
        commonName: `web.${DOMAIN}`,
        altNames: [`alt.${DOMAIN}`, `new.${DOMAIN}`],
        ipSans: ['10.0.0.7'],
        uriSans: ['spiffe://cluster/ns/app'],
        ttl: '30m',
        destination: { name: 'web-tls', create: true, type: 'kubernetes.io/tls' },
      }),
    );
    const changed = (await issued('web', before)).status?.serialNumber ?? '';
    const d = await dataFor('web-tls', changed);
    const leaf = new X509Certificate(pemBlocks(d['tls.crt'] ?? '')[0] ?? '');
    assert.ok(leaf.subjectAltName?.includes(`DNS:new.${DOMAIN}`), 'the new altName is in the certificate');
    assert.equal(await revocationTime(before), 0, 'revoke: false leaves the previous certificate alone');

    // Someone edits the destination: a new certificate replaces the tampered data.
    await tamper(kube, ns, 'web-tls', 'tls.crt', 'x');
    const healed = (await issued('web', changed)).status?.serialNumber ?? '';
    await dataFor('web-tls', healed);

    // Someone deletes it: recreated with a new certificate.
    await kube.delete(Secrets, 'web-tls', ns);
    const recreated = (await issued('web', healed)).status?.serialNumber ?? '';
    await dataFor('web-tls', recreated);
  });

  it('with create: false writes only the data, and on deletion revokes and clears it', async () => {
    await apply(kube, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'ext', namespace: ns, labels: { keep: 'me' } },
      type: 'Opaque',
      data: { old: Buffer.from('x').toString('base64') },
    } as Manifest);
    await apply(
      kube,
      webCert('ext', {
        mount,
        commonName: `ext.${DOMAIN}`,
        ttl: '5m',
        revoke: true,
        clear: true,
        destination: { name: 'ext', create: false },
      }),
    );
    const serial = (await issued('ext')).status?.serialNumber ?? '';
    const d = await dataFor('ext', serial);
    assert.equal(d.old, undefined);
    assert.equal((await secret('ext'))?.metadata.labels?.keep, 'me');
    await kube.delete(VaultPKISecrets, 'ext', ns);
    await eventually(
      'ext gone',
      async () => (await kube.getIfExists(VaultPKISecrets, 'ext', ns)) === undefined,
    );
    const cleared = await secret('ext');
    assert.ok(cleared, 'the Secret itself stays');
    assert.deepEqual(cleared.data ?? {}, {}, 'its data is cleared');
    assert.equal(cleared.metadata.labels?.keep, 'me');
    await assertRevoked(serial);
  });
  it('never wedges deletion: cleanup that cannot succeed releases the finalizer with a Warning Event', async () => {
    const auth = await kube.get<KubeObject & { spec: Record<string, unknown> }>(VaultAuths, 'auth', ns);
    await apply(kube, {
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'VaultAuth',
      metadata: { name: 'doomed', namespace: ns },
      spec: auth.spec,
    } as Manifest);
    await apply(
      kube,
      webCert('orphan', {
        vaultAuthRef: 'doomed',
        mount,
        commonName: `orphan.${DOMAIN}`,
        ttl: '5m',
        revoke: true,
        destination: { name: 'orphan', create: true },
      }),
    );
    const serial = (await issued('orphan')).status?.serialNumber ?? '';
    await dataFor('orphan', serial);
    // Without its VaultAuth no revocation can ever succeed (as when a namespace is deleted whole).
    await kube.delete(VaultAuths, 'doomed', ns);
    await eventually(
      'VaultAuth gone',
      async () => (await kube.getIfExists(VaultAuths, 'doomed', ns)) === undefined,
    );
    await new Promise((r) => setTimeout(r, 1_000)); // the operator's informer sees the deletion too
    await kube.delete(VaultPKISecrets, 'orphan', ns);
    await eventually(
      'orphan released',
      async () => (await kube.getIfExists(VaultPKISecrets, 'orphan', ns)) === undefined,
      10_000,
    );
    assert.ok(
      (await eventsOf(kube, ns, 'orphan')).some(
        (e) => e.type === 'Warning' && /giving up cleanup/.test(e.message),
      ),
      'a Warning Event says the cleanup was abandoned',
    );
    assert.equal(await revocationTime(serial), 0);
  });
});
