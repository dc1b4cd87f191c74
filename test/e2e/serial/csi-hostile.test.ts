// A hostile pod and a tampered node against the CSI driver as the chart installs it, on the stack's
// real node (kubelet, containerd, runc): the pod tries to write into its volume, a read-write
// publish is refused, then — as root on the host, which this test is — links, FIFOs, a `..data`
// pointing at `..`, oversized and forged records are planted in the driver's staging and state
// directories and the driver is restarted (its DaemonSet pod deleted). The driver must stay up,
// serve a new mount, write nothing outside its volumes and read nothing through a link. Serial
// (scripts/test.ts): the restart would disturb other files' pods on the node.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { mountPoints } from '../../../src/csi/mounter.ts';
import type { KubeClient } from '../../../src/k8s/client.ts';
import { Namespaces, Pods } from '../../../src/k8s/resources.ts';
import type { CoreEvent, KubeObject } from '../../../src/k8s/types.ts';
import { CSI_AUDIENCE, csiSecretsManifest } from '../../../stack/lib/csi.ts';
import {
  adminClient,
  apply,
  canary,
  ensureNamespace,
  eventsOf,
  eventually,
  type Manifest,
  tenant,
  VaultAdmin,
} from '../../../stack/lib/fixtures.ts';
import { csiTargetPath, type NodeEnv, podLogs, waitForOutput } from '../../../stack/lib/node.ts';
import { type StackEnv, uniqueName, useStack } from '../harness.ts';

type Pod = KubeObject & {
  status?: {
    conditions?: { type: string; status: string }[];
    containerStatuses?: { restartCount?: number }[];
  };
};

const env0 = await useStack().catch(() => undefined);
const noNode =
  !env0?.node || !env0.chart ? 'the stack runs no node with the chart (npm run stack -- up)' : false;

const keyOf = (target: string) => createHash('sha256').update(target).digest('hex').slice(0, 32);

describe('hostile pods and a tampered node against the CSI driver', { skip: noNode }, () => {
  let env: StackEnv;
  let node: NodeEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  let host: string;
  const values: string[] = [];

  const driverNs = () => env.chart?.namespace ?? 'ferry-system';
  const driverPods = async () =>
    (await kube.list<Pod>(Pods, { namespace: driverNs() })).items.filter((p) =>
      (p.metadata.name ?? '').startsWith('ferry-csi-node-'),
    );
  const driverLog = () => podLogs(node.podLogsDir, driverNs(), 'ferry-csi-node', 'driver');

  const pod = (name: string, command: string, o: { readOnlyVolume?: boolean } = {}): Manifest =>
    ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: ns },
      spec: {
        serviceAccountName: 'web',
        terminationGracePeriodSeconds: 1,
        // No fsGroup: the volume root used to belong to runAsUser, who could chmod it writable.
        securityContext: { runAsUser: 65532, runAsGroup: 65532 },
        containers: [
          {
            name: 'app',
            image: node.images.test,
            imagePullPolicy: 'Never',
            command: ['sh', '-c', command],
            // The container asks for a writable mount: only the driver's read-only bind stands in the way.
            volumeMounts: [{ name: 'secrets', mountPath: '/secrets', readOnly: false }],
          },
          {
            name: 'root',
            image: node.images.test,
            imagePullPolicy: 'Never',
            securityContext: { runAsUser: 0, runAsGroup: 0 },
            command: ['sh', '-c', command],
            volumeMounts: [{ name: 'secrets', mountPath: '/secrets', readOnly: false }],
          },
        ],
        volumes: [
          {
            name: 'secrets',
            csi: {
              driver: CSI_AUDIENCE,
              ...(o.readOnlyVolume === false ? {} : { readOnly: true }),
              volumeAttributes: { csiSecretsName: 'files' },
            },
          },
        ],
      },
    }) as Manifest;

  // Every way into the volume a process of the pod has, one result per attempt.
  const attack = [
    'while true; do',
    'echo "read=$(cat /secrets/static_secret_0_token)',
    'touch=$(touch /secrets/x 2>&1 && echo OK)',
    'over=$( (echo x > /secrets/static_secret_0_token) 2>&1 && echo OK)',
    'chmod=$(chmod 0777 /secrets 2>&1 && echo OK)',
    'mkdir=$(mkdir /secrets/d 2>&1 && echo OK)',
    'link=$(ln -s / /secrets/..data_tmp 2>&1 && echo OK)',
    'rm=$(rm -f /secrets/..data 2>&1 && echo OK)',
    'fifo=$(mkfifo /secrets/f 2>&1 && echo OK) end";',
    'sleep 2; done',
  ].join(' ');

  before(async () => {
    env = await useStack();
    node = env.node as NodeEnv;
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('hostile');
    host = mkdtempSync(join(tmpdir(), 'ferry-hostile-'));
    await tenant(env, kube, vault, ns);
    await ensureNamespace(kube, ns, ['web']);
    await vault.kvPut('kvv2', `${ns}/protected`, { token: canary('hostile-kv', values) });
    await apply(
      kube,
      csiSecretsManifest(ns, 'files', {
        vaultAuthRef: { name: 'auth' },
        accessControl: { serviceAccountPattern: '^web$', namespacePatterns: [ns] },
        secrets: { vaultStaticSecrets: [{ mount: 'kvv2', path: `${ns}/protected`, type: 'kv-v2' }] },
      }),
    );
  });

  after(async () => {
    await kube?.delete(Namespaces, ns).catch(() => {});
    if (host) rmSync(host, { recursive: true, force: true });
    await vault?.close();
    await kube?.close();
  });

  it('a pod without fsGroup can read its volume but not write, chmod or create in it, even as root', async () => {
    await apply(kube, pod('web', attack));
    for (const c of ['app', 'root']) {
      const line = await waitForOutput(node, ns, 'web', c, 'an attack round', (l) => l.endsWith(' end'));
      assert.ok(line.startsWith(`read=${values[0]} `), `${c} reads its secret`);
      for (const op of ['touch', 'over', 'chmod', 'mkdir', 'link', 'rm', 'fifo']) {
        const r = new RegExp(` ${op}=(.*?) (?:[a-z]+=|end$)`).exec(line)?.[1] ?? '';
        assert.ok(!r.endsWith('OK'), `${c}: ${op} succeeded: ${line}`);
        assert.match(r, /Read-only file system|Permission denied|Operation not permitted/, `${c} ${op}`);
      }
    }
    // Not only through kubelet's read-only container mount: the target itself is read-only in the
    // host's (kubelet's) mount namespace, where the driver's own remount does not propagate.
    const web = await kube.get<Pod>(Pods, 'web', ns);
    const target = csiTargetPath(node, web.metadata.uid ?? '', 'secrets');
    assert.equal((await mountPoints()).get(target)?.ro, true, 'the target is read-only on the host');
    assert.throws(() => writeFileSync(join(target, 'planted'), 'x'), { code: 'EROFS' });
  });

  it('a publish without readOnly: true is refused, and the Event says how to fix it', async () => {
    await apply(kube, pod('writable', 'sleep 3600', { readOnlyVolume: false }));
    const ev = await eventually(
      'a FailedMount Event',
      async () => (await eventsOf(kube, ns, 'writable')).find((e: CoreEvent) => e.reason === 'FailedMount'),
      60_000,
    );
    assert.match(ev.message ?? '', /readOnly: true/);
    assert.match(ev.message ?? '', /InvalidArgument|INVALID_ARGUMENT/);
    await kube.delete(Pods, 'writable', ns, { gracePeriodSeconds: 0 });
  });

  it('a tampered staging and state directory and a driver restart: the driver stays up and trusts none of it', async () => {
    const state = node.csiStateDir;
    // A volume nobody tampers with: the restarted driver picks it up from its staging mount.
    await apply(kube, pod('calm', attack));
    await waitForOutput(node, ns, 'calm', 'app', 'the calm volume', (l) => l.endsWith(' end'));
    const calm = await kube.get<Pod>(Pods, 'calm', ns);
    const calmTarget = csiTargetPath(node, calm.metadata.uid ?? '', 'secrets');
    const calmStaging = join(state, 'volumes', keyOf(calmTarget));
    const web = await kube.get<Pod>(Pods, 'web', ns);
    const target = csiTargetPath(node, web.metadata.uid ?? '', 'secrets');
    const staging = join(state, 'volumes', keyOf(target));
    assert.ok(existsSync(join(staging, '..data')), 'the live volume is staged under the state directory');

    // What the driver must neither read nor touch: a secret of the host and a directory beside.
    const hostSecret = canary('hostile-host', values);
    writeFileSync(join(host, 'host-secret'), hostSecret);
    mkdirSync(join(host, 'victim'));
    writeFileSync(join(host, 'victim', 'keep'), 'keep');
    const victimBefore = readdirSync(join(host, 'victim')).sort();

    // 1. The live volume: a payload file swapped for a link to the host secret, a FIFO, a
    // `..data` pointing at `..` in a second (leftover) volume, a link in place of a staging dir.
    const payload = readlinkSync(join(staging, '..data'));
    rmSync(join(staging, payload, 'static_secret_0_token'));
    symlinkSync(join(host, 'host-secret'), join(staging, payload, 'static_secret_0_token'));
    execFileSync('mkfifo', [join(staging, 'fifo')]);
    const leftover = join(state, 'volumes', 'f'.repeat(32));
    mkdirSync(leftover, { recursive: true });
    symlinkSync('..', join(leftover, '..data'));
    symlinkSync(join(host, 'victim'), join(state, 'volumes', 'e'.repeat(32)));
    // 2. Records: a FIFO, an oversized one, one for a path outside kubelet's pods directory, one
    // whose name does not match its target, and orphans.json as a link to the host secret.
    const rec = `volume-${keyOf(target)}.json`;
    const real = JSON.parse(readFileSync(join(state, rec), 'utf8')) as { targetPath: string };
    execFileSync('mkfifo', [join(state, `volume-${'a'.repeat(32)}.json`)]);
    writeFileSync(join(state, `volume-${'b'.repeat(32)}.json`), `"${'x'.repeat(2 * 1024 * 1024)}"`);
    const forged = { ...real, targetPath: join(host, 'victim') };
    writeFileSync(join(state, `volume-${keyOf(forged.targetPath)}.json`), JSON.stringify(forged));
    writeFileSync(join(state, `volume-${'c'.repeat(32)}.json`), JSON.stringify(real));
    rmSync(join(state, 'orphans.json'), { force: true });
    symlinkSync(join(host, 'host-secret'), join(state, 'orphans.json'));

    // Restart: the DaemonSet recreates the pod; it must become Ready and stay up.
    const [old] = await driverPods();
    assert.ok(old, 'the CSI node pod runs');
    const started = Date.now();
    await kube.delete(Pods, old.metadata.name ?? '', driverNs(), { gracePeriodSeconds: 1 });
    const fresh = await eventually(
      'a new driver pod, Ready',
      async () =>
        (await driverPods()).find(
          (p) =>
            p.metadata.uid !== old.metadata.uid &&
            p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        ),
      60_000,
      250,
    );
    const restartMs = Date.now() - started;

    // It serves a new mount.
    await apply(kube, pod('after', attack));
    const line = await waitForOutput(node, ns, 'after', 'app', 'the volume after the restart', (l) =>
      l.endsWith(' end'),
    );
    assert.ok(line.startsWith(`read=${values[0]} `));
    const again = await kube.get<Pod>(Pods, fresh.metadata.name ?? '', driverNs());
    assert.equal(again.status?.containerStatuses?.[0]?.restartCount ?? 0, 0, 'the driver never crashed');

    // It wrote nothing outside its volumes and read nothing through a link.
    assert.deepEqual(readdirSync(join(host, 'victim')).sort(), victimBefore);
    assert.equal(readFileSync(join(host, 'victim', 'keep'), 'utf8'), 'keep');
    assert.equal(readFileSync(join(host, 'host-secret'), 'utf8'), hostSecret);
    assert.ok(existsSync(join(state, 'volumes')) && lstatSync(join(state, 'volumes')).isDirectory());
    const log = driverLog();
    assert.ok(!log.includes(hostSecret), 'the driver read the host secret through a link');
    for (const v of values) assert.ok(!log.includes(v), 'a secret value in the driver log');
    // The forged and unreadable records were dropped (with a log line), the leftovers removed.
    for (const n of [
      `volume-${'a'.repeat(32)}.json`,
      `volume-${'b'.repeat(32)}.json`,
      `volume-${'c'.repeat(32)}.json`,
    ])
      assert.ok(!existsSync(join(state, n)), `${n} dropped`);
    assert.ok(!existsSync(join(state, `volume-${keyOf(forged.targetPath)}.json`)), 'forged record dropped');
    assert.ok(!existsSync(leftover), 'the leftover staging volume removed');
    assert.ok(!existsSync(join(state, 'volumes', 'e'.repeat(32))), 'the planted link removed, not followed');
    assert.match(log, /unreadable or tampered CSI state record dropped/);
    // The tampered live volume is not resumed: its files are not read back through the link. The
    // calm one is, from its staging mount, which outlived the driver's container.
    assert.match(log, /volume not as the driver left it/);
    assert.match(log, /"volumes":1,"orphans":0,"msg":"resumed recorded volumes"/);
    const mounts = await mountPoints();
    assert.equal(mounts.get(calmStaging)?.fstype, 'tmpfs', 'the calm staging mount is still there');
    assert.equal(mounts.get(calmTarget)?.dev, mounts.get(calmStaging)?.dev);
    process.stderr.write(`[csi-hostile] driver restart to Ready: ${restartMs} ms\n`);
  });
});
