// The operators the benchmark compares, and how each is started as a local process against a stack:
// Ferry from this checkout, VSO and ESO from their published source (stack/peers.sh builds and caches
// them), and the raw loop (bench/raw-loop.ts).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Log } from '../../stack/lib/proc.ts';
import { peerDir, repoRoot, type StackEnv } from '../../stack/lib/stack.ts';
import { compileCacheEnv, IMAGE_NODE_FLAGS, operatorArgs } from './ferry-process.ts';
import { type Flavour, refreshSeconds } from './workload.ts';

let compileCache: NodeJS.ProcessEnv | undefined;
/** One compile cache per benchmark process, filled on first use. */
const ferryCompileCache = (): NodeJS.ProcessEnv =>
  (compileCache ??= compileCacheEnv(mkdtempSync(join(tmpdir(), 'ferry-bench-cc-')), IMAGE_NODE_FLAGS));

export type OperatorName = 'ferry' | 'vso' | 'eso' | 'raw';
/** `cgroup-<n>Mi`: defaults, in a memory cgroup limited to n MiB from the process's start.
 * `chart-limits`: defaults under the limits of VSO's and Ferry's charts (128Mi and 500m CPU; ESO's
 * chart sets none). `refresh-<n>s`: defaults with `refreshAfter` n seconds instead of 30 (to find
 * where the refresh stops keeping up). */
export type Scenario = 'defaults' | 'tuned' | 'chart-limits' | `cgroup-${number}Mi` | `refresh-${number}s`;

/** The memory limit of a scenario in MiB; undefined: none. */
export function memoryLimitMb(s: Scenario): number | undefined {
  if (s === 'chart-limits') return CHART_MEMORY_MB;
  const m = /^cgroup-(\d+)Mi$/.exec(s);
  return m ? Number(m[1]) : undefined;
}

/** The CPU limit of a scenario in millicores; undefined: none. */
export const cpuLimitMillis = (s: Scenario): number | undefined =>
  s === 'chart-limits' ? CHART_CPU_MILLIS : undefined;

/** The default limits of VSO's chart and Ferry's (deploy/chart/values.yaml). */
const CHART_MEMORY_MB = 128;
const CHART_CPU_MILLIS = 500;

/** Whether `op` runs in scenario `s`: a `cgroup-<n>Mi` scenario every operator but the raw loop,
 * a `refresh-<n>s` one Ferry, VSO and the raw loop, the others as each operator lists. */
export const runsIn = (op: OperatorSpec, s: Scenario): boolean =>
  op.scenarios.includes(s) ||
  (s.startsWith('cgroup-') && op.name !== 'raw') ||
  (s.startsWith('refresh-') && op.name !== 'eso');

export interface Launch {
  cmd: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

export interface OperatorSpec {
  name: OperatorName;
  flavour: Flavour;
  /** The sync scenarios this operator is run in (`tuned`: the peers, set to Ferry's effective settings). */
  scenarios: Scenario[];
  version(log: Log): string;
  /** The operator's own CRD files (none: the stack's, which are Ferry's). */
  crds(log: Log): string[];
  launch(
    env: StackEnv,
    scenario: Scenario,
    vaultAddr: string,
    n: number,
    ports: [number, number],
    log: Log,
  ): Launch;
}

/** Ferry's effective settings, to which the peers are tuned: 100 concurrent reconciles and an API
 * client without a client-side rate limit. */
export const FERRY_CONCURRENCY = 100;
const TUNED_QPS = ['--kube-client-qps=1000', '--kube-client-burst=2000'];

const peerVersion = (peer: string): string =>
  execFileSync('bash', [join(repoRoot, 'stack', 'peers.sh'), 'path', peer], { encoding: 'utf8' })
    .trim()
    .replace(/^.*\/[a-z]+-/, '');
/** stack/peers.sh builds a peer once (a flock per peer); asked once per benchmark process. */
const dirs = new Map<string, string>();
const binDir = (peer: string, log: Log): string => {
  const known = dirs.get(peer);
  if (known) return known;
  const dir = peerDir(peer, log);
  dirs.set(peer, dir);
  return dir;
};
const yamls = (dir: string): string[] =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(dir, f));

export const OPERATORS: Record<OperatorName, OperatorSpec> = {
  ferry: {
    name: 'ferry',
    flavour: 'vso-api',
    scenarios: ['defaults', 'chart-limits'],
    version: () => {
      const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
      // The last commit that changed what runs (src/), and whether the checkout differs from it.
      const git = (...args: string[]): string =>
        execFileSync('git', ['-C', repoRoot, ...args], { encoding: 'utf8' }).trim();
      const rev = git('log', '-1', '--format=%h', '--', 'src');
      const dirty = git('status', '--porcelain', '--', 'src') ? ', src modified' : '';
      return `${pkg.version} (src at ${rev}${dirty}, Node ${process.versions.node})`;
    },
    crds: () => [],
    // As the image runs it (bench/lib/ferry-process.ts).
    launch: (env, _s, _v, _n, [metrics, health]) => ({
      cmd: process.execPath,
      args: [...IMAGE_NODE_FLAGS, ...operatorArgs(env, { metrics, health }), '--leader-elect=false'],
      env: { ...process.env, ...ferryCompileCache() },
    }),
  },
  vso: {
    name: 'vso',
    flavour: 'vso-api',
    scenarios: ['defaults', 'tuned', 'chart-limits'],
    version: () => peerVersion('vso'),
    crds: (log) => yamls(join(binDir('vso', log), 'crds')),
    launch: (env, scenario, _v, _n, [metrics, health], log) => ({
      cmd: join(binDir('vso', log), 'vso'),
      args: [
        '--leader-elect=false',
        `--metrics-bind-address=127.0.0.1:${metrics}`,
        `--health-probe-bind-address=127.0.0.1:${health}`,
        ...(scenario === 'tuned' ? [...TUNED_QPS, `--max-concurrent-reconciles=${FERRY_CONCURRENCY}`] : []),
      ],
      env: { ...process.env, KUBECONFIG: env.kubeconfig, OPERATOR_NAMESPACE: env.operatorNamespace },
    }),
  },
  eso: {
    name: 'eso',
    flavour: 'eso',
    scenarios: ['defaults', 'tuned'],
    version: () => peerVersion('eso'),
    crds: (log) => yamls(join(binDir('eso', log), 'crds')),
    launch: (env, scenario, _v, _n, [metrics, health], log) => ({
      cmd: join(binDir('eso', log), 'eso'),
      args: [
        '--enable-leader-election=false',
        `--metrics-addr=127.0.0.1:${metrics}`,
        `--live-addr=127.0.0.1:${health}`,
        ...(scenario === 'tuned'
          ? [`--concurrent=${FERRY_CONCURRENCY}`, '--client-qps=1000', '--client-burst=2000']
          : []),
      ],
      env: { ...process.env, KUBECONFIG: env.kubeconfig },
    }),
  },
  raw: {
    name: 'raw',
    flavour: 'none',
    scenarios: ['defaults'],
    version: () => 'bench/raw-loop.ts',
    crds: () => [],
    launch: (env, scenario, vaultAddr, n) => ({
      cmd: process.execPath,
      args: [
        join(repoRoot, 'bench', 'raw-loop.ts'),
        `--kubeconfig=${env.kubeconfig}`,
        `--vault=${vaultAddr}`,
        `--n=${n}`,
        `--concurrency=${FERRY_CONCURRENCY}`,
        `--refresh=${refreshSeconds(scenario)}`,
      ],
      env: process.env,
    }),
  },
};
