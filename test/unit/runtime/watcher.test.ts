import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Clock } from '../../../src/clock.ts';
import { CODES, isFerryError } from '../../../src/errors.ts';
import { KubeClient } from '../../../src/k8s/client.ts';
import { isK8sApiError } from '../../../src/k8s/errors.ts';
import { ConfigMaps } from '../../../src/k8s/resources.ts';
import type { ConfigMap } from '../../../src/k8s/types.ts';
import { createStore } from '../../../src/runtime/store.ts';
import { type WatcherEvent, watcher } from '../../../src/runtime/watcher.ts';
import { FakeApiServer } from '../k8s/fake-apiserver.ts';

// Backoff sleeps are recorded and fired on the next turn, so retries are instant and observable.
function fakeClock(): Clock & { delays: number[]; advance(ms: number): void } {
  let t = 1_000_000;
  const delays: number[] = [];
  return {
    delays,
    now: () => t,
    advance(ms) {
      t += ms;
    },
    setTimeout(fn, ms) {
      delays.push(ms);
      t += ms;
      const h = setImmediate(fn);
      return { cancel: () => clearImmediate(h) };
    },
  };
}

/** Runs a watcher into a store and lets the test await conditions on the event stream. */
function run(server: FakeApiServer, opts: { pageSize?: number; timeoutSeconds?: number } = {}) {
  const client = new KubeClient({ server: server.url, namespace: server.namespace });
  const ac = new AbortController();
  const clock = fakeClock();
  const events: WatcherEvent<ConfigMap>[] = [];
  const errors: unknown[] = [];
  const { store, writer } = createStore<ConfigMap>();
  let notify = (): void => {};
  const done = (async () => {
    for await (const ev of watcher<ConfigMap>(client, ConfigMaps, {
      namespace: server.namespace,
      signal: ac.signal,
      clock,
      random: () => 0.5,
      onError: (e) => errors.push(e),
      ...opts,
    })) {
      events.push(ev);
      writer.apply(ev);
      notify();
    }
  })();
  const until = async (pred: () => boolean, what: string): Promise<void> => {
    const deadline = Date.now() + 5000;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        notify = r;
        setTimeout(r, 20);
      });
    }
  };
  const stop = async (): Promise<void> => {
    ac.abort();
    await done;
    await client.close();
  };
  const storeEqualsWorld = (): boolean => {
    const world = server.world();
    const got = store.list();
    return (
      got.length === world.size &&
      got.every(
        (o) => world.get(o.metadata.name ?? '')?.metadata.resourceVersion === o.metadata.resourceVersion,
      )
    );
  };
  return { events, errors, store, clock, until, stop, storeEqualsWorld };
}

const types = (evs: WatcherEvent<ConfigMap>[]): string[] => evs.map((e) => e.type);

describe('watcher', () => {
  let server: FakeApiServer;
  beforeEach(async () => {
    server = await new FakeApiServer().start();
  });
  afterEach(async () => {
    await server.close();
  });

  it('lists in pages, then watches from the list resourceVersion with bookmarks and a timeout', async () => {
    for (const n of ['a', 'b', 'c', 'd', 'e']) server.put(n, { v: n });
    const w = run(server, { pageSize: 2 });
    await w.until(() => w.events.some((e) => e.type === 'initDone'), 'initDone');
    assert.deepEqual(types(w.events), [
      'init',
      'initApply',
      'initApply',
      'initApply',
      'initApply',
      'initApply',
      'initDone',
    ]);
    const lists = server.listRequests();
    assert.equal(lists.length, 3);
    assert.deepEqual(
      lists.map((r) => [r.query.get('limit'), r.query.get('continue')]),
      [
        ['2', null],
        ['2', '105:2'],
        ['2', '105:4'],
      ],
    );
    const initApply = w.events[1];
    assert.ok(initApply?.type === 'initApply');
    assert.equal(initApply.object.kind, 'ConfigMap', 'list items get their apiVersion/kind back');
    assert.equal(initApply.object.apiVersion, 'v1');
    await w.until(() => server.watchRequests().length === 1, 'watch');
    const q = server.watchRequests()[0]?.query;
    assert.equal(q?.get('resourceVersion'), 'rv-105');
    assert.equal(q?.get('allowWatchBookmarks'), 'true');
    assert.equal(q?.get('timeoutSeconds'), '290');

    server.put('f', { v: 'f' });
    server.put('a', { v: 'a2' });
    server.del('b');
    await w.until(() => w.events.length === 10, 'watch events');
    assert.deepEqual(types(w.events.slice(7)), ['apply', 'apply', 'delete']);
    assert.ok(w.storeEqualsWorld());
    assert.equal(w.store.get('ns1', 'a')?.metadata.managedFields, undefined, 'managedFields stripped');
    assert.deepEqual(w.errors, []);
    await w.stop();
  });

  it('resumes from the last bookmark after a clean close without relisting', async () => {
    server.put('a', { v: '1' });
    const w = run(server);
    await w.until(() => server.watchRequests().length === 1, 'first watch');
    server.put('b', { v: '1' });
    await w.until(() => w.events.length === 4, 'apply b');
    server.bookmark();
    // Give the bookmark time to arrive before the close.
    await new Promise((r) => setTimeout(r, 50));
    server.endWatches();
    server.put('c', { v: '1' }); // written during the reconnect gap
    await w.until(() => w.store.get('ns1', 'c') !== undefined, 'c');
    const resumed = server.watchRequests()[1]?.query.get('resourceVersion');
    assert.equal(resumed, 'rv-103', 'resumes from the bookmark, not the last object');
    assert.equal(types(w.events).filter((t) => t === 'init').length, 1, 'no relist');
    assert.equal(server.listRequests().length, 1);
    assert.ok(w.storeEqualsWorld());
    await w.stop();
  });

  it('relists on an in-stream 410 and drops objects deleted while disconnected', async () => {
    for (const n of ['a', 'b', 'c']) server.put(n, {});
    const w = run(server);
    await w.until(() => server.watchRequests().length === 1, 'watch');
    server.failWatches({ status: 500, body: { kind: 'Status', code: 500, reason: 'InternalError' } });
    server.dropConnections();
    server.del('b');
    server.put('d', {});
    server.compact();
    await w.until(() => types(w.events).filter((t) => t === 'init').length === 2, 'relist');
    await w.until(() => w.events.at(-1)?.type === 'initDone', 'relist done');
    assert.ok(w.storeEqualsWorld());
    assert.equal(w.store.get('ns1', 'b'), undefined);
    assert.ok(
      w.errors.some((e) => isK8sApiError(e) && e.isGone()),
      'the 410 is reported',
    );
    assert.ok(
      w.errors.some((e) => isFerryError(e) && e.code === CODES.K8S_TRANSPORT),
      'the drop is reported',
    );
    assert.ok(w.errors.some((e) => isK8sApiError(e) && e.status === 500));
    // After the relist the watch continues normally.
    server.put('e', {});
    await w.until(() => w.store.get('ns1', 'e') !== undefined, 'e');
    await w.stop();
  });

  it('relists on an HTTP 410 from the watch request', async () => {
    server.put('a', {});
    server.failWatches({ status: 410, body: { kind: 'Status', code: 410, reason: 'Gone', message: 'gone' } });
    const w = run(server);
    await w.until(() => server.watchRequests().length === 2, 'second watch');
    assert.deepEqual(types(w.events), ['init', 'initApply', 'initDone', 'init', 'initApply', 'initDone']);
    assert.deepEqual(w.clock.delays, [], 'a 410 relists at once');
    await w.stop();
  });

  it('backs off exponentially on other errors, honours Retry-After, and keeps going', async () => {
    server.put('a', {});
    const err500 = { status: 500, body: { kind: 'Status' as const, code: 500, reason: 'InternalError' } };
    server.failLists(err500, err500, err500, {
      status: 429,
      headers: { 'retry-after': '7' },
      body: { kind: 'Status', code: 429, reason: 'TooManyRequests' },
    });
    const w = run(server);
    await w.until(() => w.store.isReady(), 'ready');
    assert.equal(w.errors.length, 4);
    // random()=0.5 puts each delay at 3/4 of the exponential base (800, 1600, 3200, ...).
    assert.deepEqual(w.clock.delays, [600, 1200, 2400, 7000]);
    await w.stop();
  });

  it('restarts the backoff after a quiet period', async () => {
    server.put('a', {});
    const err = { status: 503, body: { kind: 'Status' as const, code: 503, reason: 'ServiceUnavailable' } };
    server.failLists(err, err);
    const w = run(server);
    await w.until(() => w.store.isReady(), 'ready');
    assert.deepEqual(w.clock.delays, [600, 1200]);
    w.clock.advance(121_000);
    server.failWatches(err);
    server.dropConnections();
    await w.until(() => w.clock.delays.length === 3, 'third backoff');
    assert.equal(w.clock.delays[2], 600);
    await w.stop();
  });

  it('restarts a paginated list whose continue token expired', async () => {
    for (const n of ['a', 'b', 'c']) server.put(n, {});
    server.afterNextList(() => {
      server.del('a');
      server.compact();
    });
    const w = run(server, { pageSize: 2 });
    await w.until(() => w.store.isReady(), 'ready');
    assert.ok(w.errors.some((e) => isK8sApiError(e) && e.isGone()));
    // The first page (a, b) was discarded with its init; the store reflects the world after the delete.
    assert.deepEqual(types(w.events), [
      'init',
      'initApply',
      'initApply',
      'init',
      'initApply',
      'initApply',
      'initDone',
    ]);
    assert.ok(w.storeEqualsWorld());
    await w.stop();
  });

  it('treats a silent watch as half-open and reconnects after timeoutSeconds plus a margin', async () => {
    server.put('a', {});
    server.silenceWatches(1);
    const w = run(server, { timeoutSeconds: 1 });
    await w.until(() => server.watchRequests().length === 1, 'watch');
    server.put('b', {});
    const started = Date.now();
    await w.until(() => w.store.get('ns1', 'b') !== undefined, 'b after reconnect');
    assert.ok(Date.now() - started >= 1000, 'waited at least the server timeout');
    assert.ok(w.errors.some((e) => isFerryError(e) && e.code === CODES.K8S_TRANSPORT));
    assert.equal(server.watchRequests()[1]?.query.get('resourceVersion'), 'rv-101');
    await w.stop();
  });

  it('ends only when the signal aborts, promptly, even mid-watch', async () => {
    const w = run(server);
    await w.until(() => server.watchRequests().length === 1, 'watch');
    const t0 = Date.now();
    await w.stop();
    assert.ok(Date.now() - t0 < 1000);
  });
});
