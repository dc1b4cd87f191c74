// The chart's Grafana dashboard and alerts query only what the running processes serve: every
// metric they name is in the operator's /metrics, and the CSI driver's ones in the driver's (when the
// stack runs it from the chart). test/unit/chart/dashboards.test.ts checks the same against
// src/metrics' registrars without a stack.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventually } from '../../stack/lib/fixtures.ts';
import { render } from '../unit/chart/helm.ts';
import { dashboardExprs, metricNames, ruleExprs } from '../unit/chart/promql.ts';
import { type StackEnv, useStack } from './harness.ts';

/** The series names a /metrics page can hold: histograms as their _bucket, _sum and _count. */
async function served(url: string): Promise<Set<string>> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) });
  assert.equal(res.status, 200, url);
  const names = new Set<string>();
  for (const [, name = '', type] of (await res.text()).matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    else names.add(name);
  }
  return names;
}

describe('chart dashboard and alerts against the running processes', () => {
  it('name only metrics the operator (and the CSI driver) serve', async () => {
    const env: StackEnv = await useStack();
    assert.ok(env.operator, 'the stack runs the operator');
    // Other tests restart the operator and the driver: each is asked until it answers.
    const metricsOf = (url: string) => eventually(`${url}/metrics`, () => served(url));
    const operator = await metricsOf(env.operator.metrics);
    const csi = env.chart ? await metricsOf(env.chart.csiHealth) : undefined;
    const rules = render({ telemetry: { prometheusRule: { enabled: true } } })
      .filter((o) => o.kind === 'PrometheusRule')
      .flatMap(ruleExprs)
      .map((r) => r.expr);
    assert.ok(rules.length > 0);
    for (const expr of [...dashboardExprs(), ...rules]) {
      for (const m of metricNames(expr)) {
        if (m.startsWith('ferry_csi_')) {
          if (csi) assert.ok(csi.has(m), `${m} (in ${expr}) is not in the CSI driver's /metrics`);
        } else assert.ok(operator.has(m), `${m} (in ${expr}) is not in the operator's /metrics`);
      }
    }
  });
});
