// Soak (issue 14): the operator as a local process (as bench/memory.ts runs it) against M resources
// with continuous churn for N minutes, sampled every few seconds, with a leak verdict.
//   npm run bench:soak -- [--minutes 10] [--n 200] [--churn 10] [--sample 5] [--namespaces 5]
//   npm run bench:soak -- --plot bench/results/soak-<time>.json
// Workload: 80 % VaultStaticSecrets (kv-v2, refreshAfter 30s), 10 % VaultDynamicSecrets (PostgreSQL,
// 2 min leases, renewed), 10 % VaultPKISecrets (5 min certificates, renewed), over --namespaces
// namespaces. Churn: --churn percent of M operations a minute, in turn: a Vault value change, a spec
// update (new generation), a delete or re-create of a resource, an edit of a destination Secret.
// Samples: RSS (/proc), V8 heap used right after a forced full GC, open fds and active handles (by a
// sampler preloaded into the operator, run with --expose-gc), work-queue depth, reconcile errors and
// Vault requests a second (the operator's /metrics), API requests a second (the API server's own
// counters, which count the churn and the node too). Verdict: least-squares slopes over the second
// half of heap-after-GC (MB/min) and fds (per min). Writes bench/results/soak-<UTC time>.json and
// its plot, docs/benchmarks/soak-<UTC time>.svg (memory, queue depth, errors and fds over time);
// `--plot <results.json>` draws the plot of an earlier run and exits.
// The stack may run the chart's operator: it is scaled to zero for the soak and back to one after.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { VaultDynamicSecrets, VaultPKISecrets, VaultStaticSecrets } from '../src/api/resources.ts';
import { Namespaces, type ResourceType } from '../src/k8s/resources.ts';
import { operatorPods, scaleOperator } from '../stack/lib/chart.ts';
import {
  adminClient,
  eventually,
  type Manifest,
  tamper,
  tenant,
  VaultAdmin,
  vds,
  vps,
  vss,
} from '../stack/lib/fixtures.ts';
import { alive, freePort, httpOk, start, waitFor } from '../stack/lib/proc.ts';
import { loadStackEnv } from '../stack/lib/stack.ts';
import { benchArgs } from './lib/args.ts';
import { IMAGE_NODE_FLAGS, operatorArgs } from './lib/ferry-process.ts';
import { apiserverCounts } from './lib/probes.ts';
import { lineChart } from './lib/svg.ts';
import { pool } from './lib/workload.ts';

const values = benchArgs({ minutes: 10, n: 200, churn: 10, sample: 5, namespaces: 5, plot: '' });
const MINUTES = values.minutes;
const N = values.n;
const CHURN_PER_MIN = (N * values.churn) / 100;
const SAMPLE_MS = values.sample * 1000;
const NS_COUNT = values.namespaces;
const MB = 1024 * 1024;
const ROOT = join(import.meta.dirname, '..');
const log = (m: string): void => {
  process.stderr.write(`[soak] ${m}\n`);
};

// Preloaded into the operator: every sample period, a full GC, then one JSON line of what is left.
const SAMPLER = `
import { appendFileSync, readdirSync } from 'node:fs';
const file = process.env.FERRY_SOAK_FILE;
setInterval(() => {
  globalThis.gc();
  const handles = {};
  for (const r of process.getActiveResourcesInfo()) handles[r] = (handles[r] ?? 0) + 1;
  appendFileSync(file, JSON.stringify({
    t: Date.now(), heapAfterGc: process.memoryUsage().heapUsed, rss: process.memoryUsage.rss(),
    fds: readdirSync('/proc/self/fd').length, handles,
  }) + '\\n');
}, ${SAMPLE_MS}).unref();
`;

interface Inner {
  t: number;
  heapAfterGc: number;
  rss: number;
  fds: number;
  handles: Record<string, number>;
}

interface Sample {
  minute: number;
  rssMB: number;
  heapAfterGcMB: number;
  fds: number;
  activeHandles: number;
  queueDepth: number;
  reconcileErrors: number;
  vaultReqPerS: number;
  apiReqPerS: number;
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += ((xs[i] as number) - mx) * ((ys[i] as number) - my);
    den += ((xs[i] as number) - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** Sum of a metric's samples (all label sets) in Prometheus text. */
function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `))
      sum += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
  }
  return sum;
}

/** Memory, work-queue depth, and errors with fds over time: three charts stacked in one SVG. */
function plot(s: { n: number; churnPerMinute: number; flavor: string }, samples: Sample[]): string {
  const at = (f: (x: Sample) => number) => samples.map((x) => [x.minute, f(x)] as const);
  const charts = [
    lineChart(
      `Soak: ${s.n} resources, ${s.churnPerMinute} changes/min (${s.flavor}): memory`,
      'minutes',
      'MB',
      [
        { label: 'RSS', points: at((x) => x.rssMB) },
        { label: 'heap after GC', points: at((x) => x.heapAfterGcMB) },
      ],
    ),
    lineChart('Work-queue depth (all controllers)', 'minutes', 'items', [
      { label: 'queue depth', points: at((x) => x.queueDepth) },
    ]),
    lineChart('Errors and descriptors', 'minutes', 'count', [
      { label: 'reconcile errors (total)', points: at((x) => x.reconcileErrors) },
      { label: 'open fds', points: at((x) => x.fds) },
      { label: 'active handles', points: at((x) => x.activeHandles) },
    ]),
  ];
  const size = (svg: string, a: string) => Number(svg.match(new RegExp(`${a}="(\\d+)"`))?.[1]);
  const w = size(charts[0] as string, 'width');
  const h = size(charts[0] as string, 'height');
  const body = charts.map((c, i) => c.replace('<svg ', `<svg y="${i * h}" `));
  const title = `Soak: ${s.n} resources, ${s.churnPerMinute} changes/min (${s.flavor})`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h * charts.length}">\n<title>${title}</title>\n${body.join('')}</svg>\n`;
}

/** Writes the plot of a results file next to the benchmark plots; returns its path. */
function writePlot(resultsFile: string): string {
  const { summary, samples } = JSON.parse(readFileSync(resultsFile, 'utf8')) as {
    summary: { n: number; churnPerMinute: number; flavor: string };
    samples: Sample[];
  };
  const dir = join(ROOT, 'docs', 'benchmarks');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, basename(resultsFile).replace(/\.json$/, '.svg'));
  writeFileSync(file, plot(summary, samples));
  return file;
}

type Kind = 'vss' | 'vds' | 'vps';
const kindOf = (i: number): Kind => (i % 10 === 8 ? 'vds' : i % 10 === 9 ? 'vps' : 'vss');
const RT: Record<Kind, ResourceType> = {
  vss: VaultStaticSecrets,
  vds: VaultDynamicSecrets,
  vps: VaultPKISecrets,
};

if (values.plot) {
  log(`wrote ${writePlot(values.plot)}`);
  process.exit(0);
}

const env = loadStackEnv();
const kube = adminClient(env);
const vault = new VaultAdmin(env);
const run = randomBytes(3).toString('hex');
const namespaces = Array.from({ length: NS_COUNT }, (_, k) => `soak-${run}-${k}`);
const DB = `soak-db-${run}`;
const PKI = `soak-pki-${run}`;
const nsOf = (i: number): string => namespaces[i % NS_COUNT] as string;
const nameOf = (i: number): string => `r${i}`;

function manifest(i: number, generation = 0): Manifest {
  const ns = nsOf(i);
  const name = nameOf(i);
  const destination = { name, create: true, labels: { churn: String(generation) } };
  switch (kindOf(i)) {
    case 'vds':
      return vds(ns, name, { mount: DB, path: 'creds/dyn', destination });
    case 'vps':
      return vps(ns, name, {
        mount: PKI,
        role: 'web',
        commonName: `${name}.soak.test`,
        ttl: '5m',
        expiryOffset: '150s',
        destination: { ...destination, type: 'kubernetes.io/tls' },
      });
    default:
      return vss(ns, name, {
        type: 'kv-v2',
        mount: 'kvv2',
        path: `${ns}/${name}`,
        refreshAfter: '30s',
        destination,
      });
  }
}

async function setup(): Promise<void> {
  await vault.postgresEngine(DB, { defaultTtl: '2m', maxTtl: '1h' });
  await vault.pkiEngine(PKI, { allowed_domains: ['soak.test'], allow_subdomains: true, max_ttl: '1h' });
  for (const ns of namespaces) {
    await tenant(env, kube, vault, ns, {
      connection: { name: 'default', address: env.vaultAddr },
      policy: [
        `path "${DB}/creds/dyn" { capabilities = ["read"] }`,
        `path "${PKI}/issue/web" { capabilities = ["update"] }`,
        'path "sys/leases/*" { capabilities = ["update"] }',
      ],
    });
  }
  await pool(N, 16, async (i) => {
    if (kindOf(i) === 'vss')
      await vault.kvPut('kvv2', `${nsOf(i)}/${nameOf(i)}`, { password: randomBytes(12).toString('hex') });
    await kube.create(RT[kindOf(i)], manifest(i));
  });
}

/** One churn operation; `k` picks which kind, round robin. */
async function churn(k: number, deleted: Set<number>, generations: Map<number, number>): Promise<string> {
  const i = Math.floor(Math.random() * N);
  const ns = nsOf(i);
  const name = nameOf(i);
  switch (k % 4) {
    case 0: {
      const j = i - (i % 10); // a VaultStaticSecret (kinds repeat every 10)
      await vault.kvPut('kvv2', `${nsOf(j)}/${nameOf(j)}`, { password: randomBytes(12).toString('hex') });
      return 'vault';
    }
    case 1: {
      if (deleted.has(i)) return 'skip';
      const g = (generations.get(i) ?? 0) + 1;
      generations.set(i, g);
      await kube.patch(
        RT[kindOf(i)],
        name,
        ns,
        { spec: { destination: { labels: { churn: String(g) } } } },
        'merge',
      );
      return 'update';
    }
    case 2: {
      const back = [...deleted][0];
      if (back !== undefined && (deleted.size > N / 50 || Math.random() < 0.5)) {
        deleted.delete(back);
        await kube.create(RT[kindOf(back)], manifest(back, generations.get(back) ?? 0));
        return 'recreate';
      }
      if (deleted.has(i)) return 'skip';
      deleted.add(i);
      await kube.delete(RT[kindOf(i)], name, ns);
      return 'delete';
    }
    default: {
      if (deleted.has(i) || kindOf(i) !== 'vss') return 'skip';
      await tamper(kube, ns, name, 'password');
      return 'edit';
    }
  }
}

async function main(): Promise<void> {
  const chartOperator =
    env.chart !== undefined && (await operatorPods(kube, env.operatorNamespace)).length > 0;
  if (env.operator?.pid !== undefined && alive(env.operator.pid))
    throw new Error('the stack runs an operator process: start it with `--operator none` or `chart`');
  if (chartOperator) {
    log('scaling the chart operator to zero for the soak');
    await scaleOperator(kube, env.operatorNamespace, 0);
  }
  const dir = mkdtempSync(join(tmpdir(), 'ferry-soak-'));
  let op: { pid: number } | undefined;
  const samples: Sample[] = [];
  const ops: Record<string, number> = {};
  let churnErrors = 0;
  try {
    const t0 = Date.now();
    await setup();
    log(`${N} resources in ${NS_COUNT} namespaces created in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const innerFile = join(dir, 'inner.jsonl');
    const [health, metrics] = (await Promise.all([freePort(), freePort()])) as [number, number];
    const metricsUrl = `http://127.0.0.1:${metrics}/metrics`;
    op = start(
      dir,
      'operator',
      process.execPath,
      [
        ...IMAGE_NODE_FLAGS,
        '--expose-gc',
        `--import=data:text/javascript,${encodeURIComponent(SAMPLER)}`,
        ...operatorArgs(env, { metrics, health }),
        '--log-level=info',
      ],
      { env: { ...process.env, FERRY_SOAK_FILE: innerFile } },
    );
    const pid = op.pid;
    await waitFor('operator', join(dir, 'operator.log'), pid, () =>
      httpOk(`http://127.0.0.1:${health}/readyz`),
    );
    const started = Date.now();
    const end = started + MINUTES * 60_000;
    const deleted = new Set<number>();
    const generations = new Map<number, number>();
    const caPem = readFileSync(env.caFile, 'utf8');
    const vaultRequests = async (): Promise<number> =>
      metricSum(await (await fetch(metricsUrl)).text(), 'ferry_vault_requests_total');
    let prev = {
      t: started,
      vault: await vaultRequests(),
      api: (await apiserverCounts(env.apiServer, env.adminToken, caPem)).total,
    };
    let k = 0;
    let nextSample = started + SAMPLE_MS + 500;
    let nextChurn = started;
    while (Date.now() < end) {
      if (!alive(pid)) throw new Error(`operator exited (see ${join(dir, 'operator.log')})`);
      if (Date.now() >= nextChurn) {
        nextChurn += 60_000 / Math.max(CHURN_PER_MIN, 1e-9);
        try {
          const what = await churn(k++, deleted, generations);
          ops[what] = (ops[what] ?? 0) + 1;
        } catch (err) {
          churnErrors++;
          log(`churn: ${String(err)}`);
        }
      }
      if (Date.now() >= nextSample) {
        nextSample += SAMPLE_MS;
        const now = Date.now();
        const text = await (await fetch(metricsUrl)).text();
        const vaultTotal = metricSum(text, 'ferry_vault_requests_total');
        const api = (await apiserverCounts(env.apiServer, env.adminToken, caPem)).total;
        const inner = readFileSync(innerFile, 'utf8').trim().split('\n').at(-1);
        const last = inner ? (JSON.parse(inner) as Inner) : undefined;
        const dt = (now - prev.t) / 1000;
        const s: Sample = {
          minute: Number(((now - started) / 60_000).toFixed(3)),
          rssMB: Number(((last?.rss ?? 0) / MB).toFixed(1)),
          heapAfterGcMB: Number(((last?.heapAfterGc ?? 0) / MB).toFixed(2)),
          fds: last?.fds ?? 0,
          activeHandles: Object.values(last?.handles ?? {}).reduce((a, b) => a + b, 0),
          queueDepth: metricSum(text, 'workqueue_depth'),
          reconcileErrors: metricSum(text, 'controller_runtime_reconcile_errors_total'),
          vaultReqPerS: Number(((vaultTotal - prev.vault) / dt).toFixed(2)),
          apiReqPerS: Number(((api - prev.api) / dt).toFixed(2)),
        };
        prev = { t: now, vault: vaultTotal, api };
        samples.push(s);
        log(JSON.stringify(s));
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    // Verdict over the second half: a leak grows steadily once the workload is in its steady state.
    const half = samples.filter((s) => s.minute >= MINUTES / 2);
    const heapSlope = slope(
      half.map((s) => s.minute),
      half.map((s) => s.heapAfterGcMB),
    );
    const fdSlope = slope(
      half.map((s) => s.minute),
      half.map((s) => s.fds),
    );
    const rssSlope = slope(
      half.map((s) => s.minute),
      half.map((s) => s.rssMB),
    );
    const handleSlope = slope(
      half.map((s) => s.minute),
      half.map((s) => s.activeHandles),
    );
    const meanHeap = half.reduce((a, s) => a + s.heapAfterGcMB, 0) / Math.max(half.length, 1);
    // A leak: the heap after GC grows by more than 1 % of itself a minute, or fds by more than 1 a minute.
    const heapLeak = heapSlope > Math.max(0.2, meanHeap * 0.01);
    const fdLeak = fdSlope > 1;
    const final = samples.at(-1);
    const inner = readFileSync(innerFile, 'utf8').trim().split('\n').at(-1);
    const summary = {
      flavor: env.flavor,
      minutes: MINUTES,
      n: N,
      churnPerMinute: CHURN_PER_MIN,
      ops,
      churnErrors,
      vaultRequests: prev.vault,
      secondHalf: {
        heapAfterGcSlopeMBPerMin: Number(heapSlope.toFixed(3)),
        fdSlopePerMin: Number(fdSlope.toFixed(3)),
        rssSlopeMBPerMin: Number(rssSlope.toFixed(3)),
        activeHandlesSlopePerMin: Number(handleSlope.toFixed(3)),
        meanHeapAfterGcMB: Number(meanHeap.toFixed(2)),
      },
      peak: {
        rssMB: Math.max(...samples.map((s) => s.rssMB)),
        heapAfterGcMB: Math.max(...samples.map((s) => s.heapAfterGcMB)),
        fds: Math.max(...samples.map((s) => s.fds)),
        queueDepth: Math.max(...samples.map((s) => s.queueDepth)),
      },
      final,
      finalHandles: inner ? (JSON.parse(inner) as Inner).handles : {},
      verdict: heapLeak || fdLeak ? `LEAK? (heap ${heapLeak}, fds ${fdLeak})` : 'no leak',
    };
    const out = join(ROOT, 'bench', 'results');
    mkdirSync(out, { recursive: true });
    const file = join(out, `soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, `${JSON.stringify({ summary, samples }, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    log(`verdict: ${summary.verdict}; wrote ${file} and ${writePlot(file)}; operator log in ${dir}`);
  } finally {
    // Deleted while the soak's operator still runs, so leases are revoked and finalizers go.
    for (const ns of namespaces) await kube.delete(Namespaces, ns).catch(() => undefined);
    await eventually(
      'soak namespaces gone',
      async () =>
        (await kube.list(Namespaces)).items.every((x) => !namespaces.includes(x.metadata.name ?? '')),
      120_000,
      1000,
    ).catch((err: unknown) => log(String(err)));
    if (op && alive(op.pid)) {
      process.kill(op.pid, 'SIGTERM');
      for (let i = 0; i < 100 && alive(op.pid); i++) await new Promise((r) => setTimeout(r, 200));
      if (alive(op.pid)) process.kill(op.pid, 'SIGKILL');
    }
    if (chartOperator) await scaleOperator(kube, env.operatorNamespace, 1);
    for (const m of [DB, PKI]) await vault.call('DELETE', `sys/mounts/${m}`).catch(() => undefined);
    await vault.close();
    await kube.close();
  }
}

await main();
