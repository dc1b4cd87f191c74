// docs/benchmarks.md and its plots from a results file of bench/operators.ts (pure: no I/O).
import { type Aggregate, aggregate, deriveQuietRates, type Row, runRatios, type Series } from './stats.ts';
import { type Line, lineChart } from './svg.ts';
import { refreshSeconds } from './workload.ts';

/** One operator run: which build it measured, when (UTC) and the 1-minute load average at its start
 * and end (the machine is shared). */
export interface RunRecord {
  operator: string;
  scenario: string;
  n: number;
  run: number;
  version: string;
  utc: string;
  load: [number, number];
}

export interface BenchResults {
  date: string;
  commands: string[];
  machine: { cpus: number; cpuModel: string; memoryGb: number; kernel: string; node: string };
  versions: Record<string, string>;
  rows: Row[];
  series: Series[];
  runs?: RunRecord[];
  /** Observations written by whoever ran it, shown under the tables. */
  notes?: string[];
  /** Findings that need more than a bullet (a breakdown, a table): a `## title` section each, after
   * the observations, its lines as written. */
  sections?: { title: string; lines: string[] }[];
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
  ['sync_wait_s', 'initial phase ended after (s): all synced, the cap, or no progress for the stall time', 0],
  ['vault_requests_sync', 'Vault requests until synced', 0],
  ['vault_logins_sync', 'Vault logins until synced', 0],
  ['cpu_sync_s', 'CPU seconds until synced', 1],
  ['change_p50_s', 'change propagation p50 (s)', 1],
  ['change_p99_s', 'change propagation p99 (s)', 1],
  ['change_missed', 'changed values not delivered within 120 s', 0],
  ['quiet_s', 'quiet period (s)', 0],
  ['quiet_cpu_s_per_min', 'quiet: CPU seconds per minute', 2],
  ['quiet_vault_requests_per_min', 'quiet: Vault requests per minute', 0],
  ['quiet_vault_logins_per_min', 'quiet: Vault logins per minute', 1],
  ['quiet_api_requests_per_min', 'quiet: API-server requests per minute (all clients)', 0],
  ['quiet_api_writes_per_min', 'quiet: API-server writes per minute (all clients)', 1],
  ['quiet_reads_per_refresh', 'quiet: Vault reads per secret per refresh period (1: keeping up)', 2],
  ['quiet_read_interval_p50_s', 'quiet: time between two reads of a secret, p50 (s)', 1],
  ['quiet_read_interval_p99_s', 'quiet: time between two reads of a secret, p99 (s)', 1],
  ['quiet_read_unread', 'quiet: secrets not read at all in the quiet period', 0],
  ['rss_peak_mb', 'peak RSS (MB)', 0],
  ['rss_end_mb', 'RSS at the end (MB)', 0],
  ['cg_peak_mb', "cgroup peak (MB): the kernel's high-water mark of the process's cgroup", 0],
  ['ws_peak_mb', 'working set peak (MB): cgroup usage − inactive file pages, as `kubectl top`', 0],
  ['ws_end_mb', 'working set at the end (MB)', 0],
  ['oom_kills', 'OOM kills in its cgroup', 0],
  ['cpu_throttled_s', 'seconds held back by the CPU limit', 1],
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
  'quiet_cpu_s_per_min',
  'vault_requests_sync',
  'restart_converge_s',
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

/** Per column and N with a quiet period: the Vault reads per second needed (N ÷ refresh) and done. */
export function keepingUp(agg: readonly Aggregate[]): {
  column: string;
  n: number;
  refreshS: number;
  needed: number;
  done: number;
  p50: number;
  p99: number;
  max: number;
  unread: number;
}[] {
  const done = agg.filter((a) => a.figure === 'quiet_reads_per_s' && a.runs > 0);
  const get = (a: Aggregate, figure: string): number =>
    agg.find(
      (x) => x.figure === figure && x.operator === a.operator && x.scenario === a.scenario && x.n === a.n,
    )?.median ?? Number.NaN;
  return done
    .map((a) => {
      const refreshS = refreshSeconds(a.scenario);
      return {
        column: columnOf(a),
        n: a.n,
        refreshS,
        needed: a.n / refreshS,
        done: a.median,
        p50: get(a, 'quiet_read_interval_p50_s'),
        p99: get(a, 'quiet_read_interval_p99_s'),
        max: get(a, 'quiet_read_interval_max_s'),
        unread: get(a, 'quiet_read_unread'),
      };
    })
    .sort((x, y) => columnRank(x.column) - columnRank(y.column) || x.n - y.n);
}

export function renderReport(res: BenchResults): { markdown: string; svgs: Record<string, string> } {
  const allRows = [...res.rows, ...deriveQuietRates(res.rows, (r) => refreshSeconds(r.scenario))];
  const agg = aggregate(allRows);
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
    // A peer run under limits (a cgroup scenario, chart-limits) is compared with Ferry under the same.
    const ferryFor = (c: string): string => {
      const scenario = c.split(' ')[1] ?? '';
      return scenario !== 'tuned' && cols.includes(`ferry ${scenario}`) ? `ferry ${scenario}` : 'ferry';
    };
    if (cols.includes('ferry') && others.length) {
      out.push(
        '',
        'Ferry ÷ each column, taken within each run (Ferry and the column measured in the same round) and',
        'then the median of those ratios, (min–max) where there is more than one; below 1: Ferry is lower.',
        'A column run under limits is compared with Ferry under the same limits:',
        '',
        `| figure | ${others.join(' | ')} |`,
        `|---|${others.map(() => '---:').join('|')}|`,
      );
      const nRows = allRows.filter((r) => r.n === n);
      for (const figure of RATIO_FIGURES) {
        if (!rows.some((r) => r.figure === figure)) continue;
        const label = FIGURES.find((x) => x[0] === figure)?.[1] ?? figure;
        const ratio = (c: string): string => {
          const f = ferryFor(c);
          const q = runRatios(
            nRows,
            figure,
            (r) => columnOf(r) === f,
            (r) => columnOf(r) === c,
          );
          if (q.runs === 0) return '–';
          const m = `${fmt(q.median, 2)}×`;
          return q.runs > 1 ? `${m} (${fmt(q.min, 2)}–${fmt(q.max, 2)})` : m;
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
  const keeping = keepingUp(agg);
  if (keeping.length) {
    out.push(
      '## Keeping up with the refresh',
      '',
      'During the quiet period every secret is due for a Vault read once per refresh period: N ÷ refresh',
      'reads per second are needed. Done: the kv reads the counting proxy saw per second (medians over',
      'runs). The time between two reads of the same secret is the refresh period when the operator keeps',
      'up (less with jitter), longer when it falls behind; unread: secrets not read at all in the period.',
      '',
      '| column | N | refresh (s) | reads/s needed | reads/s done | done ÷ needed | between reads p50 / p99 / max (s) | unread |',
      '|---|---:|---:|---:|---:|---:|---:|---:|',
      ...keeping.map(
        (k) =>
          `| ${k.column} | ${k.n.toLocaleString('en-US')} | ${k.refreshS} | ${fmt(k.needed, 1)} | ${fmt(k.done, 1)} | ${fmt(k.done / k.needed, 2)} | ${[k.p50, k.p99, k.max].map((x) => (Number.isFinite(x) ? fmt(x, 1) : '–')).join(' / ')} | ${Number.isFinite(k.unread) ? fmt(k.unread, 0) : '–'} |`,
      ),
      '',
    );
  }
  if (res.runs?.length) {
    const runs = [...res.runs].sort((a, b) => a.utc.localeCompare(b.utc));
    out.push(
      '## Runs',
      '',
      'Each operator run in the order taken: the build it measured (Ferry: the last commit that changed',
      'src/), its time (UTC) and the 1-minute load average at its start and end.',
      '',
      '| UTC | column | N | run | build | load average |',
      '|---|---|---:|---:|---|---|',
      ...runs.map(
        (r) =>
          `| ${r.utc} | ${r.scenario === 'restart' ? `${r.operator} restart` : columnOf(r)} | ${r.n} | ${r.run} | ${r.version} | ${r.load.join(' → ')} |`,
      ),
      '',
    );
  }
  if (res.notes?.length) out.push('## Observations', '', ...res.notes.map((n) => `- ${n}`), '');
  for (const s of res.sections ?? []) out.push(`## ${s.title}`, '', ...s.lines, '');
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
    '- **initial phase**: waited for until all N are synced, for at most `--sync-cap` seconds (default',
    '  60 + 0.3 × N, at most 600) or until the count has not grown for `--sync-stall` seconds (120): VSO',
    '  does not converge at N = 5,000, and the count it reached is the figure.',
    '- **quiet**: after the change phase, nothing changes and nothing is polled for the stated time',
    "  (600 s by default, the issue's 10 minutes; `--quiet` for shorter runs); figures per minute so that",
    '  runs of different lengths aggregate. CPU seconds from `/proc/<pid>/stat`, API-server requests and',
    "  writes from the API server's own `apiserver_request_total` (all clients: the raw loop's column is",
    '  the floor the stack itself makes); Vault reads per secret per refresh period: kv reads ÷ (N ×',
    '  quiet seconds ÷ refresh seconds), 1 when every secret is read once per period (runs taken before',
    '  kv reads were counted on their own use requests less logins).',
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
    "- **chart-limits**: Ferry and VSO under their charts' default limits, 128 MiB and 500m CPU: the",
    '  CPU quota of a cgroup (v1 `cpu.cfs_quota_us` 50 ms per 100 ms period, v2 `cpu.max`, as the',
    "  kubelet sets a pod's CPU limit); seconds held back: the cgroup's throttled time.",
    '- **refresh-<n>s**: the defaults with `refreshAfter` n seconds instead of 30: where the refresh stops',
    '  keeping up.',
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
