// Pure parts of the operator benchmark: percentiles, results rows and their aggregation over runs.

/** One measured figure of one run (bench/results/<date>.json). */
export interface Row {
  operator: string;
  scenario: string;
  n: number;
  run: number;
  figure: string;
  value: number;
}

/** A time series of one run: [seconds since the operator started, value]. */
export interface Series {
  operator: string;
  scenario: string;
  n: number;
  run: number;
  kind: 'synced' | 'rss_mb';
  points: [number, number][];
}

/** The median and spread of one figure over its runs. */
export interface Aggregate {
  operator: string;
  scenario: string;
  n: number;
  figure: string;
  median: number;
  min: number;
  max: number;
  runs: number;
}

/** Nearest-rank percentile (p in 0..100); NaN for no values. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

/** The median; the mean of the middle two for an even count. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Medians with min/max per (operator, scenario, N, figure), NaN values (figure not reached) left out. */
export function aggregate(rows: readonly Row[]): Aggregate[] {
  const groups = new Map<string, { key: Omit<Aggregate, 'median' | 'min' | 'max' | 'runs'>; vs: number[] }>();
  for (const r of rows) {
    const k = JSON.stringify([r.operator, r.scenario, r.n, r.figure]);
    let g = groups.get(k);
    if (!g) {
      g = { key: { operator: r.operator, scenario: r.scenario, n: r.n, figure: r.figure }, vs: [] };
      groups.set(k, g);
    }
    if (Number.isFinite(r.value)) g.vs.push(r.value);
  }
  return [...groups.values()].map(({ key, vs }) => ({
    ...key,
    median: median(vs),
    min: vs.length ? Math.min(...vs) : Number.NaN,
    max: vs.length ? Math.max(...vs) : Number.NaN,
    runs: vs.length,
  }));
}

/** Resident set size (and its peak, VmHWM, where the text has it) and CPU seconds of a process from
 * /proc/<pid>/status and /proc/<pid>/stat text. */
export function parseProc(
  status: string,
  stat: string,
  ticksPerSecond = 100,
): { rssMb: number; hwmMb?: number; cpuS: number } {
  const kb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? Number.NaN);
  const hwmKb = /^VmHWM:\s+(\d+)\s+kB/m.exec(status)?.[1];
  // Fields after the parenthesised command name: utime and stime are fields 14 and 15 of the line.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(rest[11]) + Number(rest[12]);
  return {
    rssMb: kb / 1024,
    ...(hwmKb === undefined ? {} : { hwmMb: Number(hwmKb) / 1024 }),
    cpuS: ticks / ticksPerSecond,
  };
}

/** Sums `apiserver_request_total` by verb from Prometheus text; writes are the mutating verbs. */
export function apiserverRequests(metrics: string): {
  total: number;
  writes: number;
  byVerb: Record<string, number>;
} {
  const byVerb: Record<string, number> = {};
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const verb = /verb="([A-Z]+)"/.exec(line)?.[1];
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (verb && Number.isFinite(v)) byVerb[verb] = (byVerb[verb] ?? 0) + v;
  }
  const writes = ['POST', 'PUT', 'PATCH', 'DELETE', 'APPLY'].reduce((a, v) => a + (byVerb[v] ?? 0), 0);
  const total = Object.values(byVerb).reduce((a, v) => a + v, 0);
  return { total, writes, byVerb };
}

/** Figures derived from each run's quiet-period rows, so that runs with quiet periods of different
 * lengths aggregate together: counts per minute, and Vault reads per secret per refresh period (the
 * issue's "≤ 1 Vault read per secret per refresh"; below 1, the refresh does not keep up). Reads
 * are the kv reads where counted, else requests less logins (runs before that was counted). */
export function deriveQuietRates(rows: readonly Row[], refreshS: (r: Row) => number): Row[] {
  const out: Row[] = [];
  for (const q of rows.filter((r) => r.figure === 'quiet_s' && r.value > 0)) {
    const mine = rows.filter(
      (r) => r.operator === q.operator && r.scenario === q.scenario && r.n === q.n && r.run === q.run,
    );
    const v = (figure: string): number | undefined => mine.find((r) => r.figure === figure)?.value;
    const minutes = q.value / 60;
    for (const r of mine) {
      if (/^quiet_(cpu_s|vault_requests|vault_logins|api_requests|api_writes)$/.test(r.figure))
        out.push({ ...r, figure: `${r.figure}_per_min`, value: r.value / minutes });
    }
    const reads = v('quiet_vault_reads') ?? (v('quiet_vault_requests') ?? 0) - (v('quiet_vault_logins') ?? 0);
    out.push({ ...q, figure: 'quiet_reads_per_s', value: reads / q.value });
    out.push({ ...q, figure: 'quiet_reads_per_refresh', value: reads / ((q.n * q.value) / refreshS(q)) });
  }
  return out;
}

/** Ferry ÷ another column per run (both measured in the same run), then the median and spread of
 * those ratios: the issue's "ratios within a run". `ours`/`theirs` select the two columns' rows. */
export function runRatios(
  rows: readonly Row[],
  figure: string,
  ours: (r: Row) => boolean,
  theirs: (r: Row) => boolean,
): { median: number; min: number; max: number; runs: number } {
  const ratios: number[] = [];
  for (const o of rows.filter((r) => r.figure === figure && ours(r))) {
    const t = rows.find((r) => r.figure === figure && theirs(r) && r.n === o.n && r.run === o.run);
    if (t && Number.isFinite(o.value) && Number.isFinite(t.value) && t.value > 0)
      ratios.push(o.value / t.value);
  }
  return {
    median: median(ratios),
    min: ratios.length ? Math.min(...ratios) : Number.NaN,
    max: ratios.length ? Math.max(...ratios) : Number.NaN,
    runs: ratios.length,
  };
}

/**
 * Whether the refresh keeps up, from the times each secret was read in a window: the intervals
 * between consecutive reads of the same secret (a refresh that keeps up reads every secret about
 * once per refresh period; one that falls behind stretches them), and how many secrets of `n` were
 * not read at all (starved).
 */
export function refreshIntervals(
  readsByKey: ReadonlyMap<string, readonly number[]>,
  n: number,
): { p50: number; p99: number; max: number; unread: number } {
  const intervals: number[] = [];
  for (const ts of readsByKey.values())
    for (let i = 1; i < ts.length; i++) intervals.push((ts[i] as number) - (ts[i - 1] as number));
  return {
    p50: percentile(intervals, 50),
    p99: percentile(intervals, 99),
    max: intervals.length ? Math.max(...intervals) : Number.NaN,
    unread: Math.max(0, n - readsByKey.size),
  };
}
