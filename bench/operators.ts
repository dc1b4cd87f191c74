// Ferry side by side with VSO and ESO (issue 12): each operator, and a raw loop of plain HTTP clients,
// syncs N kv-v2 secrets (refreshAfter 30s) over 10 namespaces on a fresh private stack of its own,
// started as a local process after its resources exist (bench/lib/scenarios.ts). Measured from outside:
//   initial sync time and the synced-over-time curve (Secrets listed every 0.5 s), RSS every 0.5 s,
//   change propagation (10 % of the values change in Vault: p50/p99 until the Secret has them),
//   a quiet period (CPU seconds from /proc, Vault requests and logins through a counting proxy,
//   API-server requests and writes from its own apiserver_request_total); scenario `restart`: N static
//   and 200 dynamic secrets and an operator restart (Ferry and VSO: ESO has no VaultDynamicSecret).
// Writes bench/results/<UTC date>.json (merged with the same day's earlier runs) and docs/benchmarks.md.
//   npm run bench [-- --quick] [--n 1000,5000] [--runs 3] [--first-run 1] [--operators ferry,vso,eso,raw]
//                 [--scenarios defaults,tuned,restart,cgroup-128Mi,chart-limits,refresh-10s] [--quiet 600]
//                 [--sync-cap 600] [--sync-stall 120] [--report-only]
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Log } from '../stack/lib/proc.ts';
import { repoRoot } from '../stack/lib/stack.ts';
import { benchArgs } from './lib/args.ts';
import { OPERATORS, type OperatorName, runsIn, type Scenario } from './lib/peers.ts';
import { type BenchResults, type RunRecord, renderReport, serializeResults } from './lib/report.ts';
import { type RunOutput, type RunSpec, restartScenario, syncScenario } from './lib/scenarios.ts';

// An empty or 0 value: the default of a full or a `--quick` run.
const values = benchArgs({
  quick: false,
  n: '',
  runs: 0,
  'first-run': 1,
  operators: 'ferry,vso,eso,raw',
  scenarios: '',
  quiet: 0,
  'sync-cap': 0,
  'sync-stall': 120,
  'report-only': false,
});
const quick = values.quick;
const ns = (values.n || (quick ? '100' : '1000')).split(',').map(Number);
const runs = values.runs || (quick ? 1 : 3); // the medians of 3 runs
const firstRun = values['first-run']; // to add runs to the day's results file
const operators = values.operators.split(',') as OperatorName[];
// `cgroup-128Mi`: every operator with its defaults inside a 128 MiB memory cgroup (bench/lib/cgroup.ts).
// `chart-limits`: Ferry and VSO under their charts' limits (128Mi, 500m CPU).
const scenarios = (
  values.scenarios || (quick ? 'defaults' : 'defaults,tuned,cgroup-128Mi,chart-limits,restart')
).split(',') as (Scenario | 'restart')[];
// The quiet 10 minutes; `--quiet 60` for shorter runs.
const quietS = values.quiet || (quick ? 30 : 600);
// The initial sync is waited for at most this long, or until the count stops growing for `--sync-stall`
// seconds: VSO does not converge at N = 5,000 (issue 12) and would otherwise be waited for forever.
const waitFor = (n: number) => ({
  capS: values['sync-cap'] || Math.min(600, 60 + n * 0.3),
  stallS: Number(values['sync-stall']),
});
const DYNAMIC = 200;
const RESTART_WINDOW_S = 90;
const log: Log = (m) => process.stderr.write(`[bench] ${m}\n`);

const date = new Date().toISOString().slice(0, 10);
const resultsFile = join(repoRoot, 'bench', 'results', `${date}.json`);
process.env.FERRY_STACK_ENV ??= join('/tmp', 'ferry-bench-stack', 'env.json');

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

const results: BenchResults = existsSync(resultsFile)
  ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as BenchResults)
  : { date, commands: [], machine: machine(), versions: {}, rows: [], series: [] };

/** Runs one measurement and merges it into the results, replacing earlier figures of the same kind. */
async function measure(r: RunSpec, restart: boolean, fn: () => Promise<RunOutput>): Promise<void> {
  const same = (x: {
    operator: string;
    scenario: string;
    n: number;
    run: number;
    figure?: string;
  }): boolean =>
    x.operator === r.op &&
    x.scenario === r.scenario &&
    x.n === r.n &&
    x.run === r.run &&
    (x.figure === undefined
      ? !restart
      : x.figure.startsWith('restart_') === restart || x.figure === 'failed');
  const prefix = `${r.op}/${r.scenario} N=${r.n} run ${r.run}${restart ? ' restart' : ''} failed:`;
  results.notes = (results.notes ?? []).filter((x) => !x.startsWith(prefix));
  const started = new Date().toISOString().slice(11, 19);
  const load1 = loadavg()[0] ?? Number.NaN;
  try {
    const out = await fn();
    results.rows = [...results.rows.filter((x) => !same(x)), ...out.rows];
    results.series = [...results.series.filter((x) => !same(x)), ...out.series];
  } catch (err) {
    const msg = `${prefix} ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`;
    log(msg);
    results.notes.push(msg);
    results.rows = [
      ...results.rows.filter((x) => !same(x)),
      { operator: r.op, scenario: r.scenario, n: r.n, run: r.run, figure: 'failed', value: 1 },
    ];
  }
  // Which build each run measured, when, and under what load (the machine is shared).
  const record: RunRecord = {
    operator: r.op,
    scenario: restart ? 'restart' : r.scenario,
    n: r.n,
    run: r.run,
    version: results.versions[r.op] ?? '',
    utc: `${started}–${new Date().toISOString().slice(11, 19)}`,
    load: [load1, loadavg()[0] ?? Number.NaN].map((x) => Math.round(x * 10) / 10) as [number, number],
  };
  const other = (x: RunRecord): boolean =>
    !(x.operator === record.operator && x.scenario === record.scenario && x.n === r.n && x.run === r.run);
  results.runs = [...(results.runs ?? []).filter(other), record];
  writeFileSync(resultsFile, serializeResults(results));
}

if (!values['report-only']) {
  for (const op of operators) {
    if (!OPERATORS[op]) throw new Error(`unknown operator '${op}': use ferry, vso, eso or raw`);
  }
  const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim();
  results.commands = [...new Set([...results.commands, command])];
  results.machine = machine();
  for (const op of operators) results.versions[op] = OPERATORS[op].version(log);
  mkdirSync(join(repoRoot, 'bench', 'results'), { recursive: true });
  for (const n of ns) {
    for (let run = firstRun; run < firstRun + runs; run++) {
      for (const op of operators) {
        for (const scenario of scenarios.filter(
          (s): s is Scenario => s !== 'restart' && runsIn(OPERATORS[op], s),
        )) {
          const r: RunSpec = { op, scenario, n, run, log };
          await measure(r, false, () => syncScenario(r, quietS, waitFor(n)));
        }
        if (scenarios.includes('restart') && OPERATORS[op].flavour === 'vso-api') {
          const r: RunSpec = { op, scenario: 'defaults', n, run, log };
          await measure(r, true, () => restartScenario(r, DYNAMIC, RESTART_WINDOW_S));
        }
      }
    }
  }
  log(`wrote ${resultsFile}`);
}
const { markdown, svgs } = renderReport(results);
mkdirSync(join(repoRoot, 'docs', 'benchmarks'), { recursive: true });
for (const [name, svg] of Object.entries(svgs))
  writeFileSync(join(repoRoot, 'docs', 'benchmarks', name), svg);
writeFileSync(join(repoRoot, 'docs', 'benchmarks.md'), markdown);
log(`wrote docs/benchmarks.md and ${Object.keys(svgs).length} plots`);
