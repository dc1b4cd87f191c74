// The chart's Grafana dashboard and PrometheusRule: off by default, rendered where Grafana's sidecar
// and the prometheus-operator look, and every metric their queries name is one Ferry exports (the
// registrars of src/metrics, scraped from a registry), so a renamed metric breaks this test, not
// a dashboard nobody looks at.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { controllerMetrics, secretExpiryMetric, workQueueMetrics } from '../../../src/metrics/controller.ts';
import { csiMetrics } from '../../../src/metrics/csi.ts';
import { MetricsRegistry, registerBuildInfo } from '../../../src/metrics/registry.ts';
import { vaultMetrics } from '../../../src/metrics/vault.ts';
import { CHART, NAMESPACE, type Obj, one, render, skip } from './helm.ts';
import { dashboardExprs, metricNames, ruleExprs } from './promql.ts';

/** Every series name Ferry's processes can export: histograms as their _bucket, _sum and _count. */
async function exported(): Promise<Set<string>> {
  const r = new MetricsRegistry();
  controllerMetrics(r);
  workQueueMetrics(r);
  csiMetrics(r);
  vaultMetrics(r);
  secretExpiryMetric(r);
  registerBuildInfo(r, { version: '0', gitCommit: '0', nodeVersion: '0', platform: '0' });
  const names = new Set<string>();
  for (const m of (await r.metrics()).matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name = '', type] = m;
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    else names.add(name);
  }
  return names;
}

const dashboardUid = (
  JSON.parse(readFileSync(join(CHART, 'dashboards', 'ferry.json'), 'utf8')) as { uid: string }
).uid;

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
    const exprs = dashboardExprs();
    assert.ok(exprs.length >= 15, 'every panel has its query');
    for (const expr of exprs) {
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
            loginsPerMinuteThreshold: 12,
            extraRules: [{ alert: 'Mine', expr: 'vector(1)' }],
          },
        },
      });
      const cm = one<Obj & { data: Record<string, string> }>(objs, 'ConfigMap', 'ferry-dashboard');
      assert.equal(cm.metadata.namespace, 'monitoring');
      assert.equal(cm.metadata.labels?.grafana_dashboard, '1');
      assert.equal(cm.metadata.annotations?.grafana_folder, 'Ferry');
      assert.equal((JSON.parse(cm.data['ferry.json'] ?? '') as { uid: string }).uid, dashboardUid);

      const rule = one(objs, 'PrometheusRule');
      assert.equal(rule.metadata.labels?.release, 'prometheus');
      const all = ruleExprs(rule);
      const rules = all.filter((r) => r.alert !== 'Mine');
      assert.ok(rules.length >= 6);
      const byName = new Map(rules.map((r) => [r.alert, r.expr]));
      for (const a of ['FerrySecretExpiring', 'FerryVaultErrors', 'FerryVaultUnreachable'])
        assert.ok(byName.has(a), `${a} is rendered`);
      assert.match(byName.get('FerrySecretExpiring') ?? '', /time\(\) < 600$/, 'the default threshold');
      assert.match(byName.get('FerryVaultLoginStorm') ?? '', /operation="login".*> 12$/, 'the value is used');
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
        all.some((r) => r.alert === 'Mine'),
        'extraRules are appended',
      );
    });
  });
});
