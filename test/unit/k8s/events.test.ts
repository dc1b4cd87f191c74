import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { KubeClient } from '../../../src/k8s/client.ts';
import { EventRecorder, TERMINATING_HOLD_MS } from '../../../src/k8s/events.ts';
import type { CoreEvent } from '../../../src/k8s/types.ts';
import { json, loopback } from './loopback.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups) await c();
});

const obj = {
  apiVersion: 'secrets.hashicorp.com/v1beta1',
  kind: 'VaultStaticSecret',
  metadata: { name: 'vss', namespace: 'app', uid: 'u-1', resourceVersion: '7' },
};

async function setup(handler: Parameters<typeof loopback>[0]) {
  const srv = await loopback(handler);
  const client = new KubeClient({ server: srv.url, namespace: 'default' });
  cleanups.push(() => client.close(), srv.close);
  let now = Date.parse('2025-03-01T10:00:00Z');
  const errors: unknown[] = [];
  const recorder = new EventRecorder(client, {
    component: 'ferry',
    instance: 'pod-1',
    clock: { now: () => now, setTimeout: () => ({ cancel() {} }) },
    onError: (e) => errors.push(e),
  });
  return { srv, recorder, errors, advance: (ms: number) => (now += ms) };
}

describe('EventRecorder', () => {
  it('creates a core/v1 Event about the object', async () => {
    const { srv, recorder } = await setup((r, res) => json(res, 201, JSON.parse(r.body)));
    await recorder.normal(obj, 'SecretSynced', 'Secret synced');
    const r = srv.received[0];
    assert.equal(r?.method, 'POST');
    assert.equal(r?.url.pathname, '/api/v1/namespaces/app/events');
    const ev = JSON.parse(r?.body ?? '') as CoreEvent;
    assert.match(ev.metadata.name ?? '', /^vss\.[0-9a-f]+$/);
    assert.deepEqual(ev.involvedObject, {
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'VaultStaticSecret',
      name: 'vss',
      namespace: 'app',
      uid: 'u-1',
      resourceVersion: '7',
    });
    assert.equal(ev.type, 'Normal');
    assert.equal(ev.reason, 'SecretSynced');
    assert.equal(ev.message, 'Secret synced');
    assert.equal(ev.count, 1);
    assert.equal(ev.firstTimestamp, '2025-03-01T10:00:00Z');
    assert.deepEqual(ev.source, { component: 'ferry', host: 'pod-1' });
    assert.equal(ev.reportingComponent, 'ferry');
    assert.equal(ev.reportingInstance, 'pod-1');
  });

  it('aggregates repeats within the window by patching count and lastTimestamp', async () => {
    const { srv, recorder, advance } = await setup((r, res) =>
      json(res, r.method === 'POST' ? 201 : 200, r.method === 'POST' ? JSON.parse(r.body) : {}),
    );
    await recorder.warning(obj, 'VaultClientError', 'permission denied');
    advance(1000);
    await recorder.warning(obj, 'VaultClientError', 'permission denied');
    advance(1000);
    await recorder.warning(obj, 'VaultClientError', 'permission denied');
    await recorder.warning(obj, 'VaultClientError', 'another message');
    advance(11 * 60_000);
    await recorder.warning(obj, 'VaultClientError', 'permission denied');
    assert.deepEqual(
      srv.received.map((r) => r.method),
      ['POST', 'PATCH', 'PATCH', 'POST', 'POST'],
    );
    const name = (JSON.parse(srv.received[0]?.body ?? '') as CoreEvent).metadata.name;
    assert.equal(srv.received[2]?.url.pathname, `/api/v1/namespaces/app/events/${name}`);
    assert.equal(srv.received[2]?.headers['content-type'], 'application/merge-patch+json');
    assert.deepEqual(JSON.parse(srv.received[2]?.body ?? ''), {
      count: 3,
      lastTimestamp: '2025-03-01T10:00:02Z',
    });
  });

  it('creates a fresh Event when the aggregated one is gone', async () => {
    const { srv, recorder } = await setup((r, res) =>
      r.method === 'PATCH'
        ? json(res, 404, { kind: 'Status', code: 404, reason: 'NotFound' })
        : json(res, 201, JSON.parse(r.body)),
    );
    await recorder.normal(obj, 'Accepted', 'm');
    await recorder.normal(obj, 'Accepted', 'm');
    assert.deepEqual(
      srv.received.map((r) => r.method),
      ['POST', 'PATCH', 'POST'],
    );
  });

  it('never throws; failures go to onError', async () => {
    const { recorder, errors } = await setup((_r, res) =>
      json(res, 403, { kind: 'Status', code: 403, reason: 'Forbidden' }),
    );
    await recorder.warning(obj, 'Accepted', 'm');
    assert.equal(errors.length, 1);
  });

  it('drops Events into a namespace being deleted, quietly, and tries again after the hold', async () => {
    const terminating = {
      kind: 'Status',
      code: 403,
      reason: 'Forbidden',
      message: 'unable to create new content in namespace app because it is being terminated',
      details: { causes: [{ reason: 'NamespaceTerminating', message: 'namespace app is being terminated' }] },
    };
    const { srv, recorder, errors, advance } = await setup((r, res) =>
      r.url.pathname.startsWith('/api/v1/namespaces/app/')
        ? json(res, 403, terminating)
        : json(res, 201, JSON.parse(r.body)),
    );
    await recorder.warning(obj, 'SecretSyncError', 'm');
    await recorder.warning(obj, 'SecretSyncError', 'another');
    const other = { ...obj, metadata: { ...obj.metadata, namespace: 'web' } };
    await recorder.warning(other, 'SecretSyncError', 'm');
    advance(TERMINATING_HOLD_MS);
    await recorder.warning(obj, 'SecretSyncError', 'm');
    assert.deepEqual(
      srv.received.map((r) => r.url.pathname),
      ['/api/v1/namespaces/app/events', '/api/v1/namespaces/web/events', '/api/v1/namespaces/app/events'],
    );
    assert.deepEqual(errors, []);
  });

  it('a namespace deleted and created again under the same name: Events about its new objects are not held', async () => {
    let deleted = true;
    const { srv, recorder, advance } = await setup((r, res) =>
      deleted
        ? json(res, 403, {
            kind: 'Status',
            code: 403,
            reason: 'Forbidden',
            details: { causes: [{ reason: 'NamespaceTerminating' }] },
          })
        : json(res, 201, JSON.parse(r.body)),
    );
    const old = { ...obj, metadata: { ...obj.metadata, creationTimestamp: '2025-03-01T09:00:00Z' } };
    await recorder.warning(old, 'SecretSyncError', 'm');
    assert.equal(recorder.refusedAsTerminating(old), true);
    advance(5_000);
    deleted = false; // gone, and app created again with a VaultStaticSecret of the same name
    const again = {
      ...obj,
      metadata: { ...obj.metadata, uid: 'u-2', creationTimestamp: '2025-03-01T10:00:04Z' },
    };
    assert.equal(recorder.refusedAsTerminating(again), false);
    await recorder.warning(again, 'SecretSyncError', 'm');
    await recorder.warning(old, 'SecretSyncError', 'm');
    assert.deepEqual(
      srv.received.map((r) => `${r.method} ${JSON.parse(r.body).involvedObject?.uid}`),
      ['POST u-1', 'POST u-2'],
      'the new object has its Event; the old one is still held',
    );
  });

  it('puts Events about cluster-scoped objects in default', async () => {
    const { srv, recorder } = await setup((r, res) => json(res, 201, JSON.parse(r.body)));
    await recorder.normal(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'app' } },
      'Accepted',
      'm',
    );
    assert.equal(srv.received[0]?.url.pathname, '/api/v1/namespaces/default/events');
  });
});
