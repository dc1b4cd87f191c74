// Ferry installed as users install it: `helm install` of deploy/chart into the stack, the image
// imported into the node, the operator Deployment and the CSI node DaemonSet running as pods.
// The operator and the driver run with hostNetwork: the stack's API server, Vault and PostgreSQL
// listen on loopback only. The in-cluster API address is given explicitly, as there is no
// kube-proxy to serve the kubernetes Service.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Deployments, Pods } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import { DEFAULT_SECRET_ID_DIR } from '../../src/vault/confined-file.ts';
import type { NodeEnv } from './node.ts';
import { eventually, freePort, type Log } from './proc.ts';

export const RELEASE = 'ferry';
export const OPERATOR_DEPLOYMENT = `${RELEASE}-controller-manager`;
const OPERATOR_SELECTOR = `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/name=ferry,app.kubernetes.io/component=controller-manager`;

export interface ChartEnv {
  helm: string;
  chart: string;
  /** Where helm keeps its own state (HELM_*_HOME). */
  dir: string;
  kubeconfig: string;
  namespace: string;
  release: string;
  valuesFile: string;
  health: string;
  metrics: string;
  csiHealth: string;
}

interface ChartInstall {
  dir: string;
  helmDir: string;
  repoRoot: string;
  kubeconfig: string;
  namespace: string;
  apiPort: number;
  node: NodeEnv;
  /** Host directory mounted read-only at CHART_APPROLE_DIR in the operator pod (AppRole secretIDPath). */
  approleDir: string;
  /** Port of the operator's audit-stream listener (on the host: the pod uses hostNetwork). */
  auditStreamPort: number;
  log: Log;
}

/** The operator's default `--approle-secret-id-dir`, where the stack mounts its secret-id directory. */
export const CHART_APPROLE_DIR = DEFAULT_SECRET_ID_DIR;

/** `--vault-address-allowlist` of the stack's operator and CSI driver: every server the stack runs
 * listens on loopback, so a test's VaultConnection elsewhere is refused. */
export const STACK_VAULT_ADDRESS_ALLOWLIST = ['127.0.0.0/8', 'localhost', '::1/128'];

function helm(c: ChartEnv, args: string[]): string {
  return execFileSync(c.helm, [...args, `--kubeconfig=${c.kubeconfig}`, `--namespace=${c.namespace}`], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      HELM_CACHE_HOME: join(c.dir, 'helm', 'cache'),
      HELM_CONFIG_HOME: join(c.dir, 'helm', 'config'),
      HELM_DATA_HOME: join(c.dir, 'helm', 'data'),
    },
  });
}

/** `helm install` of deploy/chart with the node's image; resolves when the pods are ready. */
export async function installChart(o: ChartInstall, extraArgs: string[] = []): Promise<ChartEnv> {
  const [health, metrics, csiHealth] = (await Promise.all([freePort(), freePort(), freePort()])) as [
    number,
    number,
    number,
  ];
  const [repository, tag] = o.node.images.ferry.split(/:(?=[^:]+$)/) as [string, string];
  const apiEnv = [
    { name: 'KUBERNETES_SERVICE_HOST', value: '127.0.0.1' },
    { name: 'KUBERNETES_SERVICE_PORT', value: String(o.apiPort) },
  ];
  const values = {
    controller: {
      replicas: 1,
      hostNetwork: true,
      // Host ports cannot be shared: the old pod goes before the new one starts.
      strategy: { type: 'Recreate' },
      terminationGracePeriodSeconds: 30,
      manager: {
        image: { repository, tag, pullPolicy: 'Never' },
        metricsPort: metrics,
        healthProbePort: health,
        logging: { level: 'debug' },
        connectionHealthPeriod: 10,
        vaultAddressAllowlist: STACK_VAULT_ADDRESS_ALLOWLIST,
        extraEnv: apiEnv,
        extraArgs,
        volumes: [{ name: 'approle', hostPath: { path: o.approleDir, type: 'Directory' } }],
        volumeMounts: [{ name: 'approle', mountPath: CHART_APPROLE_DIR, readOnly: true }],
        // The suite's largest tests hold a few hundred resources; the chart's default is for small
        // installs.
        resources: { limits: { cpu: '1', memory: '768Mi' }, requests: { cpu: '10m', memory: '64Mi' } },
      },
    },
    auditStream: { enabled: true, port: o.auditStreamPort, allowedPeers: ['127.0.0.1'] },
    csi: {
      enabled: true,
      hostNetwork: true,
      kubeletRootDir: o.node.kubeletRoot,
      nodeDriverRegistrar: { enabled: false },
      livenessProbe: { enabled: false },
      driver: {
        image: { pullPolicy: 'Never' },
        healthProbePort: csiHealth,
        stateDir: o.node.csiStateDir,
        logging: { level: 'debug' },
        extraEnv: apiEnv,
        // kubelet republishes every pod sync (10 s on the stack's node); re-read at most this often.
        refreshInterval: 5,
      },
    },
  };
  const valuesFile = join(o.dir, 'chart-values.json');
  writeFileSync(valuesFile, JSON.stringify(values, null, 2));
  const c: ChartEnv = {
    helm: join(o.helmDir, 'helm'),
    chart: join(o.repoRoot, 'deploy', 'chart'),
    dir: o.dir,
    kubeconfig: o.kubeconfig,
    namespace: o.namespace,
    release: RELEASE,
    valuesFile,
    health: `http://127.0.0.1:${health}`,
    metrics: `http://127.0.0.1:${metrics}`,
    csiHealth: `http://127.0.0.1:${csiHealth}`,
  };
  o.log('helm install ferry deploy/chart (operator and CSI node plugin)');
  helmInstall(c, RELEASE, valuesFile);
  return c;
}

function helmInstall(c: ChartEnv, release: string, valuesFile: string, extra: string[] = []): void {
  try {
    helm(c, ['install', release, c.chart, `--values=${valuesFile}`, '--wait', '--timeout=4m', ...extra]);
  } catch (err) {
    const e = err as { stderr?: string };
    throw new Error(`helm install ${release} failed: ${e.stderr ?? String(err)}`);
  }
}

export interface ReplicaRelease {
  release: string;
  health: string;
  metrics: string;
}

/**
 * A second operator replica as its own pod: another release of the chart in the same namespace
 * (operator only, its own ports, the audit stream's too: on the single hostNetwork node two pods of
 * one Deployment would share them). Both releases' operators contend for the same leader-election Lease.
 */
export async function installReplicaRelease(
  c: ChartEnv,
  release: string,
  extraArgs: string[],
): Promise<ReplicaRelease> {
  const [health, metrics, auditStream] = (await Promise.all([freePort(), freePort(), freePort()])) as [
    number,
    number,
    number,
  ];
  const values = JSON.parse(readFileSync(c.valuesFile, 'utf8')) as {
    controller: { manager: { metricsPort: number; healthProbePort: number; extraArgs: string[] } };
    auditStream: { port: number };
    csi: { enabled: boolean };
  };
  values.controller.manager.metricsPort = metrics;
  values.controller.manager.healthProbePort = health;
  // Vault's audit device names the first release's port; this one only needs to be schedulable.
  values.auditStream.port = auditStream;
  values.controller.manager.extraArgs = extraArgs;
  values.csi.enabled = false;
  const valuesFile = join(c.dir, `chart-values-${release}.json`);
  writeFileSync(valuesFile, JSON.stringify(values, null, 2));
  helmInstall(c, release, valuesFile, ['--skip-crds']);
  return { release, health: `http://127.0.0.1:${health}`, metrics: `http://127.0.0.1:${metrics}` };
}

export function uninstallRelease(c: ChartEnv, release: string): void {
  // Without the pre-delete hook: a replica release shares the cluster with the operator under test,
  // whose objects must keep their finalizers.
  helm(c, ['uninstall', release, '--wait', '--timeout=2m', '--no-hooks']);
}

/** `helm upgrade` with other operator arguments; the Deployment replaces its pod. */
export function upgradeOperatorArgs(c: ChartEnv, args: string[]): boolean {
  const values = JSON.parse(readFileSync(c.valuesFile, 'utf8')) as {
    controller: { manager: { extraArgs: string[] } };
  };
  if (JSON.stringify(values.controller.manager.extraArgs) === JSON.stringify(args)) return false;
  values.controller.manager.extraArgs = args;
  writeFileSync(c.valuesFile, JSON.stringify(values, null, 2));
  helm(c, ['upgrade', c.release, c.chart, `--values=${c.valuesFile}`]);
  return true;
}

/** `helm upgrade` with the operator's values (`controller.manager`) edited by `edit`. */
export function upgradeOperatorValues(c: ChartEnv, edit: (manager: Record<string, unknown>) => void): void {
  const values = JSON.parse(readFileSync(c.valuesFile, 'utf8')) as {
    controller: { manager: Record<string, unknown> };
  };
  edit(values.controller.manager);
  writeFileSync(c.valuesFile, JSON.stringify(values, null, 2));
  helm(c, ['upgrade', c.release, c.chart, `--values=${c.valuesFile}`]);
}

type PodLike = KubeObject & {
  status?: {
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: {
      name: string;
      restartCount?: number;
      ready?: boolean;
      containerID?: string;
      lastState?: { terminated?: { reason?: string; exitCode?: number } };
    }[];
  };
};

export async function operatorPods(kube: KubeClient, namespace: string): Promise<PodLike[]> {
  return (await kube.list<PodLike>(Pods, { namespace, labelSelector: OPERATOR_SELECTOR })).items;
}

/** Which operator processes run now: pod uid and container restarts; changes on any restart. */
export async function operatorIncarnation(kube: KubeClient, namespace: string): Promise<string> {
  const pods = await operatorPods(kube, namespace);
  return pods
    .map((p) => `${p.metadata.uid}:${p.status?.containerStatuses?.[0]?.restartCount ?? 0}`)
    .sort()
    .join(',');
}

/** Waits until exactly `replicas` operator pods exist, none of them `except`, all Ready. */
export async function waitOperatorPods(
  kube: KubeClient,
  namespace: string,
  replicas: number,
  except: string[] = [],
  timeoutMs = 120_000,
): Promise<void> {
  await eventually(
    `${replicas} ready operator pod(s)`,
    async () => {
      const pods = await operatorPods(kube, namespace);
      const ready = pods.filter(
        (p) =>
          !except.includes(p.metadata.uid ?? '') &&
          !p.metadata.deletionTimestamp &&
          p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      );
      if (ready.length === replicas && pods.length === replicas) return true;
      throw new Error(JSON.stringify(pods.map((p) => p.status)));
    },
    timeoutMs,
    250,
  );
}

/**
 * Deletes the operator pods and waits for their replacement: SIGKILL deletes with no grace period
 * (kubelet kills the container at once, as a crash would), SIGTERM with the pod's grace period.
 */
export async function restartOperatorPods(
  kube: KubeClient,
  namespace: string,
  signal: NodeJS.Signals,
): Promise<void> {
  const pods = await operatorPods(kube, namespace);
  await Promise.all(
    pods.map((p) =>
      kube.delete(
        Pods,
        p.metadata.name ?? '',
        namespace,
        signal === 'SIGKILL' ? { gracePeriodSeconds: 0 } : {},
      ),
    ),
  );
  await waitOperatorPods(
    kube,
    namespace,
    pods.length,
    pods.map((p) => p.metadata.uid ?? ''),
  );
}

/** Scales the operator Deployment (0 stops the chart's operator, e.g. to run it as a process). */
export async function scaleOperator(kube: KubeClient, namespace: string, replicas: number): Promise<void> {
  await kube.patch(Deployments, OPERATOR_DEPLOYMENT, namespace, { spec: { replicas } }, 'merge');
  if (replicas > 0) await waitOperatorPods(kube, namespace, replicas);
  else {
    await eventually(
      'the operator pods gone',
      async () => (await operatorPods(kube, namespace)).length === 0,
      60_000,
      250,
    );
  }
}
