// Ferry as users run it: the operator and the CSI node plugin installed from the chart, pods on the
// stack's real node (kubelet, containerd, runc) consuming what Ferry delivers. What a container sees
// is read from its own output, through kubelet's log files: env and volume contents, its mounts, a
// PostgreSQL login with dynamic credentials. Nothing here imitates kubelet.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Events, Namespaces, Pods, Secrets } from '../../src/k8s/resources.ts';
import type { CoreEvent, KubeObject, Secret } from '../../src/k8s/types.ts';
import { CSI_AUDIENCE, csiSecretsManifest, scanEtcd } from '../../stack/lib/csi.ts';
import {
  adminClient,
  apply,
  canary,
  decodeData,
  ensureNamespace,
  eventually,
  kubernetesVaultAuth,
  kvSecret,
  leasedSecretsPolicy,
  type Manifest,
  tenant,
  VaultAdmin,
  vds,
} from '../../stack/lib/fixtures.ts';
import { csiTargetPath, mountedUnder, type NodeEnv, podLogs, waitForOutput } from '../../stack/lib/node.ts';
import { type StackEnv, uniqueName, useStack } from './harness.ts';

type Pod = KubeObject & {
  spec?: { nodeName?: string };
  status?: { phase?: string; containerStatuses?: { state?: { waiting?: { reason?: string } } }[] };
};

const env0 = await useStack().catch(() => undefined);
const noNode =
  !env0?.node || !env0.chart ? 'the stack runs no node with the chart (npm run stack -- up)' : false;

describe('on the real node', { skip: noNode }, () => {
  let env: StackEnv;
  let node: NodeEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  let db: string;
  const figures: Record<string, number> = {};
  const values: string[] = [];

  /** The container's output lines so far (every pod whose name starts with `prefix`). */
  const output = (prefix: string, container: string): string[] =>
    podLogs(node.podLogsDir, ns, prefix, container).split('\n');
  const waitForLine = (what: string, prefix: string, container: string, match: (l: string) => boolean) =>
    waitForOutput(node, ns, prefix, container, what, match);

  const podSpec = (o: {
    name: string;
    serviceAccount?: string;
    command: string;
    env?: unknown[];
    volumes?: unknown[];
    mounts?: unknown[];
    hostNetwork?: boolean;
  }) => ({
    serviceAccountName: o.serviceAccount ?? 'app',
    terminationGracePeriodSeconds: 1,
    ...(o.hostNetwork ? { hostNetwork: true } : {}),
    securityContext: { runAsUser: 65532, runAsGroup: 65532, fsGroup: 2000 },
    containers: [
      {
        name: o.name,
        image: node.images.test,
        imagePullPolicy: 'Never',
        command: ['sh', '-c', o.command],
        ...(o.env ? { env: o.env } : {}),
        ...(o.mounts ? { volumeMounts: o.mounts } : {}),
      },
    ],
    ...(o.volumes ? { volumes: o.volumes } : {}),
  });

  before(async () => {
    env = await useStack();
    node = env.node as NodeEnv;
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('node');
    db = `db-${ns}`;
    await tenant(env, kube, vault, ns);
    await ensureNamespace(kube, ns, ['web']);
    await vault.policy(
      `t-${ns}`,
      [`path "kvv2/data/${ns}/*" { capabilities = ["read"] }`, ...leasedSecretsPolicy(db, `pki-${ns}`)].join(
        '\n',
      ),
    );
    await vault.postgresEngine(db, { defaultTtl: '1m', maxTtl: '10m' });
  });

  after(async () => {
    process.stderr.write(`[node e2e] ${JSON.stringify(figures)}\n`);
    await kube?.delete(Namespaces, ns).catch(() => {});
    await vault?.call('DELETE', `sys/mounts/${db}`).catch(() => {});
    await vault?.close();
    await kube?.close();
  });

  it('a Deployment reads a synced Secret through env and a volume; a rotation rolls it out', async () => {
    const v1 = canary('node-v1', values);
    const v2 = canary('node-v2', values);
    await vault.kvPut('kvv2', `${ns}/app`, { password: v1 });
    await apply(
      kube,
      kvSecret(ns, 'app', {
        refreshAfter: '2s',
        destination: { name: 'app-secret', create: true },
        rolloutRestartTargets: [{ kind: 'Deployment', name: 'reader' }],
      }),
    );
    await apply(kube, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'reader', namespace: ns },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'reader' } },
        template: {
          metadata: { labels: { app: 'reader' } },
          spec: podSpec({
            name: 'reader',
            command: 'while true; do echo "env=$PASSWORD file=$(cat /secret/password)"; sleep 1; done',
            env: [{ name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'app-secret', key: 'password' } } }],
            volumes: [{ name: 'secret', secret: { secretName: 'app-secret' } }],
            mounts: [{ name: 'secret', mountPath: '/secret', readOnly: true }],
          }),
        },
      },
    } as Manifest);
    await waitForLine(
      'the first value in env and file',
      'reader-',
      'reader',
      (l) => l === `env=${v1} file=${v1}`,
    );
    const t0 = Date.now();
    await vault.kvPut('kvv2', `${ns}/app`, { password: v2 });
    await waitForLine(
      'the rotated value in a new pod',
      'reader-',
      'reader',
      (l) => l === `env=${v2} file=${v2}`,
    );
    figures.rotationToNewPodMs = Date.now() - t0;
  });

  it("a pod logs in to PostgreSQL with a VaultDynamicSecret's credentials", async () => {
    await apply(
      kube,
      vds(ns, 'db', { mount: db, path: 'creds/dyn', destination: { name: 'db-creds', create: true } }),
    );
    const creds = await eventually('the credentials Secret', async () => {
      const s = await kube.getIfExists<Secret>(Secrets, 'db-creds', ns);
      return s?.data?.username ? decodeData(s.data) : undefined;
    });
    values.push(creds.password ?? '');
    const secretEnv = (name: string, key: string) => ({
      name,
      valueFrom: { secretKeyRef: { name: 'db-creds', key } },
    });
    await apply(kube, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'psql', namespace: ns },
      spec: {
        ...podSpec({
          name: 'psql',
          hostNetwork: true,
          command: `psql "host=127.0.0.1 port=${env.postgres.port} dbname=${env.postgres.database}" -tAc "select 'login as ' || current_user"`,
          env: [secretEnv('PGUSER', 'username'), secretEnv('PGPASSWORD', 'password')],
        }),
        restartPolicy: 'Never',
      },
    } as Manifest);
    const pod = await eventually('the psql pod to finish', async () => {
      const p = await kube.get<Pod>(Pods, 'psql', ns);
      return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p : undefined;
    });
    assert.equal(pod.status?.phase, 'Succeeded', output('psql', 'psql').join('\n'));
    assert.ok(output('psql', 'psql').includes(`login as ${creds.username}`));
  });

  it('a pod gets protected files from kubelet: tmpfs, read-only, refreshed, gone with the pod', async () => {
    const p1 = canary('node-p1', values);
    const p2 = canary('node-p2', values);
    await vault.kvPut('kvv2', `${ns}/protected`, { token: p1 });
    await apply(
      kube,
      csiSecretsManifest(ns, 'files', {
        vaultAuthRef: { name: 'auth' },
        accessControl: { serviceAccountPattern: '^web$', namespacePatterns: [ns] },
        secrets: {
          vaultStaticSecrets: [{ mount: 'kvv2', path: `${ns}/protected`, type: 'kv-v2' }],
          vaultDynamicSecrets: [{ mount: db, path: 'creds/dyn' }],
        },
      }),
    );
    const csiVolume = (name: string) => ({
      name,
      csi: { driver: CSI_AUDIENCE, readOnly: true, volumeAttributes: { csiSecretsName: 'files' } },
    });
    const t0 = Date.now();
    await apply(kube, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web', namespace: ns },
      spec: podSpec({
        name: 'web',
        serviceAccount: 'web',
        command:
          'while true; do echo "token=$(cat /secrets/static_secret_0_token) user=$(cat /secrets/dynamic_secret_0_username)' +
          ' mount=$(grep " /secrets " /proc/mounts | cut -d" " -f3,4) write=$(touch /secrets/x 2>/dev/null && echo yes || echo no)"; sleep 1; done',
        volumes: [csiVolume('secrets')],
        mounts: [{ name: 'secrets', mountPath: '/secrets', readOnly: true }],
      }),
    } as Manifest);
    const first = await waitForLine('the protected files', 'web', 'web', (l) =>
      l.startsWith(`token=${p1} user=v-`),
    );
    figures.podStartToFilesMs = Date.now() - t0;
    assert.match(first, / mount=tmpfs ro,/, 'a read-only tmpfs inside the container');
    assert.match(first, / write=no$/, 'the container cannot write into its volume');
    const user = /user=(\S+)/.exec(first)?.[1] ?? '';
    const pod = await kube.get<Pod>(Pods, 'web', ns);
    const target = csiTargetPath(node, pod.metadata.uid ?? '', 'secrets');
    assert.ok(mountedUnder(target), 'kubelet asked for this mount');

    // requiresRepublish: kubelet calls NodePublishVolume again at each pod sync; the driver re-reads.
    const t1 = Date.now();
    await vault.kvPut('kvv2', `${ns}/protected`, { token: p2 });
    await waitForLine('the rotated file through a kubelet republish', 'web', 'web', (l) =>
      l.startsWith(`token=${p2} `),
    );
    figures.republishMs = Date.now() - t1;

    const etcd = await scanEtcd(env.etcd, [p1, p2]);
    assert.equal(etcd.hits.size, 0, 'a protected value reached etcd');

    await kube.delete(Pods, 'web', ns);
    await eventually(
      'the pod gone',
      async () => (await kube.getIfExists(Pods, 'web', ns)) === undefined,
      60_000,
    );
    assert.ok(!existsSync(target), 'the volume is gone from the node');
    assert.ok(!mountedUnder(target), 'no mount left');
    await eventually('the lease revoked', async () => {
      const res = await vault.call('GET', `sys/leases/lookup/${db}/creds/dyn?list=true`);
      const keys = (res?.data as { keys?: string[] } | undefined)?.keys ?? [];
      return keys.length === 1 ? true : undefined; // the VaultDynamicSecret's own lease remains
    });
    assert.ok(user.startsWith('v-'));
  });

  it('kubelet’s token for the API server’s own audience logs in a VaultAuth without audiences', async () => {
    const v = canary('node-default-audience', values);
    await vault.kvPut('kvv2', `${ns}/default-audience`, { token: v });
    await apply(kube, kubernetesVaultAuth(env, ns, 'no-audience', { role: `t-${ns}`, audiences: null }));
    await apply(
      kube,
      csiSecretsManifest(ns, 'default-audience', {
        vaultAuthRef: { name: 'no-audience' },
        accessControl: { serviceAccountPattern: '^web$' },
        secrets: { vaultStaticSecrets: [{ mount: 'kvv2', path: `${ns}/default-audience`, type: 'kv-v2' }] },
      }),
    );
    await apply(kube, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'audience', namespace: ns },
      spec: podSpec({
        name: 'audience',
        serviceAccount: 'web',
        command: 'while true; do echo "token=$(cat /secrets/static_secret_0_token)"; sleep 1; done',
        volumes: [
          {
            name: 'secrets',
            csi: {
              driver: CSI_AUDIENCE,
              readOnly: true,
              volumeAttributes: { csiSecretsName: 'default-audience' },
            },
          },
        ],
        mounts: [{ name: 'secrets', mountPath: '/secrets', readOnly: true }],
      }),
    } as Manifest);
    await waitForLine('the file through the default-audience login', 'audience', 'audience', (l) =>
      l.startsWith(`token=${v}`),
    );
    await kube.delete(Pods, 'audience', ns, { gracePeriodSeconds: 0 });
  });

  it('an unauthorised pod stays in ContainerCreating with an Event saying why', async () => {
    await apply(kube, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'intruder', namespace: ns },
      spec: podSpec({
        name: 'intruder',
        serviceAccount: 'app',
        command: 'sleep 3600',
        volumes: [
          {
            name: 'secrets',
            csi: { driver: CSI_AUDIENCE, readOnly: true, volumeAttributes: { csiSecretsName: 'files' } },
          },
        ],
        mounts: [{ name: 'secrets', mountPath: '/secrets', readOnly: true }],
      }),
    } as Manifest);
    const ev = await eventually('a FailedMount Event', async () => {
      const list = await kube.list<CoreEvent>(Events, {
        namespace: ns,
        fieldSelector: 'involvedObject.name=intruder',
      });
      return list.items.find((e) => e.reason === 'FailedMount');
    });
    assert.match(ev.message ?? '', /not authorized for secret sync/);
    const pod = await kube.get<Pod>(Pods, 'intruder', ns);
    assert.equal(pod.status?.phase, 'Pending');
    assert.equal(pod.status?.containerStatuses?.[0]?.state?.waiting?.reason, 'ContainerCreating');
    for (const v of values) assert.ok(!(ev.message ?? '').includes(v));
    await kube.delete(Pods, 'intruder', ns, { gracePeriodSeconds: 0 });
  });
});
