// VSO's controller_resource_status, rebuilt from the stores at every scrape.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collectResourceStatus } from '../../../src/controllers/resource-status.ts';
import type { KubeObject } from '../../../src/k8s/types.ts';
import { resourceStatusMetric } from '../../../src/metrics/controller.ts';
import { MetricsRegistry } from '../../../src/metrics/registry.ts';

const obj = (name: string, valid?: unknown): KubeObject & { status?: { valid?: unknown } } => ({
  metadata: { name, namespace: 'app' },
  ...(valid === undefined ? {} : { status: { valid } }),
});

test('one gauge series per object whose status says valid or not; deleted objects drop out', async () => {
  const registry = new MetricsRegistry();
  const gauge = resourceStatusMetric(registry);
  let auths = [obj('good', true), obj('bad', false), obj('fresh')];
  const sources = [
    { controller: 'vaultauth', store: { list: () => auths } },
    { controller: 'hcpauth', store: { list: () => [obj('hcp', false)] } },
  ];
  gauge.onCollect(() => collectResourceStatus(gauge, sources));
  let text = await registry.metrics();
  assert.match(text, /^# TYPE controller_resource_status gauge$/m);
  const series = (t: string) => t.match(/^controller_resource_status\{.*$/gm)?.sort();
  assert.deepEqual(series(text), [
    'controller_resource_status{controller="hcpauth",name="hcp",namespace="app"} 0',
    'controller_resource_status{controller="vaultauth",name="bad",namespace="app"} 0',
    'controller_resource_status{controller="vaultauth",name="good",namespace="app"} 1',
  ]);
  auths = [obj('good', true)];
  text = await registry.metrics();
  assert.deepEqual(series(text), [
    'controller_resource_status{controller="hcpauth",name="hcp",namespace="app"} 0',
    'controller_resource_status{controller="vaultauth",name="good",namespace="app"} 1',
  ]);
});
