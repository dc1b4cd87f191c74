// Ferry side by side with VSO and ESO (issue 12): each operator, and a raw loop of plain HTTP clients,
// syncs N kv-v2 secrets (refreshAfter 30s) over 10 namespaces on a fresh private stack of its own,
// started as a local process after its resources exist. Measured from outside the process:
//   initial sync time and the synced-over-time curve (Secrets listed every 0.5 s), RSS every 0.5 s,
//   change propagation (10 % of the values change in Vault: p50/p99 until the Secret has them),
//   a quiet period (CPU seconds from /proc, Vault requests and logins through a counting proxy,
//   API-server requests and writes from its own apiserver_request_total).
// Writes bench/results/<UTC date>.json (merged with the same day's earlier runs) and docs/benchmarks.md.
//   npm run bench [-- --quick] [--n 1000,5000] [--runs 3] [--operators ferry,vso,eso,raw]
//                 [--scenarios defaults,tuned] [--quiet 60] [--report-only]
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { KubeClient } from '../src/k8s/client.ts';
import { Secrets } from '../src/k8s/resources.ts';
import type { Secret } from '../src/k8s/types.ts';
import { adminClient, apply, readManifests, VaultAdmin } from '../stack/lib/fixtures.ts';
import { freePort, type Log, start, stopAll } from '../stack/lib/proc.ts';
import { repoRoot, type StackEnv, stackDown, stackUp } from '../stack/lib/stack.ts';
import { OPERATORS, type OperatorName, type Scenario } from './lib/peers.ts';
import { apiserverCounts, procSample, RssSampler, VaultProxy } from './lib/probes.ts';
import { type BenchResults, renderReport } from './lib/report.ts';
import { percentile, type Row, type Series } from './lib/stats.ts';
import { createResources, NAMESPACES, plantValues, tenants } from './lib/workload.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    n: { type: 'string' },
    runs: { type: 'string' },
    operators: { type: 'string', default: 'ferry,vso,eso,raw' },
    scenarios: { type: 'string' },
    quiet: { type: 'string' },
    'report-only': { type: 'boolean', default: false },
  },
});
const quick = values.quick;
const ns = (values.n ?? (quick ? '100' : '1000')).split(',').map(Number);
const runs = Number(values.runs ?? 1);
const operators = values.operators.split(',') as OperatorName[];
const scenarios = (values.scenarios ?? (quick ? 'defaults' : 'defaults,tuned')).split(',') as Scenario[];
const quietS = Number(values.quiet ?? (quick ? 30 : 60));
const log: Log = (m) => process.stderr.write(`[bench] ${m}\n`);
const stackLog: Log = (m) => process.stderr.write(`[stack] ${m}\n`);

const date = new Date().toISOString().slice(0, 10);
const resultsFile = join(repoRoot, 'bench', 'results', `${date}.json`);
process.env.FERRY_STACK_ENV ??= join('/tmp', 'ferry-bench-stack', 'env.json');

function loadResults(): BenchResults {
  if (existsSync(resultsFile)) return JSON.parse(readFileSync(resultsFile, 'utf8')) as BenchResults;
  return { date, commands: [], machine: machine(), versions: {}, rows: [], series: [] };
}

function machine(): BenchResults['machine'] {
  const cpu = cpus();
  return {
    cpus: cpu.length,
    cpuModel: cpu[0]?.model ?? 'unknown',
    memoryGb: Math.round(totalmem() / 2 ** 30),
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    node: process.versions.node,
  };
}

interface Expected {
  values: Map<string, string>;
}

/** How many of the N Secrets hold their expected value now, and which keys do. */
async function observe(kube: KubeClient, exp: Expected): Promise<Set<string>> {
  const list = await kube.list<Secret>(Secrets, {});
  const ok = new Set<string>();
  for (const s of list.items) {
    const key = `${s.metadata.namespace}/${s.metadata.name}`;
    const want = exp.values.get(key);
    if (want === undefined) continue;
    const got = s.data?.value ? Buffer.from(s.data.value, 'base64').toString('utf8') : undefined;
    if (got === want) ok.add(key);
  }
  return ok;
}

async function runOnce(
  op: OperatorName,
  scenario: Scenario,
  n: number,
  run: number,
): Promise<{ rows: Row[]; series: Series[] }> {
  const spec = OPERATORS[op];
  const rows: Row[] = [];
  const row = (figure: string, value: number): void => {
    rows.push({ operator: op, scenario, n, run, figure, value });
    log(
      `${op}/${scenario} N=${n} run ${run}: ${figure} = ${Number.isFinite(value) ? Math.round(value * 100) / 100 : value}`,
    );
  };
  const crds = spec.crds(log);
  log(`${op}/${scenario} N=${n} run ${run}: fresh stack`);
  const env: StackEnv = await stackUp({ flavor: 'openbao', operator: 'none', node: false, log: stackLog });
  const kube = adminClient(env);
  const vault = new VaultAdmin(env);
  const proxy = new VaultProxy(env.vaultAddr);
  let pid: number | undefined;
  let rss: RssSampler | undefined;
  try {
    const proxyAddr = await proxy.start();
    for (const file of crds) {
      for (const m of readManifests(file)) if (m.kind === 'CustomResourceDefinition') await apply(kube, m);
    }
    if (crds.length) await sleep(3000); // a replaced CRD's storage re-initialises for a moment
    await tenants(kube, vault);
    const exp: Expected = { values: await plantValues(vault, n) };
    await createResources(kube, spec.flavour, n, proxyAddr);
    log(
      `${op}/${scenario} N=${n}: ${n} secrets over ${NAMESPACES} namespaces created; starting the operator`,
    );

    const ports = [await freePort(), await freePort()] as [number, number];
    const l = spec.launch(env, scenario, proxyAddr, n, ports, log);
    const t0 = performance.now();
    const p = start(env.dir, `bench-${op}`, l.cmd, l.args, { env: l.env });
    pid = p.pid;
    // Recorded in the stack so `npm run stack -- down` stops it should this process die first.
    const recorded = JSON.parse(readFileSync(process.env.FERRY_STACK_ENV as string, 'utf8')) as StackEnv;
    recorded.processes.push(p);
    writeFileSync(process.env.FERRY_STACK_ENV as string, JSON.stringify(recorded, null, 2));
    rss = new RssSampler(p.pid, t0);
    const secs = (): number => (performance.now() - t0) / 1000;

    // Initial sync.
    const curve: [number, number][] = [[0, 0]];
    const syncTimeout = 60 + n * 0.3;
    let syncS = Number.NaN;
    let syncedCount = 0;
    while (secs() < syncTimeout) {
      const ok = await observe(kube, exp).catch(() => new Set<string>());
      syncedCount = ok.size;
      curve.push([Math.round(secs() * 10) / 10, ok.size]);
      if (ok.size === n) {
        syncS = secs();
        break;
      }
      if (procSample(p.pid) === undefined)
        throw new Error(`${op} exited (log: ${join(env.dir, `bench-${op}.log`)})`);
      await sleep(500);
    }
    row('sync_s', syncS);
    row('synced_count', syncedCount);
    const atSync = proxy.snapshot();
    row('vault_requests_sync', atSync.requests);
    row('vault_logins_sync', atSync.logins);
    row('cpu_sync_s', procSample(p.pid)?.cpuS ?? Number.NaN);

    // Change propagation: 10 % of the values change, spread over every namespace.
    const ids = Array.from({ length: n }, (_, i) => i).filter((i) => Math.floor(i / NAMESPACES) % 10 === 0);
    const changed = await plantValues(vault, n, 1, ids);
    const tc = performance.now();
    for (const [k, v] of changed) exp.values.set(k, v);
    const seen = new Map<string, number>();
    while (seen.size < changed.size && (performance.now() - tc) / 1000 < 120) {
      const ok = await observe(kube, exp).catch(() => new Set<string>());
      const t = (performance.now() - tc) / 1000;
      for (const k of changed.keys()) if (ok.has(k) && !seen.has(k)) seen.set(k, t);
      curve.push([Math.round(secs() * 10) / 10, ok.size]);
      await sleep(500);
    }
    const lat = [...seen.values()];
    row('change_p50_s', seen.size === changed.size ? percentile(lat, 50) : Number.NaN);
    row('change_p99_s', seen.size === changed.size ? percentile(lat, 99) : Number.NaN);
    row('change_missed', changed.size - seen.size);

    // Quiet period: nothing changes and nothing is polled.
    const c0 = procSample(p.pid)?.cpuS ?? Number.NaN;
    const v0 = proxy.snapshot();
    const a0 = await apiserverCounts(env.apiServer, env.adminToken, readFileSync(env.caFile, 'utf8'));
    await sleep(quietS * 1000);
    const a1 = await apiserverCounts(env.apiServer, env.adminToken, readFileSync(env.caFile, 'utf8'));
    const v1 = proxy.snapshot();
    const c1 = procSample(p.pid)?.cpuS ?? Number.NaN;
    row('quiet_s', quietS);
    row('quiet_cpu_s', c1 - c0);
    row('quiet_vault_requests', v1.requests - v0.requests);
    row('quiet_vault_logins', v1.logins - v0.logins);
    // Less the benchmark's own /metrics request.
    row('quiet_api_requests', a1.total - a0.total - 1);
    row('quiet_api_writes', a1.writes - a0.writes);
    rss.stop();
    row('rss_peak_mb', rss.peak);
    row('rss_end_mb', rss.points[rss.points.length - 1]?.[1] ?? Number.NaN);
    return {
      rows,
      series: [
        { operator: op, scenario, n, run, kind: 'synced', points: curve },
        { operator: op, scenario, n, run, kind: 'rss_mb', points: rss.points },
      ],
    };
  } finally {
    rss?.stop();
    if (pid !== undefined) await stopAll([{ name: op, pid, signal: 'SIGTERM' }], log, { timeoutMs: 15_000 });
    await proxy.close();
    await vault.close();
    await kube.close();
    await stackDown(stackLog);
  }
}

function writeReport(results: BenchResults): void {
  const { markdown, svgs } = renderReport(results);
  mkdirSync(join(repoRoot, 'docs', 'benchmarks'), { recursive: true });
  for (const [name, svg] of Object.entries(svgs))
    writeFileSync(join(repoRoot, 'docs', 'benchmarks', name), svg);
  writeFileSync(join(repoRoot, 'docs', 'benchmarks.md'), markdown);
  log(`wrote docs/benchmarks.md and ${Object.keys(svgs).length} plots`);
}

const results = loadResults();
if (!values['report-only']) {
  const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim();
  results.commands = [...new Set([...results.commands, command])];
  results.machine = machine();
  mkdirSync(join(repoRoot, 'bench', 'results'), { recursive: true });
  for (const op of operators) {
    const spec = OPERATORS[op];
    if (!spec) throw new Error(`unknown operator '${op}': use ferry, vso, eso or raw`);
    results.versions[op] = spec.version(log);
  }
  for (const n of ns) {
    for (let run = 1; run <= runs; run++) {
      for (const op of operators) {
        for (const scenario of scenarios.filter((s) => OPERATORS[op].scenarios.includes(s))) {
          // Earlier figures of the same operator, scenario, N and run are replaced.
          const same = (r: { operator: string; scenario: string; n: number; run: number }): boolean =>
            r.operator === op && r.scenario === scenario && r.n === n && r.run === run;
          try {
            const out = await runOnce(op, scenario, n, run);
            results.rows = [...results.rows.filter((r) => !same(r)), ...out.rows];
            results.series = [...results.series.filter((s) => !same(s)), ...out.series];
          } catch (err) {
            const prefix = `${op}/${scenario} N=${n} run ${run} failed:`;
            const msg = `${prefix} ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`;
            log(msg);
            results.notes = [...(results.notes ?? []).filter((x) => !x.startsWith(prefix)), msg];
            results.rows = [
              ...results.rows.filter((r) => !same(r)),
              { operator: op, scenario, n, run, figure: 'failed', value: 1 },
            ];
          }
          writeFileSync(resultsFile, `${JSON.stringify(results, null, 1)}\n`);
        }
      }
    }
  }
  log(`wrote ${resultsFile}`);
}
writeReport(results);
