// The CSI node driver end to end with the real API server and Vault/OpenBao: real Pod and
// ServiceAccount objects (pods never run: there is no kubelet, but the objects exist), pod-bound
// tokens from the TokenRequest API with the audiences kubelet would request (the driver's, which
// proves the pod's identity, and the Vault login's), and a gRPC client issuing the calls
// kubelet would issue. The driver runs in process as its own ServiceAccount bound to
// deploy/csi/rbac.yaml, so a missing RBAC rule fails here. At the end, no canary secret value may
// be anywhere in etcd (a control value written as a Secret proves the scan sees Secret data).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { lstat, mkdtemp, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CSISecretsResource } from '../../src/api/resources.ts';
import type { CSISecrets } from '../../src/api/v1beta1/csisecrets.ts';
import { CTX } from '../../src/csi/access.ts';
import type { CsiClient } from '../../src/csi/client.ts';
import type { CsiDriver } from '../../src/csi/driver.ts';
import { type Mounter, mountPoints } from '../../src/csi/mounter.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Pods, Secrets } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import {
  csiSecretsManifest,
  outcomeOf,
  type PodRef,
  type PublishOptions,
  scanEtcd,
  makePod as sharedMakePod,
  publishRequest as sharedPublishRequest,
  targetOf as sharedTargetOf,
  startTestDriver,
  type TestDriver,
  volumeIdOf,
} from '../../stack/lib/csi.ts';
import {
  adminClient,
  apply,
  assertNotIn,
  canary,
  ensureNamespace,
  eventsOf,
  eventually,
  kubernetesVaultAuth,
  readManifests,
  resourceOf,
  tenant,
  VaultAdmin,
} from '../../stack/lib/fixtures.ts';
import { type StackEnv, uniqueName, useStack } from './harness.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const canaries: string[] = [];

describe('CSI driver (real API server and Vault)', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let driver: CsiDriver;
  let client: CsiClient;
  let mounter: Mounter;
  let dir: string;
  let ns: string;
  let ns2: string;
  const pods = new Map<string, PodRef>();
  const secretValues: Record<string, string> = {};

  let csi: TestDriver;
  const targetOf = (p: PodRef) => sharedTargetOf(dir, p);
  const publishRequest = (p: PodRef, o: PublishOptions = {}) =>
    sharedPublishRequest(dir, p, { csiSecretsNamespace: ns, ...o });
  const publish = (p: PodRef, o: PublishOptions = {}) => csi.publish(p, { csiSecretsNamespace: ns, ...o });
  async function makePod(
    namespace: string,
    name: string,
    serviceAccount: string,
    labels: Record<string, string>,
    securityContext: Record<string, number> = { fsGroup: 2000 },
  ): Promise<PodRef> {
    const ref = await sharedMakePod(kube, { namespace, name, serviceAccount, labels, securityContext });
    pods.set(`${namespace}/${name}`, ref);
    return ref;
  }
  const codeOf = outcomeOf;

  before(async () => {
    env = await useStack();
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('csi');
    ns2 = uniqueName('csi-other');
    await tenant(env, kube, vault, ns);
    await ensureNamespace(kube, ns, ['web', 'other']);
    await ensureNamespace(kube, ns2, ['web']);

    // The CSIDriver and DaemonSet manifests validated by the API server, under names of their own (the
    // chart's live objects have the real ones); the RBAC is applied for real by startTestDriver.
    for (const m of [
      ...readManifests(join(ROOT, 'deploy', 'csi', 'csidriver.yaml')),
      ...readManifests(join(ROOT, 'deploy', 'csi', 'daemonset.yaml')),
    ]) {
      const rt = resourceOf(m);
      m.metadata.name = `${m.metadata.name}-${ns}`;
      await kube.patch(rt, m.metadata.name, m.metadata.namespace, m, 'apply', {
        fieldManager: 'ferry-e2e',
        force: true,
        dryRun: true,
      });
    }
    secretValues.password = canary('csi-pw', canaries);
    secretValues.apiToken = canary('csi-api', canaries);
    await vault.kvPut('kvv2', `${ns}/db`, { username: 'app', password: secretValues.password, port: 5432 });
    await vault.kvPut('kvv1', `${ns}/api`, { token: secretValues.apiToken }, 1);
    await apply(
      kube,
      csiSecretsManifest(ns, 'db', {
        vaultAuthRef: { name: 'auth' },
        accessControl: {
          serviceAccountPattern: 'web',
          namespacePatterns: [ns],
          podLabels: { app: 'web' },
          matchPolicy: 'all',
        },
        secrets: {
          vaultStaticSecrets: [
            { mount: 'kvv2', path: `${ns}/db`, type: 'kv-v2' },
            {
              mount: 'kvv1',
              path: `${ns}/api`,
              type: 'kv-v1',
              transformation: {
                excludeRaw: true,
                templates: { url: { text: 'https://api.example/?t={{ .Secrets.token }}' } },
              },
            },
          ],
        },
      }),
    );

    dir = await mkdtemp(join(tmpdir(), 'ferry-csi-e2e-'));
    csi = await startTestDriver(env, kube, dir);
    ({ driver, client, mounter } = csi);

    await makePod(ns, 'web-1', 'web', { app: 'web' });
    await makePod(ns, 'web-2', 'web', { app: 'web' }, { runAsUser: 1234, runAsGroup: 1234 });
    await makePod(ns, 'wrong-sa', 'other', { app: 'web' });
    await makePod(ns, 'wrong-label', 'web', { app: 'api' });
    await makePod(ns2, 'web-elsewhere', 'web', { app: 'web' });
  });

  after(async () => {
    for (const p of pods.values()) await csi?.unpublish(p).catch(() => {});
    await csi?.stop();
    await vault?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    await kube?.close();
  });

  it('an authorised pod gets its files, with the right contents, modes and ownership', async () => {
    const p = pods.get(`${ns}/web-1`) as PodRef;
    await publish(p);
    const t = targetOf(p);
    if (mounter.kind === 'tmpfs') {
      const m = (await mountPoints()).get(t);
      assert.equal(m?.fstype, 'tmpfs', 'target shows a tmpfs');
      assert.equal(m?.ro, true, 'target is mounted read-only');
    }
    const read = (n: string) => readFile(join(t, n), 'utf8');
    assert.equal(await read('static_secret_0_password'), secretValues.password);
    assert.equal(await read('static_secret_0_username'), 'app');
    assert.equal(await read('static_secret_0_port'), '5432');
    assert.deepEqual(JSON.parse(await read('static_secret_0__raw')).data.password, secretValues.password);
    assert.equal(await read('static_secret_1_token'), secretValues.apiToken);
    assert.equal(await read('static_secret_1_url'), `https://api.example/?t=${secretValues.apiToken}`);
    await assert.rejects(lstat(join(t, 'static_secret_1__raw')), { code: 'ENOENT' });
    const st = await stat(join(t, 'static_secret_0_password'));
    assert.equal(st.mode & 0o777, 0o440);
    assert.equal(st.gid, 2000, 'group is the pod fsGroup');
    assert.equal((await stat(t)).mode & 0o777, 0o750);
    assert.match(await readlink(join(t, '..data')), /^\.\.\d{4}_/);
  });

  it('kubelet-delegated fsGroup (volume_mount_group) wins; without fsGroup files are root:runAsGroup 0440', async () => {
    const p = pods.get(`${ns}/web-2`) as PodRef;
    await publish(p, { mountGroup: '3000' });
    const st = await stat(join(targetOf(p), 'static_secret_0_password'));
    assert.equal(st.gid, 3000);
    assert.equal(st.mode & 0o777, 0o440);
    await client.node('NodeUnpublishVolume', { volume_id: volumeIdOf(p), target_path: targetOf(p) });
    await publish(p);
    const st2 = await stat(join(targetOf(p), 'static_secret_0_password'));
    assert.equal(st2.mode & 0o777, 0o440);
    assert.equal(st2.uid, 0, 'never owned by the pod');
    assert.equal(st2.gid, 1234);
  });

  it('republish with the same arguments does not fetch again; an edited CSISecrets does, in place', async () => {
    const p = pods.get(`${ns}/web-1`) as PodRef;
    const before = driver.node.stats.fetches;
    const t0 = performance.now();
    await publish(p);
    const ms = performance.now() - t0;
    assert.equal(driver.node.stats.fetches, before, 'no re-fetch');
    assert.ok(ms < 200, `idempotent republish took ${ms} ms`);

    const rotated = canary('csi-pw2', canaries);
    await vault.kvPut('kvv2', `${ns}/db`, { username: 'app', password: rotated, port: 5432 });
    await publish(p);
    assert.equal(
      await readFile(join(targetOf(p), 'static_secret_0_password'), 'utf8'),
      secretValues.password,
    );

    const obj = await kube.get<CSISecrets>(CSISecretsResource, 'db', ns);
    const spec = obj.spec as NonNullable<CSISecrets['spec']>;
    await kube.patch(
      CSISecretsResource,
      'db',
      ns,
      { spec: { secrets: { ...spec.secrets, transformation: { excludes: ['port'] } } } },
      'merge',
    );
    await eventually('republish sees the new generation', async () => {
      await publish(p);
      return (await readFile(join(targetOf(p), 'static_secret_0_password'), 'utf8')) === rotated;
    });
    await assert.rejects(lstat(join(targetOf(p), 'static_secret_0_port')), { code: 'ENOENT' });
    secretValues.password = rotated;
  });

  it('concurrent publishes for many pods are safe', async () => {
    const many = await Promise.all(
      Array.from({ length: 8 }, (_, i) => makePod(ns, `burst-${i}`, 'web', { app: 'web' })),
    );
    await Promise.all(many.flatMap((p) => [publish(p), publish(p)]));
    for (const p of many) {
      assert.equal(
        await readFile(join(targetOf(p), 'static_secret_0_password'), 'utf8'),
        secretValues.password,
      );
    }
  });

  it('refuses the wrong service account, label and namespace with PERMISSION_DENIED and a Warning Event', async () => {
    for (const key of [`${ns}/wrong-sa`, `${ns}/wrong-label`, `${ns2}/web-elsewhere`]) {
      const p = pods.get(key) as PodRef;
      const r = await codeOf(publish(p));
      assert.equal(r.code, 'PERMISSION_DENIED', `${key}: ${r.message}`);
      assert.match(r.message, /not authorized for secret sync/);
      await assert.rejects(lstat(targetOf(p)), { code: 'ENOENT' }, `${key}: nothing written`);
    }
    const events = await eventually('PodNotAuthorized events', async () => {
      const hits = (await eventsOf(kube, ns)).filter(
        (e) => e.reason === 'PodNotAuthorized' && e.involvedObject?.kind === 'CSISecrets',
      );
      return hits.length >= 3 ? hits : undefined;
    });
    const text = JSON.stringify(events);
    for (const name of ['wrong-sa', 'wrong-label', 'web-elsewhere']) assert.ok(text.includes(name), name);
  });

  it('refuses a forged identity: another pod’s token, a token for another audience, a pod on another node', async () => {
    const web = pods.get(`${ns}/web-1`) as PodRef;
    const other = pods.get(`${ns}/wrong-sa`) as PodRef;
    // The wrong-sa pod claims to be web-1 (same SA name web) but carries its own token.
    let r = await codeOf(publish(other, { claim: { name: web.name, uid: web.uid, serviceAccount: 'web' } }));
    assert.equal(r.code, 'PERMISSION_DENIED', r.message);
    // A pod not published yet (an already-published volume is answered from the idempotency check
    // without a fetch, so nothing new is disclosed there) with a real token for its SA and pod, but
    // minted for Vault's audience, not the driver's; then with garbage for a token.
    const fresh = await makePod(ns, 'web-3', 'web', { app: 'web' });
    const tr = await kube.createToken(ns, 'web', {
      audiences: ['vault'],
      expirationSeconds: 600,
      boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: fresh.name, uid: fresh.uid },
    });
    r = await codeOf(publish(fresh, { token: tr.token }));
    assert.equal(r.code, 'PERMISSION_DENIED', r.message);
    r = await codeOf(publish(fresh, { token: 'not-a-jwt' }));
    assert.equal(r.code, 'PERMISSION_DENIED', r.message);
    await assert.rejects(lstat(targetOf(fresh)), { code: 'ENOENT' });
    // A genuine pod and token, but the pod is scheduled on another node: this driver's kubelet
    // never asks for it.
    const elsewhere = await sharedMakePod(kube, {
      namespace: ns,
      name: 'web-elsewhere',
      serviceAccount: 'web',
      labels: { app: 'web' },
      nodeName: 'another-node',
    });
    r = await codeOf(publish(elsewhere));
    assert.equal(r.code, 'PERMISSION_DENIED', r.message);
    assert.match(r.message, /not scheduled on node/);
    // Its genuine token works.
    await publish(fresh);
    assert.equal(
      await readFile(join(targetOf(fresh), 'static_secret_1_token'), 'utf8'),
      secretValues.apiToken,
    );
  });

  it('a missing CSISecrets is INTERNAL "not found" (as VSO); a malformed request INVALID_ARGUMENT', async () => {
    const p = pods.get(`${ns}/web-1`) as PodRef;
    const r = await codeOf(
      publish({ ...p, uid: `${p.uid}-x` } as PodRef, { attrs: { csiSecretsName: 'nope' }, claim: p }),
    );
    assert.equal(r.code, 'INTERNAL');
    assert.match(r.message, /csisecrets .*\/nope not found/);
    const bad = publishRequest(p);
    delete (bad.volume_context as Record<string, string>)[CTX.tokens];
    assert.equal((await codeOf(client.node('NodePublishVolume', bad))).code, 'INVALID_ARGUMENT');
  });

  it('mints AppRole secret-ids (plain and response-wrapped) and the role-id; they log in', async () => {
    const mount = `approle-${ns}`;
    await vault.call('POST', `sys/auth/${mount}`, { type: 'approle' });
    await vault.call('POST', `auth/${mount}/role/app`, { token_policies: ['default'], secret_id_ttl: '10m' });
    // The VaultAuth's policy gains what the driver needs to mint for this role.
    await vault.policy(
      `t-${ns}`,
      `path "kvv2/data/${ns}/*" { capabilities = ["read"] }\npath "kvv1/${ns}/*" { capabilities = ["read"] }\n` +
        `path "auth/${mount}/role/app/secret-id" { capabilities = ["update"] }\n` +
        `path "auth/${mount}/role/app/role-id" { capabilities = ["read"] }\n`,
    );
    await apply(
      kube,
      csiSecretsManifest(ns, 'approle', {
        vaultAuthRef: { name: 'auth' },
        accessControl: { serviceAccountPattern: 'web', namespacePatterns: [ns] },
        secrets: {
          vaultAppRoleSecretIDs: [
            { mount, role: 'app', syncRoleID: true, metadata: { team: 'a' } },
            { mount, role: 'app', wrapTTL: '5m' },
          ],
        },
      }),
    );
    const p = await makePod(ns, 'approle-user', 'web', {});
    await eventually('CSISecrets approle published', async () => {
      await publish(p, { attrs: { csiSecretsName: 'approle' } });
      return true;
    });
    const t = targetOf(p);
    const read = (n: string) => readFile(join(t, n), 'utf8');
    const secretId = await read('app_role_0_secret_id');
    const roleId = await read('app_role_0_role_id');
    canaries.push(secretId);
    assert.match(await read('app_role_0_secret_id_accessor'), /^[-0-9a-f]{36}$/);
    const login = await vault.call('POST', `auth/${mount}/login`, { role_id: roleId, secret_id: secretId });
    assert.ok((login?.auth as { client_token?: string } | undefined)?.client_token, 'the secret-id logs in');
    const wrap = JSON.parse(await read('app_role_1_wrap_info.json')) as { token: string; ttl: number };
    assert.equal(wrap.ttl, 300);
    canaries.push(wrap.token);
    await assert.rejects(lstat(join(t, 'app_role_1_secret_id')), { code: 'ENOENT' });
    const unwrapped = await vault.call('POST', 'sys/wrapping/unwrap', { token: wrap.token });
    const wrappedId = (unwrapped?.data as { secret_id?: string } | undefined)?.secret_id;
    assert.ok(wrappedId, 'the wrapped response holds a secret-id');
    canaries.push(wrappedId);
    // An idempotent republish mints nothing new.
    await publish(p, { attrs: { csiSecretsName: 'approle' } });
    assert.equal(await read('app_role_0_secret_id'), secretId);
    await client.node('NodeUnpublishVolume', { volume_id: volumeIdOf(p), target_path: t });
  });

  it('logs in as the pod, with its kubelet-issued token: not as the VaultAuth’s ServiceAccount, trustNamespace or not', async () => {
    // A VaultAuth in ns2 that lets ns use it, naming ns2's ServiceAccount `app`. Its Vault role
    // accepts ns2's ServiceAccounts only: the driver, logging in as the pod (ns/web), is refused.
    // A role that accepts ns/web admits it, whatever the VaultAuth's serviceAccount says.
    await tenant(env, kube, vault, ns2);
    const value = canary('csi-trusted', canaries);
    await vault.kvPut('kvv2', `${ns2}/shared`, { token: value });
    await vault.kubernetesRole(`pods-${ns}`, {
      serviceAccount: 'web',
      namespace: ns,
      policies: [`t-${ns2}`],
    });
    await apply(kube, kubernetesVaultAuth(env, ns2, 'shared', { role: `t-${ns2}`, allowedNamespaces: [ns] }));
    await apply(
      kube,
      kubernetesVaultAuth(env, ns2, 'for-pods', { role: `pods-${ns}`, allowedNamespaces: [ns] }),
    );
    const csiSecrets = (name: string, auth: string) =>
      apply(
        kube,
        csiSecretsManifest(ns, name, {
          vaultAuthRef: { name: auth, namespace: ns2, trustNamespace: true },
          accessControl: { serviceAccountPattern: 'web', namespacePatterns: [ns] },
          secrets: { vaultStaticSecrets: [{ mount: 'kvv2', path: `${ns2}/shared`, type: 'kv-v2' }] },
        }),
      );
    await csiSecrets('ns2-identity', 'shared');
    await csiSecrets('pod-identity', 'for-pods');
    const refused = await makePod(ns, 'as-ns2', 'web', {});
    await eventually('the CSISecrets in the cache', async () => {
      const r = await codeOf(publish(refused, { attrs: { csiSecretsName: 'ns2-identity' } }));
      return r.code === 'INTERNAL' && /403|permission denied/i.test(r.message) ? r : undefined;
    });
    await assert.rejects(lstat(targetOf(refused)), { code: 'ENOENT' });
    const admitted = await makePod(ns, 'as-pod', 'web', {});
    await eventually('published as the pod', async () => {
      await publish(admitted, { attrs: { csiSecretsName: 'pod-identity' } });
      return true;
    });
    assert.equal(await readFile(join(targetOf(admitted), 'static_secret_0_token'), 'utf8'), value);
    await csi.unpublish(admitted);
  });

  it('syncConfig.containerState gates access and re-syncs on a container restart; refused later, the volume is emptied', async () => {
    const path = `${ns}/restart`;
    await vault.kvPut('kvv2', path, { v: 'first' });
    const spec = (serviceAccountPattern: string, namePattern: string) => ({
      vaultAuthRef: { name: 'auth' },
      accessControl: { serviceAccountPattern, namespacePatterns: [ns] },
      secrets: { vaultStaticSecrets: [{ mount: 'kvv2', path, type: 'kv-v2' }] },
      syncConfig: { containerState: { namePattern, imagePattern: 'registry.example/app(:.+)?' } },
    });
    const csiSecrets = (name: string, s: ReturnType<typeof spec>) =>
      apply(kube, csiSecretsManifest(ns, name, s));
    await csiSecrets('restart', spec('web', 'app'));
    await csiSecrets('gated', spec('web', 'sidecar'));
    const p = await sharedMakePod(kube, {
      namespace: ns,
      name: 'restarter',
      serviceAccount: 'web',
      containers: [
        { name: 'app', image: 'registry.example/app:1.0' },
        { name: 'proxy', image: 'registry.example/proxy:1.0' },
      ],
    });
    pods.set(`${ns}/restarter`, p);
    const gated = await codeOf(publish(p, { attrs: { csiSecretsName: 'gated' } }));
    assert.equal(gated.code, 'PERMISSION_DENIED', gated.message);
    assert.match(gated.message, /no container matches syncConfig\.containerState/);

    await eventually('published', async () => {
      await publish(p, { attrs: { csiSecretsName: 'restart' } });
      return true;
    });
    const file = join(targetOf(p), 'static_secret_0_v');
    assert.equal(await readFile(file, 'utf8'), 'first');
    await vault.kvPut('kvv2', path, { v: 'second' });
    // kubelet reports a restart of `proxy` (not matching): nothing; then of `app`: re-sync.
    const restart = (restarts: Record<string, number>) =>
      kube.patch(
        Pods,
        p.name,
        ns,
        {
          status: {
            containerStatuses: Object.entries(restarts).map(([name, restartCount]) => ({
              name,
              image: `registry.example/${name}:1.0`,
              imageID: '',
              ready: true,
              restartCount,
              state: { running: { startedAt: new Date().toISOString() } },
            })),
          },
        },
        'merge',
        { subresource: 'status' },
      );
    const resyncs = driver.node.stats.resyncs;
    await restart({ app: 0, proxy: 1 });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await readFile(file, 'utf8'), 'first', 'a non-matching container restart changes nothing');
    await restart({ app: 1, proxy: 1 });
    await eventually('re-synced after the restart', async () => (await readFile(file, 'utf8')) === 'second');
    assert.equal(driver.node.stats.resyncs, resyncs + 1);

    // Access taken away: the next republish is refused and the files leave the running pod.
    await csiSecrets('restart', spec('nobody', 'app'));
    await eventually('refused and emptied', async () => {
      const r = await codeOf(publish(p, { attrs: { csiSecretsName: 'restart' } }));
      return r.code === 'PERMISSION_DENIED';
    });
    await assert.rejects(lstat(file), { code: 'ENOENT' });
    await csi.unpublish(p);
  });

  it('unpublish of a deleted pod removes every file and the mount', async () => {
    const p = pods.get(`${ns}/web-1`) as PodRef;
    // Gone at once, as kubelet confirms a deletion once the containers stopped.
    await kube.delete(Pods, p.name, p.namespace, { gracePeriodSeconds: 0 });
    await client.node('NodeUnpublishVolume', { volume_id: volumeIdOf(p), target_path: targetOf(p) });
    assert.equal((await mountPoints()).has(targetOf(p)), false);
    await assert.rejects(lstat(targetOf(p)), { code: 'ENOENT' });
    // Publishing again for the deleted pod is refused: its token no longer authenticates.
    const r = await codeOf(publish(p));
    assert.equal(r.code, 'PERMISSION_DENIED', r.message);
  });

  it('no canary value reached Events, CSISecrets status or etcd', async () => {
    const events = await eventsOf(kube, ns);
    const objs = await kube.list<CSISecrets>(CSISecretsResource, { namespace: ns });
    assertNotIn(canaries, JSON.stringify(events) + JSON.stringify(objs.items), 'an Event or object');

    // Positive control: a value stored in a Secret must be found by the same scan.
    const control = `csi-control-${randomBytes(10).toString('hex')}`;
    await kube.create(Secrets, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'control', namespace: ns },
      stringData: { v: control },
    } as KubeObject);
    const found = await scanEtcd(env.etcd, [control, ...canaries]);
    process.stderr.write(
      `[csi e2e] etcd scan: ${found.keys} keys, ${found.bytes} bytes; control found: ${found.hits.has(control)}; canaries found: ${canaries.filter((c) => found.hits.has(c)).length}/${canaries.length}\n`,
    );
    assert.ok(found.hits.has(control), 'the scan finds a value stored in a Secret');
    assert.deepEqual(
      canaries.filter((c) => found.hits.has(c)),
      [],
      'a CSI canary secret value is in etcd',
    );
  });
});
