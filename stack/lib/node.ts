// A real worker node on this machine: containerd and runc from Debian's packages, the CNI bridge
// plugin, kubelet and kube-scheduler from the kube peer. Everything it owns lives under the stack's
// directory (containerd's root and state, kubelet's root, pod logs, CNI state), in its own cgroup
// subtree and on its own bridge, so `down` can take it all away and two stacks never share a part.
//
// Pods get a network namespace on a bridge without a host address: they reach each other only.
// Components that must reach the stack's loopback services (the operator, the CSI driver, test pods
// that log in to PostgreSQL) run with hostNetwork. containerd gets a proxy address on a closed
// loopback port, so an image that is not imported fails at once instead of reaching a registry.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Agent } from 'undici';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Pods, type ResourceType } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import type { BuiltImage } from './image.ts';
import { eventually, freePort, httpOk, type Log, type Started, start, stopAll, waitFor } from './proc.ts';

export const NODE_NAME = 'ferry-node';
const Nodes: ResourceType = { group: '', version: 'v1', kind: 'Node', plural: 'nodes', namespaced: false };

export interface NodeEnv {
  name: string;
  dir: string;
  containerdSocket: string;
  kubeletRoot: string;
  /** The CSI driver's --state-dir (volume records and the volumes' staging tmpfs). */
  csiStateDir: string;
  podLogsDir: string;
  /** The node's cgroup subtree under every mounted controller. */
  cgroupRoot: string;
  bridge: string;
  images: { ferry: string; pause: string; test: string };
  /** Uncompressed size of each image, bytes. */
  imageBytes: Record<string, number>;
}

const PACKAGES: [string, string][] = [
  ['/usr/bin/containerd', 'containerd'],
  ['/usr/sbin/runc', 'runc'],
  ['/usr/lib/cni/bridge', 'containernetworking-plugins'],
  ['/bin/busybox', 'busybox-static'],
  ['/usr/bin/strip', 'binutils'],
];

/** Installs the node's Debian packages that are missing (as root, like PostgreSQL's). */
export function ensureNodePackages(log: Log): void {
  const missing = PACKAGES.filter(([bin]) => !existsSync(bin)).map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(
      `the node needs ${missing.join(', ')}: install them with sudo apt-get install -y ${missing.join(' ')}`,
    );
  }
  log(`installing ${missing.join(', ')} from Debian packages (apt-get)`);
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '-qq', ...missing], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

/** cgroup v1 hierarchies mounted under /sys/fs/cgroup (cpu, memory, ..., and the named systemd one;
 * kubelet wants its root in each). Symlinked co-mounts (cpu,cpuacct) are the same hierarchy. */
function cgroupControllers(): string[] {
  return readdirSync('/sys/fs/cgroup', { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join('/sys/fs/cgroup', e.name, 'cgroup.procs')))
    .map((e) => e.name);
}

function createCgroupRoot(root: string): void {
  for (const c of cgroupControllers()) {
    const dir = join('/sys/fs/cgroup', c, root);
    mkdirSync(dir, { recursive: true });
    // A new cpuset has no CPUs or memory nodes until given its parent's.
    if (c === 'cpuset') {
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        writeFileSync(join(dir, f), readFileSync(join('/sys/fs/cgroup', c, f), 'utf8'));
      }
    }
  }
}

function cgroupDirs(base: string): string[] {
  if (!existsSync(base)) return [];
  const out: string[] = [];
  for (const e of readdirSync(base, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...cgroupDirs(join(base, e.name)));
  }
  out.push(base);
  return out; // children before parents
}

/** Kills every process in the node's cgroups and removes them (a cgroup goes once its killed
 * processes have exited). */
async function removeCgroupRoot(root: string): Promise<void> {
  for (const c of cgroupControllers()) {
    for (const dir of cgroupDirs(join('/sys/fs/cgroup', c, root))) {
      for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  }
  for (const c of cgroupControllers()) {
    for (const dir of cgroupDirs(join('/sys/fs/cgroup', c, root))) {
      await eventually(
        `cgroup ${dir} removed`,
        async () => {
          rmdirSync(dir);
          return true;
        },
        5_000,
        100,
      ).catch(() => {});
    }
  }
}

/** Mount points at or below `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .map((p) => p.replace(/\\040/g, ' '))
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

function unmountAll(dir: string): void {
  for (const m of mountsUnder(dir)) {
    try {
      execFileSync('umount', [m], { stdio: 'ignore' });
    } catch {
      execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    }
  }
}

function ctr(node: NodeEnv, args: string[]): string {
  return execFileSync('ctr', ['--address', node.containerdSocket, '--namespace', 'k8s.io', ...args], {
    encoding: 'utf8',
  });
}

interface NodeStart {
  kubeDir: string;
  /** kubelet's kubeconfig: system:node:<name> (group system:nodes) from the API server's token file. */
  kubeconfig: string;
  adminKubeconfig: string;
  /** OCI archives to import. */
  archives: string[];
  kube: KubeClient;
  started: Started[];
  record: () => void;
  log: Log;
}

/** Where the node of the stack in `stackDir` keeps everything, and its names (recorded before it starts). */
export function planNode(
  stackDir: string,
  images: { ferry: BuiltImage; pause: BuiltImage; test: BuiltImage },
): NodeEnv {
  const dir = join(stackDir, 'node');
  const id = basename(stackDir)
    .replace(/[^a-zA-Z0-9]/g, '')
    .slice(-8)
    .toLowerCase();
  return {
    name: NODE_NAME,
    dir,
    containerdSocket: join(dir, 'containerd', 'containerd.sock'),
    kubeletRoot: join(dir, 'kubelet'),
    csiStateDir: join(dir, 'csi-state'),
    podLogsDir: join(dir, 'pod-logs'),
    cgroupRoot: `/ferry-${id}`,
    bridge: `ferry${id.slice(-6)}`,
    images: { ferry: images.ferry.ref, pause: images.pause.ref, test: images.test.ref },
    imageBytes: Object.fromEntries(Object.values(images).map((i) => [i.ref, i.bytes])),
  };
}

/** Starts containerd, kubelet and kube-scheduler; resolves when the node is Ready. */
export async function startNode(node: NodeEnv, o: NodeStart): Promise<void> {
  const dir = node.dir;
  for (const d of [
    join(dir, 'containerd'),
    join(dir, 'cni'),
    join(dir, 'cni-state'),
    node.kubeletRoot,
    node.csiStateDir,
    node.podLogsDir,
  ]) {
    mkdirSync(d, { recursive: true });
  }

  // containerd: CRI with runc (cgroupfs, as kubelet), CNI from Debian's plugins, our pause image.
  const cniConf = join(dir, 'cni');
  writeFileSync(
    join(cniConf, '10-ferry.conflist'),
    JSON.stringify({
      cniVersion: '0.4.0',
      name: 'ferry',
      plugins: [
        {
          type: 'bridge',
          bridge: node.bridge,
          isGateway: false,
          ipMasq: false,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: '10.244.0.0/24' }]],
            dataDir: join(dir, 'cni-state'),
          },
        },
        { type: 'loopback' },
      ],
    }),
  );
  const containerdConfig = join(dir, 'containerd.toml');
  writeFileSync(
    containerdConfig,
    `version = 2
root = "${join(dir, 'containerd', 'root')}"
state = "${join(dir, 'containerd', 'state')}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "${node.containerdSocket}"
[ttrpc]
  address = "${node.containerdSocket}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${node.images.pause}"
  stream_server_address = "127.0.0.1"
  enable_selinux = false
  # This machine refuses a negative oom_score_adj even to root; kubelet asks -998 for sandboxes.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${cniConf}"
`,
  );
  o.log('starting containerd');
  const noRegistry = 'http://127.0.0.1:9';
  const containerd = start(dir, 'containerd', 'containerd', ['--config', containerdConfig], {
    env: { ...process.env, HTTP_PROXY: noRegistry, HTTPS_PROXY: noRegistry, NO_PROXY: '' },
  });
  o.started.push(containerd);
  o.record();
  await waitFor('containerd', join(dir, 'containerd.log'), containerd.pid, async () => {
    ctr(node, ['version']);
    return true;
  });
  for (const archive of o.archives) ctr(node, ['images', 'import', archive]);
  o.log(
    `imported ${Object.entries(node.imageBytes)
      .map(([r, b]) => `${r} (${(b / 1e6).toFixed(1)} MB)`)
      .join(', ')}`,
  );

  // kubelet's root is a shared mount, so the CSI driver's Bidirectional mounts reach kubelet.
  // So is the driver's state directory: its volumes' staging tmpfs outlive a driver restart.
  for (const d of [node.kubeletRoot, node.csiStateDir]) {
    execFileSync('mount', ['--bind', d, d]);
    execFileSync('mount', ['--make-rshared', d]);
  }
  createCgroupRoot(node.cgroupRoot);

  const [kubeletPort, kubeletHealth, schedPort] = (await Promise.all([
    freePort(),
    freePort(),
    freePort(),
  ])) as [number, number, number];
  writeFileSync(join(dir, 'resolv.conf'), '');
  const kubeletConfig = join(dir, 'kubelet.yaml');
  writeFileSync(
    kubeletConfig,
    JSON.stringify({
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      address: '127.0.0.1',
      port: kubeletPort,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort: kubeletHealth,
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: {} },
      authorization: { mode: 'Webhook' },
      containerRuntimeEndpoint: `unix://${node.containerdSocket}`,
      cgroupDriver: 'cgroupfs',
      cgroupRoot: node.cgroupRoot,
      failCgroupV1: false,
      failSwapOn: false,
      podLogsDir: node.podLogsDir,
      resolvConf: join(dir, 'resolv.conf'),
      // Nothing is pulled: images are imported and must never be collected.
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
      // Pod syncs (and so CSI requiresRepublish calls) every 10 s instead of every minute.
      syncFrequency: '10s',
      serializeImagePulls: false,
      registerNode: true,
      maxPods: 110,
    }),
  );
  o.log('starting kubelet');
  const kubelet = start(dir, 'kubelet', join(o.kubeDir, 'kubelet'), [
    `--config=${kubeletConfig}`,
    `--kubeconfig=${o.kubeconfig}`,
    `--root-dir=${node.kubeletRoot}`,
    `--cert-dir=${join(dir, 'kubelet-pki')}`,
    `--hostname-override=${NODE_NAME}`,
    '--node-ip=127.0.0.1',
    '--v=1',
  ]);
  o.started.push(kubelet);
  o.record();

  o.log('starting kube-scheduler');
  const scheduler = start(dir, 'kube-scheduler', join(o.kubeDir, 'kube-scheduler'), [
    `--kubeconfig=${o.adminKubeconfig}`,
    `--authentication-kubeconfig=${o.adminKubeconfig}`,
    `--authorization-kubeconfig=${o.adminKubeconfig}`,
    '--leader-elect=false',
    '--bind-address=127.0.0.1',
    `--secure-port=${schedPort}`,
    `--cert-dir=${join(dir, 'scheduler-pki')}`,
    '--v=0',
  ]);
  o.started.push(scheduler);
  o.record();
  const insecure = new Agent({ connect: { rejectUnauthorized: false } });
  await waitFor('kube-scheduler', join(dir, 'kube-scheduler.log'), scheduler.pid, () =>
    httpOk(`https://127.0.0.1:${schedPort}/healthz`, insecure),
  );
  await insecure.close();
  await waitFor(
    'the node to be Ready',
    join(dir, 'kubelet.log'),
    kubelet.pid,
    async () => {
      const n = await o.kube.get<
        KubeObject & { status?: { conditions?: { type: string; status: string }[] } }
      >(Nodes, NODE_NAME);
      return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
    },
    180_000,
  );
}

/**
 * Takes the node away: pods are deleted through the API first (so CSI volumes are unpublished and
 * sandboxes torn down by kubelet), then whatever is left is killed by cgroup, unmounted and removed.
 */
export async function stopNode(
  node: NodeEnv,
  processes: Started[],
  kube: KubeClient | undefined,
  log: Log,
): Promise<void> {
  if (kube) {
    try {
      const pods = await kube.list<KubeObject>(Pods, { fieldSelector: `spec.nodeName=${node.name}` });
      await Promise.all(
        pods.items.map((p) =>
          kube
            .delete(Pods, p.metadata.name ?? '', p.metadata.namespace, { gracePeriodSeconds: 0 })
            .catch(() => {}),
        ),
      );
      // Best effort: what kubelet has not torn down by then is killed below.
      await eventually(
        "kubelet's teardown of the node's containers",
        async () => ctr(node, ['containers', 'ls', '-q']).trim() === '',
        20_000,
        250,
      ).catch(() => {});
    } catch (err) {
      log(`node: graceful pod teardown skipped (${String(err)})`);
    }
  }
  await stopAll(
    processes.filter((p) => p.name === 'kubelet' || p.name === 'kube-scheduler'),
    log,
  );
  await removeCgroupRoot(node.cgroupRoot);
  // Shims outlive containerd; they serve only this containerd's socket.
  try {
    execFileSync('pkill', ['-KILL', '-f', `containerd-shim-runc-v2 .*-address ${node.containerdSocket}`]);
  } catch {
    // none left
  }
  await stopAll(
    processes.filter((p) => p.name === 'containerd'),
    log,
  );
  unmountAll(node.dir);
  try {
    execFileSync('ip', ['link', 'delete', node.bridge], { stdio: 'ignore' });
  } catch {
    // never created (no pod with its own network ran)
  }
}

/**
 * What a container of the pods named `<podPrefix>…` in `namespace` wrote, from kubelet's log files
 * (CRI format: time, stream, P(artial)/F(ull) tag, text), earlier containers (restarts) first.
 * kubelet removes a pod's logs with the pod.
 */
export function podLogs(podLogsDir: string, namespace: string, podPrefix: string, container: string): string {
  if (!existsSync(podLogsDir)) return '';
  const out: string[] = [];
  const dirs = readdirSync(podLogsDir).filter((d) => d.startsWith(`${namespace}_${podPrefix}`));
  for (const d of dirs) {
    const cdir = join(podLogsDir, d, container);
    if (!existsSync(cdir)) continue;
    const files = readdirSync(cdir).sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10));
    for (const f of files) {
      let partial = '';
      for (const line of readFileSync(join(cdir, f), 'utf8').split('\n')) {
        const m = /^\S+ (?:stdout|stderr) ([PF]) (.*)$/.exec(line);
        if (!m) continue;
        partial += m[2];
        if (m[1] === 'F') {
          out.push(partial);
          partial = '';
        }
      }
    }
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/** Waits for a line of a container's output (see podLogs) that `match` accepts; returns it. */
export async function waitForOutput(
  node: NodeEnv,
  namespace: string,
  podPrefix: string,
  container: string,
  what: string,
  match: (line: string) => boolean,
  timeoutMs = 90_000,
): Promise<string> {
  return eventually(
    `${what} from ${namespace}/${podPrefix}* ${container}`,
    async () => podLogs(node.podLogsDir, namespace, podPrefix, container).split('\n').find(match),
    timeoutMs,
    250,
  );
}

/** Where kubelet asks a CSI driver to publish a pod's inline volume `volume` on this node. */
export function csiTargetPath(node: NodeEnv, podUid: string, volume: string): string {
  return join(node.kubeletRoot, 'pods', podUid, 'volumes', 'kubernetes.io~csi', volume, 'mount');
}

/** Whether anything is mounted at or below `path` on this machine. */
export function mountedUnder(path: string): boolean {
  return mountsUnder(path).length > 0;
}
