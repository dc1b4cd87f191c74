// The chart's Grafana dashboard and PrometheusRule: off by default, rendered where Grafana's sidecar
// and the prometheus-operator look, and every metric their queries name is one Ferry exports (the
// registrars of src/metrics, scraped from a registry), so a renamed metric breaks this test, not
// a dashboard nobody looks at.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { controllerMetrics, workQueueMetrics } from '../../../src/metrics/controller.ts';
import { csiMetrics } from '../../../src/metrics/csi.ts';
import { MetricsRegistry, registerBuildInfo } from '../../../src/metrics/registry.ts';
import { CHART, NAMESPACE, type Obj, one, render, skip } from './helm.ts';

/** Every series name Ferry's processes can export: histograms as their _bucket, _sum and _count. */
async function exported(): Promise<Set<string>> {
  const r = new MetricsRegistry();
  controllerMetrics(r);
  workQueueMetrics(r);
  csiMetrics(r);
  registerBuildInfo(r, { version: '0', gitCommit: '0', nodeVersion: '0', platform: '0' });
  const names = new Set<string>();
  for (const m of (await r.metrics()).matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name = '', type] = m;
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    else names.add(name);
  }
  return names;
}

const PROMQL_WORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
]);

/** The metric names a PromQL expression selects: identifiers outside strings, label matchers,
 * ranges and grouping clauses that are not functions or keywords. */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  return [...bare.matchAll(/(?<![\w$.])([a-zA-Z_:][\w:]*)\b(?!\s*\()/g)]
    .map((m) => m[1] ?? '')
    .filter((w) => !PROMQL_WORDS.has(w.toLowerCase()));
}

type Panel = { title: string; targets?: { expr: string }[]; panels?: Panel[] };
const dashboard = JSON.parse(readFileSync(join(CHART, 'dashboards', 'ferry.json'), 'utf8')) as {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; query?: string | { query: string }; definition?: string }[] };
};

describe('chart dashboards and alerts', () => {
  it('reads metric names out of PromQL', () => {
    assert.deepEqual(
      metricNames(
        'histogram_quantile(0.99, sum by (le, name) (rate(workqueue_queue_duration_seconds_bucket{namespace=~"$namespace"}[$__rate_interval]))) > bool 1',
      ),
      ['workqueue_queue_duration_seconds_bucket'],
    );
    assert.deepEqual(metricNames('absent(up{job="x"}) or vector(0) unless on (a) b:rule'), ['up', 'b:rule']);
  });

  it("the dashboard's queries use only metrics Ferry exports", async () => {
    const names = await exported();
    const exprs = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).flatMap((p) => p.targets ?? []);
    assert.ok(exprs.length >= 15, 'every panel has its query');
    // Grafana's label_values(METRIC, LABEL): the metric is the query.
    for (const v of dashboard.templating.list)
      if (v.definition) exprs.push({ expr: v.definition.replace(/^label_values\(([^,]+),.*\)$/, '$1') });
    for (const { expr } of exprs) {
      const used = metricNames(expr);
      assert.ok(used.length > 0, `no metric in ${expr}`);
      for (const m of used) assert.ok(names.has(m), `${m} (in ${expr}) is not a metric Ferry exports`);
    }
  });

  describe('rendered', { skip }, () => {
    it('neither is rendered by default', () => {
      const kinds = render().map((o) => o.kind);
      assert.ok(!kinds.includes('PrometheusRule'));
      assert.ok(!render().some((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-dashboard')));
    });

    it('a dashboard ConfigMap for the sidecar and alerts whose queries use only exported metrics', async () => {
      const objs = render({
        telemetry: {
          grafanaDashboard: {
            enabled: true,
            annotations: { grafana_folder: 'Ferry' },
            namespace: 'monitoring',
          },
          prometheusRule: {
            enabled: true,
            selectors: { release: 'prometheus' },
            alertLabels: { team: 'platform' },
            extraRules: [{ alert: 'Mine', expr: 'vector(1)' }],
          },
        },
      });
      const cm = one<Obj & { data: Record<string, string> }>(objs, 'ConfigMap', 'ferry-dashboard');
      assert.equal(cm.metadata.namespace, 'monitoring');
      assert.equal(cm.metadata.labels?.grafana_dashboard, '1');
      assert.equal(cm.metadata.annotations?.grafana_folder, 'Ferry');
      assert.equal((JSON.parse(cm.data['ferry.json'] ?? '') as { uid: string }).uid, dashboard.uid);

      const rule = one<
        Obj & {
          spec: { groups: { rules: { alert: string; expr: string; labels?: Record<string, string> }[] }[] };
        }
      >(objs, 'PrometheusRule');
      assert.equal(rule.metadata.labels?.release, 'prometheus');
      const rules = rule.spec.groups.flatMap((g) => g.rules).filter((r) => r.alert !== 'Mine');
      assert.ok(rules.length >= 6);
      const names = await exported();
      for (const r of rules) {
        assert.equal(r.labels?.team, 'platform');
        assert.ok(r.labels?.severity, `${r.alert} has a severity`);
        assert.match(r.expr, new RegExp(`namespace="${NAMESPACE}"`), `${r.alert} is scoped to the release`);
        const used = metricNames(r.expr);
        assert.ok(used.length > 0, r.alert);
        for (const m of used) assert.ok(names.has(m), `${m} (in ${r.alert}) is not a metric Ferry exports`);
      }
      assert.ok(
        rule.spec.groups[0]?.rules.some((r) => r.alert === 'Mine'),
        'extraRules are appended',
      );
    });
  });
});
