// Shared by the chart tests: the helm peer (stack/peers.sh builds it from its Go module on first use
// and caches it), `helm template`/`helm lint` runs with values files, and YAML helpers. Not a test
// file itself; chart.test.ts and csi.test.ts import it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { parseAllDocuments, stringify } from 'yaml';

export const ROOT = join(import.meta.dirname, '..', '..', '..');
export const CHART = join(ROOT, 'deploy', 'chart');
export const RELEASE = 'ferry';
export const NAMESPACE = 'ferry-system';

export type Obj = {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [k: string]: unknown;
};
// Loose views of rendered workloads, enough for the assertions in the tests.
export type Container = {
  name: string;
  image: string;
  imagePullPolicy?: string;
  command?: string[];
  args: string[];
  env: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  securityContext: Record<string, unknown>;
  resources: unknown;
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean; mountPropagation?: string }[];
};
export type PodSpec = {
  serviceAccountName: string;
  terminationGracePeriodSeconds: number;
  securityContext: Record<string, unknown>;
  containers: Container[];
  volumes: {
    name: string;
    downwardAPI?: { items: { path: string; fieldRef: { fieldPath: string } }[] };
    hostPath?: { path: string; type: string };
  }[];
  nodeSelector?: unknown;
  tolerations?: unknown;
  affinity?: unknown;
  [k: string]: unknown;
};
export type Workload = Obj & {
  spec: {
    replicas?: number;
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
      spec: PodSpec;
    };
    [k: string]: unknown;
  };
};

/** Every non-empty document of a multi-document YAML text. */
export const docs = (text: string): Obj[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);

/** The documents of a repository file, e.g. readDocs('deploy', 'rbac.yaml'). */
export const readDocs = (...path: string[]): Obj[] => docs(readFileSync(join(ROOT, ...path), 'utf8'));

/** Exactly one object of the kind (and name, when given). */
export const one = <T extends Obj = Obj>(objs: Obj[], kind: string, name?: string): T => {
  const found = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  assert.equal(found.length, 1, `expected exactly one ${kind}${name ? ` ${name}` : ''}, got ${found.length}`);
  return found[0] as T;
};

// ---------------------------------------------------------------------------------------------
// The helm peer. Built once (a few minutes cold); skipped only when it cannot be built here.

function helmBinary(): { bin: string } | { skip: string } {
  const peers = join(ROOT, 'stack', 'peers.sh');
  const path = spawnSync('bash', [peers, 'path', 'helm'], { encoding: 'utf8' });
  assert.equal(path.status, 0, path.stderr);
  const bin = join(path.stdout.trim(), 'helm');
  if (!existsSync(join(path.stdout.trim(), '.complete'))) {
    const go = spawnSync('go', ['version'], { encoding: 'utf8' });
    if (go.error || go.status !== 0) {
      return { skip: 'helm peer not cached and no Go toolchain to build it (stack/peers.sh ensure helm)' };
    }
    // Progress goes to stderr; a build failure with Go present is a real failure, not a skip.
    const built = spawnSync('bash', [peers, 'ensure', 'helm'], { stdio: ['ignore', 'inherit', 'inherit'] });
    assert.equal(built.status, 0, 'stack/peers.sh ensure helm failed');
  }
  return { bin };
}

const helm = helmBinary();
/** The reason to skip the helm-based suites, or false. */
export const skip: string | false = 'skip' in helm ? helm.skip : false;
const work = mkdtempSync(join(tmpdir(), 'ferry-chart-'));
after(() => rmSync(work, { recursive: true, force: true }));

let valuesFiles = 0;
export function helmRun(
  args: string[],
  values?: unknown,
): { status: number | null; stdout: string; stderr: string } {
  assert.ok('bin' in helm);
  const extra: string[] = [];
  if (values !== undefined) {
    const file = join(work, `values-${valuesFiles++}.yaml`);
    writeFileSync(file, stringify(values));
    extra.push('--values', file);
  }
  const r = spawnSync(helm.bin, [...args, ...extra], {
    encoding: 'utf8',
    // Keep helm's own config/cache/data out of $HOME and the repository.
    env: {
      ...process.env,
      HELM_CONFIG_HOME: join(work, 'config'),
      HELM_CACHE_HOME: join(work, 'cache'),
      HELM_DATA_HOME: join(work, 'data'),
    },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `helm template` with the default kube version (the helm peer is built with the stack's), without
 * the Helm hooks (pre-delete, pre-upgrade Jobs) unless `hooks` is set. */
export function render(
  values?: unknown,
  opts: { release?: string; namespace?: string; hooks?: boolean; valuesFile?: string } = {},
): Obj[] {
  const r = helmRun(
    [
      'template',
      opts.release ?? RELEASE,
      CHART,
      '--namespace',
      opts.namespace ?? NAMESPACE,
      ...(opts.hooks ? [] : ['--no-hooks']),
      ...(opts.valuesFile ? ['--values', opts.valuesFile] : []),
    ],
    values,
  );
  assert.equal(r.status, 0, `helm template failed:\n${r.stderr}`);
  return docs(r.stdout);
}

export function renderFails(values: unknown): string {
  const r = helmRun(['template', RELEASE, CHART, '--namespace', NAMESPACE], values);
  assert.notEqual(r.status, 0, 'helm template should have failed');
  return r.stderr;
}

/** `helm lint --strict` of the chart with the values must pass. */
export function lint(values?: unknown): void {
  const r = helmRun(['lint', '--strict', CHART], values);
  assert.equal(r.status, 0, r.stdout + r.stderr);
}

// ---------------------------------------------------------------------------------------------
// Command-line flags: the chart must not pass a flag the program does not know (parseArgs is strict
// and would refuse to start).

/** The long options of a CLI entry point, read from its parseArgs table (e.g. 'operator.ts'), with
 * common.ts's COMMON_FLAGS where the table spreads them. */
export const cliFlags = (entry: string): Set<string> => {
  const read = (file: string): string => readFileSync(join(ROOT, 'src', 'cli', file), 'utf8');
  const text = read(entry);
  const tables = text.includes('...COMMON_FLAGS') ? text + read('common.ts') : text;
  return new Set([...tables.matchAll(/'?([a-z][a-z-]*)'?: \{ type:/g)].map((m) => m[1]!));
};

export const flagsOf = (args: string[]): Map<string, string> =>
  new Map(
    args.map((a) => {
      const m = /^--([a-z-]+)=(.*)$/.exec(a);
      assert.ok(m, `argument ${a} is not --flag=value`);
      return [m[1]!, m[2]!];
    }),
  );
