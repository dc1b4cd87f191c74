// docs/benchmarks.md and its plots from a results file of bench/operators.ts (pure: no I/O).
import { type Aggregate, aggregate, type Row, type Series } from './stats.ts';
import { type Line, lineChart } from './svg.ts';

export interface BenchResults {
  date: string;
  commands: string[];
  machine: { cpus: number; cpuModel: string; memoryGb: number; kernel: string; node: string };
  versions: Record<string, string>;
  rows: Row[];
  series: Series[];
  /** Observations written by whoever ran it, shown under the tables. */
  notes?: string[];
}

/** The results file: one row or series per line, so that a diff between runs stays readable. */
export function serializeResults(res: BenchResults): string {
  const { rows, series, ...head } = res;
  const list = (xs: readonly unknown[]): string =>
    `[\n${xs.map((x) => `  ${JSON.stringify(x)}`).join(',\n')}\n ]`;
  const fields = Object.entries(head).map(
    ([k, v]) => ` ${JSON.stringify(k)}: ${JSON.stringify(v, null, 1).replace(/\n/g, '\n ')}`,
  );
  return `{\n${[...fields, ` "rows": ${list(rows)}`, ` "series": ${list(series)}`].join(',\n')}\n}\n`;
}

/** Figures in table order: label and decimals. */
export const FIGURES: [string, string, number][] = [
  ['sync_s', 'initial sync (s)', 1],
  ['synced_count', 'Secrets synced at the end of the initial phase', 0],
  ['vault_requests_sync', 'Vault requests until synced', 0],
  ['vault_logins_sync', 'Vault logins until synced', 0],
  ['cpu_sync_s', 'CPU seconds until synced', 1],
  ['change_p50_s', 'change propagation p50 (s)', 1],
  ['change_p99_s', 'change propagation p99 (s)', 1],
  ['change_missed', 'changed values not delivered within 120 s', 0],
  ['quiet_s', 'quiet period (s)', 0],
  ['quiet_cpu_s', 'quiet: CPU seconds', 2],
  ['quiet_vault_requests', 'quiet: Vault requests', 0],
  ['quiet_vault_logins', 'quiet: Vault logins', 0],
  ['quiet_api_requests', 'quiet: API-server requests (all clients)', 0],
  ['quiet_api_writes', 'quiet: API-server writes (all clients)', 0],
  ['rss_peak_mb', 'peak RSS (MB)', 0],
  ['rss_end_mb', 'RSS at the end (MB)', 0],
  ['cg_peak_mb', "cgroup peak (MB): the kernel's high-water mark of the process's cgroup", 0],
  ['ws_peak_mb', 'working set peak (MB): cgroup usage − inactive file pages, as `kubectl top`', 0],
  ['ws_end_mb', 'working set at the end (MB)', 0],
  ['oom_kills', 'OOM kills in its cgroup', 0],
  ['restart_first_sync_s', 'restart: first sync of N static + 200 dynamic (s)', 1],
  ['restart_converge_s', 'restart: until every static secret was re-read (s)', 1],
  ['restart_window_s', 'restart: window observed after the restart (s)', 0],
  ['restart_logins', 'restart: Vault logins', 0],
  ['restart_vault_requests', 'restart: Vault requests', 0],
  ['restart_creds_issued', 'restart: database credentials issued', 0],
  ['restart_creds_changed', 'restart: dynamic Secrets whose credentials changed', 0],
  ['restart_rollouts', 'restart: rollout restarts', 0],
  ['restart_api_writes', 'restart: API-server writes (all clients)', 0],
  ['restart_rss_peak_mb', 'restart: peak RSS of the new process (MB)', 0],
  ['restart_cg_peak_mb', "restart: the new process's cgroup peak (MB)", 0],
  ['restart_ws_peak_mb', "restart: the new process's working set peak (MB)", 0],
  ['restart_oom_kills', 'restart: OOM kills of the new process', 0],
];

/** Ratios Ferry ÷ other column for the figures the issue sets targets on. */
const RATIO_FIGURES = [
  'sync_s',
  'cpu_sync_s',
  'rss_peak_mb',
  'cg_peak_mb',
  'ws_peak_mb',
  'quiet_cpu_s',
  'vault_requests_sync',
];

const OPERATOR_ORDER = ['ferry', 'vso', 'eso', 'raw'];
export const columnOf = (r: { operator: string; scenario: string }): string =>
  r.operator === 'raw' ? 'raw loop' : r.scenario === 'defaults' ? r.operator : `${r.operator} ${r.scenario}`;
/** Operators in order, each with defaults, then tuned, then its cgroup-limited runs. */
const columnRank = (c: string): number => {
  const [op = '', scenario = 'defaults'] = c.split(' ');
  const i = OPERATOR_ORDER.indexOf(op === 'raw' ? 'raw' : op);
  return i * 3 + (scenario === 'defaults' || scenario === 'loop' ? 0 : scenario === 'tuned' ? 1 : 2);
};

export function fmt(v: number, decimals: number): string {
  if (!Number.isFinite(v)) return 'not reached';
  return v.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

/** Per column, the peak-RSS slope between the smallest and largest N it was measured at. */
export function rssGrowth(
  agg: readonly Aggregate[],
): { column: string; from: number; to: number; mbPer1000: number }[] {
  const peaks = agg.filter((a) => a.figure === 'rss_peak_mb' && Number.isFinite(a.median));
  const cols = [...new Set(peaks.map(columnOf))].sort((a, b) => columnRank(a) - columnRank(b));
  return cols.flatMap((column) => {
    const ps = peaks.filter((p) => columnOf(p) === column).sort((a, b) => a.n - b.n);
    const lo = ps[0];
    const hi = ps[ps.length - 1];
    if (!lo || !hi || lo.n === hi.n) return [];
    return [{ column, from: lo.n, to: hi.n, mbPer1000: ((hi.median - lo.median) / (hi.n - lo.n)) * 1000 }];
  });
}

export function renderReport(res: BenchResults): { markdown: string; svgs: Record<string, string> } {
  const agg = aggregate(res.rows);
  const svgs: Record<string, string> = {};
  const out: string[] = [
    '# Benchmarks: Ferry side by side with VSO and ESO',
    '',
    '<!-- Generated by `npm run bench` (bench/operators.ts, bench/lib/report.ts); edit those, not this file. -->',
    '',
    'Each operator syncs N kv-v2 secrets (`refreshAfter`/`refreshInterval` 30 s, `create: true`) spread over',
    '10 namespaces, each namespace with its own ServiceAccount, VaultConnection and VaultAuth (kubernetes',
    'auth on OpenBao; a SecretStore per namespace for ESO). Every operator run gets a fresh private stack',
    "(`npm run stack -- up --operator none --no-node`) with the operator's own CRDs; the resources exist",
    'before the operator starts, and every operator runs as a local process with a kubeconfig (Ferry with',
    'its own ServiceAccount, VSO and ESO as the admin), measured from outside in the same way. The',
    '**raw loop** (`bench/raw-loop.ts`) is plain HTTP clients doing the same logins, reads and Secret writes',
    "at Ferry's concurrency with no operator: the practical limit.",
    '',
    '**These figures were taken on a shared 2-core machine while other work ran on it.** Absolute times',
    'move with that load; the ratios between operators within one run are what count.',
    '',
    '## Machine and versions',
    '',
    `- date: ${res.date}; ${res.machine.cpus} × ${res.machine.cpuModel}, ${res.machine.memoryGb} GB, Linux ${res.machine.kernel}, Node ${res.machine.node}`,
    ...Object.entries(res.versions)
      .sort(([a], [b]) => OPERATOR_ORDER.indexOf(a) - OPERATOR_ORDER.indexOf(b))
      .map(([op, v]) => `- ${op}: ${v}`),
    '- stack: OpenBao dev server, kube-apiserver and etcd from `stack/peers.sh`, all on loopback',
    '',
    '## Commands',
    '',
    '```sh',
    ...res.commands,
    '```',
    '',
  ];
  const nValues = [...new Set(agg.map((a) => a.n))].sort((a, b) => a - b);
  for (const n of nValues) {
    const rows = agg.filter((a) => a.n === n);
    const cols = [...new Set(rows.map(columnOf))].sort((a, b) => columnRank(a) - columnRank(b));
    const runs = Math.max(...rows.map((r) => r.runs));
    const cell = (col: string, figure: string, decimals: number): string => {
      const a = rows.find((r) => columnOf(r) === col && r.figure === figure);
      if (!a) return '–';
      if (a.runs === 0) return 'not reached';
      const m = fmt(a.median, decimals);
      return a.runs > 1 ? `${m} (${fmt(a.min, decimals)}–${fmt(a.max, decimals)})` : m;
    };
    out.push(
      `## N = ${n.toLocaleString('en-US')}`,
      '',
      runs > 1
        ? `Medians of up to ${runs} runs, (min–max) in brackets where a column has more than one.`
        : 'One run.',
      '',
      `| figure | ${cols.join(' | ')} |`,
      `|---|${cols.map(() => '---:').join('|')}|`,
    );
    const failed = rows.filter((r) => r.figure === 'failed').map(columnOf);
    if (failed.length)
      out.push(`| run failed | ${cols.map((c) => (failed.includes(c) ? 'yes' : '')).join(' | ')} |`);
    for (const [figure, label, decimals] of FIGURES) {
      if (!rows.some((r) => r.figure === figure)) continue;
      out.push(`| ${label} | ${cols.map((c) => cell(c, figure, decimals)).join(' | ')} |`);
    }
    const others = cols.filter((c) => c !== 'ferry' && !c.startsWith('ferry '));
    // A peer run in a memory cgroup is compared with Ferry in the same cgroup.
    const ferryFor = (c: string): string => {
      const scenario = c.split(' ')[1] ?? '';
      return scenario.startsWith('cgroup-') && cols.includes(`ferry ${scenario}`)
        ? `ferry ${scenario}`
        : 'ferry';
    };
    if (cols.includes('ferry') && others.length) {
      out.push(
        '',
        'Ferry ÷ each column (below 1: Ferry is lower; a column run in a memory cgroup is compared with Ferry in the same cgroup):',
        '',
        `| figure | ${others.join(' | ')} |`,
        `|---|${others.map(() => '---:').join('|')}|`,
      );
      for (const figure of RATIO_FIGURES) {
        if (!rows.some((r) => r.figure === figure)) continue;
        const label = FIGURES.find((x) => x[0] === figure)?.[1] ?? figure;
        const ratio = (c: string): string => {
          const f = rows.find((r) => columnOf(r) === ferryFor(c) && r.figure === figure)?.median;
          const o = rows.find((r) => columnOf(r) === c && r.figure === figure)?.median;
          return f !== undefined && o !== undefined && Number.isFinite(f) && Number.isFinite(o) && o > 0
            ? `${fmt(f / o, 2)}×`
            : '–';
        };
        out.push(`| ${label} | ${others.map(ratio).join(' | ')} |`);
      }
    }
    // Plots of each column's latest run.
    const plot = (kind: Series['kind']): Line[] => {
      const ours = res.series.filter((s) => s.n === n && s.kind === kind);
      const last = (c: string): number =>
        Math.max(...ours.filter((s) => columnOf(s) === c).map((s) => s.run));
      return ours
        .filter((s) => s.run === last(columnOf(s)))
        .sort((a, b) => columnRank(columnOf(a)) - columnRank(columnOf(b)))
        .map((s) => ({ label: `${columnOf(s)} (run ${s.run})`, points: s.points }));
    };
    const sync = plot('synced');
    const rss = plot('rss_mb');
    if (sync.length) {
      svgs[`sync-n${n}.svg`] = lineChart(
        `Secrets holding the expected value, N = ${n}`,
        'seconds since the operator started',
        'Secrets',
        sync,
      );
      out.push('', `![synced over time, N = ${n}](benchmarks/sync-n${n}.svg)`);
    }
    if (rss.length) {
      svgs[`rss-n${n}.svg`] = lineChart(
        `Operator RSS, N = ${n}`,
        'seconds since the operator started',
        'MB',
        rss,
      );
      out.push('', `![RSS over time, N = ${n}](benchmarks/rss-n${n}.svg)`);
    }
    out.push('');
  }
  const growth = rssGrowth(agg);
  if (growth.length) {
    out.push(
      '## RSS growth per 1000 secrets',
      '',
      'Peak RSS between the smallest and the largest N measured: (peak(N₂) − peak(N₁)) ÷ (N₂ − N₁) × 1000.',
      '',
      '| column | N₁ → N₂ | MB per 1000 secrets |',
      '|---|---|---:|',
      ...growth.map((g) => `| ${g.column} | ${g.from} → ${g.to} | ${fmt(g.mbPer1000, 0)} |`),
      '',
    );
  }
  if (res.notes?.length) out.push('## Observations', '', ...res.notes.map((n) => `- ${n}`), '');
  out.push(
    '## What the figures mean',
    '',
    "- **initial sync**: from the operator's start until all N Secrets hold their expected value (the",
    '  bench lists Secrets every 0.5 s); the curve shows how many did over time, through the change phase.',
    '- **Vault requests / logins**: counted by a pass-through proxy the VaultConnections (SecretStores)',
    '  point at; logins are requests to `/v1/auth/<mount>/login`.',
    '- **change propagation**: 10 % of the values (spread over every namespace) are rewritten in Vault;',
    '  the time until each Secret holds its new value. With a 30 s refresh, about 15 s p50 and 30 s p99',
    '  are what a timer-driven refresh can do.',
    '- **quiet**: after the change phase, nothing changes and nothing is polled for the stated time; CPU',
    "  seconds from `/proc/<pid>/stat`, API-server requests and writes from the API server's own",
    "  `apiserver_request_total` (all clients: the raw loop's column is the floor the stack itself makes).",
    "- **RSS**: `/proc/<pid>/status` VmRSS every 0.5 s from the operator's start to the end of the quiet",
    '  period.',
    '- **cgroup figures**: every operator process runs in a memory cgroup of its own, joined before it',
    '  execs (bench/lib/cgroup.ts), as a container does; unlimited unless the column says',
    "  `cgroup-<n>Mi`. Peak: the kernel's high-water mark of the cgroup's usage (cgroup v1",
    '  `memory.max_usage_in_bytes`, v2 `memory.peak`), which counts page cache the process touched and',
    '  not the shared pages of a binary already cached by other processes (RSS counts those). Working',
    '  set: usage − inactive file pages, sampled every 0.5 s: what `kubectl top` shows and what the',
    "  kubelet evicts on. OOM kills: the cgroup's `oom_kill` count; an OOM-killed operator ends its run",
    '  (a pod would restart).',
    "- **cgroup-128Mi**: the operator with its defaults, limited to 128 MiB: the default limit of VSO's",
    "  chart and of Ferry's (ESO's chart sets no limit; it is held to the same 128 MiB for the",
    "  comparison). Node sizes V8's old space from the limit (`--max-old-space-size-percentage=50` in",
    "  Ferry's image); Go's runtime does not look at it (no GOMEMLIMIT in either peer's chart).",
    '- **restart** (`--restart`, Ferry and VSO): N static secrets and 200 VaultDynamicSecrets (database',
    "  credentials on the stack's PostgreSQL, each with a Deployment as rollout-restart target) synced;",
    '  then the operator gets SIGTERM and a new process starts. Converged: the new process has read',
    '  every static secret from Vault once; the other restart figures count the whole window after the',
    '  restart. ESO is left out: it has no VaultDynamicSecret (its generators are another model).',
    '- **tuned**: VSO with `--kube-client-qps=1000 --kube-client-burst=2000 --max-concurrent-reconciles=100`,',
    "  ESO with `--concurrent=100 --client-qps=1000 --client-burst=2000` (Ferry's effective settings:",
    '  100 concurrent reconciles, no client-side API rate limit).',
    '',
  );
  return { markdown: `${out.join('\n')}\n`, svgs };
}
