// The benchmark's pure parts: statistics, /proc and Prometheus parsing, the SVG chart and the report.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type BenchResults,
  keepingUp,
  renderReport,
  rssGrowth,
  serializeResults,
} from '../../../bench/lib/report.ts';
import {
  aggregate,
  apiserverRequests,
  deriveQuietRates,
  median,
  parseProc,
  percentile,
  type Row,
  refreshIntervals,
  runRatios,
} from '../../../bench/lib/stats.ts';
import { lineChart, ticks } from '../../../bench/lib/svg.ts';

/** Rows of one N: [operator, scenario, figure, value, run (1 unless given)]. */
const rowsAt = (n: number, ...cells: [string, string, string, number, number?][]): Row[] =>
  cells.map(([operator, scenario, figure, value, run = 1]) => ({
    operator,
    scenario,
    n,
    run,
    figure,
    value,
  }));

describe('bench stats', () => {
  it('percentile is nearest-rank and stays within the values', () => {
    assert.equal(percentile([5, 1, 3, 2, 4], 50), 3);
    assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99), 10);
    assert.equal(percentile([7], 1), 7);
    assert.ok(Number.isNaN(percentile([], 50)));
    fc.assert(
      fc.property(
        fc.array(fc.double({ noNaN: true, min: -1e6, max: 1e6 }), { minLength: 1 }),
        fc.integer({ min: 0, max: 100 }),
        (xs, p) => {
          const v = percentile(xs, p);
          return xs.includes(v) && v >= Math.min(...xs) && v <= Math.max(...xs);
        },
      ),
    );
  });

  it('median averages the middle two of an even count', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
  });

  it('aggregate takes medians and spread per operator, scenario, N and figure, leaving out unreached values', () => {
    const agg = aggregate(
      rowsAt(
        1000,
        ['vso', 'defaults', 'sync_s', 20],
        ['vso', 'defaults', 'sync_s', 30, 2],
        ['vso', 'defaults', 'sync_s', 22, 3],
        ['vso', 'tuned', 'sync_s', Number.NaN],
      ),
    );
    const d = agg.find((a) => a.scenario === 'defaults');
    assert.deepEqual(d && { median: d.median, min: d.min, max: d.max, runs: d.runs }, {
      median: 22,
      min: 20,
      max: 30,
      runs: 3,
    });
    assert.equal(agg.find((a) => a.scenario === 'tuned')?.runs, 0);
  });

  it('parseProc reads VmRSS and utime+stime, whatever the command name holds', () => {
    const stat = `4242 (node a) b) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 11 0 1234`;
    assert.deepEqual(parseProc('Name:\tnode\nVmRSS:\t  204800 kB\n', stat), { rssMb: 200, cpuS: 4 });
  });

  it('apiserverRequests sums apiserver_request_total by verb and counts the mutating ones as writes', () => {
    const text = [
      '# TYPE apiserver_request_total counter',
      'apiserver_request_total{code="200",component="apiserver",resource="secrets",verb="LIST",version="v1"} 7',
      'apiserver_request_total{code="201",resource="secrets",verb="POST",version="v1"} 3',
      'apiserver_request_total{code="200",resource="secrets",verb="APPLY",version="v1"} 2',
      'apiserver_request_total{code="200",resource="leases",verb="PUT",version="v1"} 1',
      'apiserver_request_duration_seconds_count{verb="GET"} 99',
    ].join('\n');
    assert.deepEqual(apiserverRequests(text), {
      total: 13,
      writes: 6,
      byVerb: { LIST: 7, POST: 3, APPLY: 2, PUT: 1 },
    });
  });
});

describe('bench quiet-period and ratio figures', () => {
  it('deriveQuietRates turns quiet counts into per-minute rates and reads per secret per refresh', () => {
    const rows = rowsAt(
      1000,
      ['ferry', 'defaults', 'quiet_s', 600],
      ['ferry', 'defaults', 'quiet_cpu_s', 30],
      ['ferry', 'defaults', 'quiet_vault_reads', 20_000],
      ['ferry', 'defaults', 'quiet_vault_requests', 20_010],
      ['eso', 'defaults', 'quiet_s', 60],
      ['eso', 'defaults', 'quiet_vault_requests', 2_570],
      ['eso', 'defaults', 'quiet_vault_logins', 570],
    );
    const d = deriveQuietRates(rows, () => 30);
    const get = (op: string, figure: string): number | undefined =>
      d.find((r) => r.operator === op && r.figure === figure)?.value;
    assert.equal(get('ferry', 'quiet_cpu_s_per_min'), 3);
    assert.equal(get('ferry', 'quiet_reads_per_refresh'), 1); // 20,000 reads ÷ (1,000 × 600 s ÷ 30 s)
    assert.equal(get('ferry', 'quiet_reads_per_s'), 20_000 / 600);
    assert.equal(get('eso', 'quiet_reads_per_refresh'), 1); // requests less logins where reads are not counted
    assert.equal(get('eso', 'quiet_vault_logins_per_min'), 570);
  });

  it('runRatios divides within each run, then takes the median and spread of the ratios', () => {
    const rows = rowsAt(
      1000,
      ['ferry', 'defaults', 'sync_s', 10],
      ['vso', 'defaults', 'sync_s', 20],
      ['ferry', 'defaults', 'sync_s', 30, 2],
      ['vso', 'defaults', 'sync_s', 40, 2],
      ['ferry', 'defaults', 'sync_s', 5, 3],
      ['vso', 'defaults', 'sync_s', Number.NaN, 3],
      ['vso', 'defaults', 'sync_s', 10, 4],
    );
    const q = runRatios(
      rows,
      'sync_s',
      (r) => r.operator === 'ferry',
      (r) => r.operator === 'vso',
    );
    // Only runs 1 and 2 have both; the ratio of the medians (17.5 ÷ 20) would differ.
    assert.deepEqual(q, { median: 0.625, min: 0.5, max: 0.75, runs: 2 });
  });

  it('refreshIntervals measures the time between reads of each secret and counts the unread ones', () => {
    const reads = new Map([
      ['a', [0, 30, 60]],
      ['b', [5, 40]],
      ['c', [7]],
    ]);
    assert.deepEqual(refreshIntervals(reads, 5), { p50: 30, p99: 35, max: 35, unread: 2 });
    const none = refreshIntervals(new Map(), 3);
    assert.equal(none.unread, 3);
    assert.ok(Number.isNaN(none.p99));
  });

  it('keepingUp sets the reads done against N ÷ refresh for each column', () => {
    const rows = rowsAt(
      5000,
      ['ferry', 'defaults', 'quiet_s', 60],
      ['ferry', 'defaults', 'quiet_vault_reads', 6000],
      ['ferry', 'refresh-10s', 'quiet_s', 60],
      ['ferry', 'refresh-10s', 'quiet_vault_reads', 15_000],
      ['ferry', 'refresh-10s', 'quiet_read_interval_p99_s', 25],
    );
    const k = keepingUp(
      aggregate([...rows, ...deriveQuietRates(rows, (r) => (r.scenario === 'refresh-10s' ? 10 : 30))]),
    );
    assert.deepEqual(
      k.map((x) => [x.column, x.refreshS, Math.round(x.needed), x.done, x.p99]),
      [
        ['ferry', 30, 167, 100, Number.NaN],
        ['ferry refresh-10s', 10, 500, 250, 25],
      ],
    );
  });
});

describe('bench SVG', () => {
  it('ticks are round steps covering the maximum', () => {
    assert.deepEqual(ticks(100), [0, 20, 40, 60, 80, 100]);
    assert.deepEqual(ticks(7), [0, 2, 4, 6, 8]);
    assert.deepEqual(ticks(0), [0]);
  });

  it('draws one polyline per series and escapes labels', () => {
    const svg = lineChart('t', 'x', 'y', [
      {
        label: 'a<b',
        points: [
          [0, 0],
          [1, 5],
        ],
      },
      { label: 'c', points: [[0, 1]] },
    ]);
    assert.equal(svg.match(/<polyline /g)?.length, 2);
    assert.ok(svg.includes('a&lt;b'));
    assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  });
});

describe('bench report', () => {
  const results: BenchResults = {
    date: '2026-12-04',
    commands: ['npm run bench -- --quick'],
    machine: { cpus: 2, cpuModel: 'cpu', memoryGb: 8, kernel: '6', node: '24' },
    versions: { ferry: '0.1.0', vso: '1.4.1' },
    rows: [
      ...rowsAt(
        100,
        ['ferry', 'defaults', 'sync_s', 2],
        ['vso', 'defaults', 'sync_s', 4],
        ['vso', 'tuned', 'sync_s', Number.NaN],
        ['ferry', 'defaults', 'rss_peak_mb', 100],
      ),
      ...rowsAt(1000, ['ferry', 'defaults', 'rss_peak_mb', 190], ['eso', 'defaults', 'failed', 1]),
    ],
    series: [
      {
        operator: 'ferry',
        scenario: 'defaults',
        n: 100,
        run: 1,
        kind: 'synced',
        points: [
          [0, 0],
          [2, 100],
        ],
      },
    ],
    notes: ['taken under load'],
    sections: [{ title: 'Where the time goes', lines: ['| phase | s |', '|---|---:|'] }],
  };

  it('renders a table per N with ratios, plots, failures and notes', () => {
    const { markdown, svgs } = renderReport(results);
    assert.ok(markdown.includes('| figure | ferry | vso | vso tuned |'));
    assert.ok(markdown.includes('| initial sync (s) | 2.0 | 4.0 | not reached |'));
    assert.ok(markdown.includes('| initial sync (s) | 0.50× | – |'));
    assert.ok(markdown.includes('| run failed |  | yes |'));
    assert.ok(markdown.includes('- taken under load'));
    assert.ok(markdown.includes('## Where the time goes\n\n| phase | s |\n|---|---:|\n'));
    assert.deepEqual(Object.keys(svgs), ['sync-n100.svg']);
    assert.ok(markdown.includes('(benchmarks/sync-n100.svg)'));
  });

  it('orders cgroup-limited columns after each operator and compares them with Ferry in the same cgroup', () => {
    const { markdown } = renderReport({
      ...results,
      rows: rowsAt(
        1000,
        ['ferry', 'defaults', 'cg_peak_mb', 200],
        ['ferry', 'cgroup-128Mi', 'cg_peak_mb', 80],
        ['vso', 'cgroup-128Mi', 'cg_peak_mb', 100],
        ['vso', 'defaults', 'cg_peak_mb', 100],
      ),
      series: [],
    });
    assert.ok(markdown.includes('| figure | ferry | ferry cgroup-128Mi | vso | vso cgroup-128Mi |'));
    assert.ok(markdown.includes('| figure | vso | vso cgroup-128Mi |'));
    assert.match(markdown, /\| cgroup peak \(MB\)[^|]*\| 2\.00× \| 0\.80× \|/);
  });

  it('reports RSS growth per 1000 secrets between the smallest and the largest N', () => {
    assert.deepEqual(rssGrowth(aggregate(results.rows)), [
      { column: 'ferry', from: 100, to: 1000, mbPer1000: 100 },
    ]);
  });
});

describe('bench results file', () => {
  it('round-trips through JSON with one row per line', () => {
    const res: BenchResults = {
      date: 'd',
      commands: ['c'],
      machine: { cpus: 2, cpuModel: 'm', memoryGb: 1, kernel: 'k', node: '24' },
      versions: { ferry: 'f' },
      rows: rowsAt(1, ['ferry', 'defaults', 'sync_s', 1], ['vso', 'defaults', 'sync_s', 2]),
      series: [{ operator: 'ferry', scenario: 'defaults', n: 1, run: 1, kind: 'rss_mb', points: [[0, 1]] }],
      notes: ['n'],
    };
    const text = serializeResults(res);
    assert.deepEqual(JSON.parse(text), res);
    assert.ok(
      text.includes('\n  {"operator":"vso","scenario":"defaults","n":1,"run":1,"figure":"sync_s","value":2}'),
    );
  });
});
