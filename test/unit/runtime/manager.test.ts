import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { VaultStaticSecrets as VSS } from '../../../src/api/resources.ts';
import type { KubeClient } from '../../../src/k8s/client.ts';
import type { ResourceType } from '../../../src/k8s/resources.ts';
import type { KubeObject } from '../../../src/k8s/types.ts';
import { Manager, type WatchFactory } from '../../../src/runtime/manager.ts';
import type { WatcherEvent } from '../../../src/runtime/watcher.ts';
import { FakeClock, flush } from './fake-clock.ts';
import { FakeLeases } from './fake-leases.ts';

/** One object 'ns/a', synced at once, then the watch waits for its end. */
const syncedWatch: WatchFactory = <T extends KubeObject>(_rt: ResourceType, spec: { signal: AbortSignal }) =>
  (async function* (): AsyncGenerator<WatcherEvent<T>> {
    yield { type: 'init' };
    yield { type: 'initApply', object: { metadata: { name: 'a', namespace: 'ns' } } as T };
    yield { type: 'initDone' };
    await new Promise((r) => spec.signal.addEventListener('abort', r));
  })();

describe('Manager', () => {
  it('serves probes and metrics, starts controllers only after caches sync, and shuts down', async (t) => {
    let releaseInitDone: () => void = () => {};
    const gate = new Promise<void>((r) => {
      releaseInitDone = r;
    });
    const watch: WatchFactory = <T extends KubeObject>(_rt: ResourceType, spec: { signal: AbortSignal }) =>
      (async function* (): AsyncGenerator<WatcherEvent<T>> {
        yield { type: 'init' };
        yield { type: 'initApply', object: { metadata: { name: 'a', namespace: 'ns' } } as T };
        await gate;
        yield { type: 'initDone' };
        await new Promise((r) => spec.signal.addEventListener('abort', r));
      })();
    const mgr = new Manager({
      client: {} as unknown as KubeClient, // unused: watch is injected and leader election is off
      logger: pino({ level: 'silent' }),
      healthProbeAddress: '127.0.0.1:0',
      metricsAddress: '127.0.0.1:0',
      watch,
    });
    const reconciled: string[] = [];
    mgr
      .controller({
        name: 'vss',
        reconcile: async (ctx) => {
          reconciled.push(ctx.key.name);
          return { awaitChange: true };
        },
      })
      .for(mgr.informer(VSS));
    const stop = new AbortController();
    t.after(() => stop.abort());
    const started = mgr.start(stop.signal);
    await flush();
    const get = async (addr: string | undefined, path: string) => {
      const res = await fetch(`http://${addr}${path}`, { signal: AbortSignal.timeout(5000) });
      return { status: res.status, body: await res.text() };
    };
    assert.equal((await get(mgr.addresses.health, '/healthz')).status, 200);
    assert.equal((await get(mgr.addresses.health, '/readyz')).status, 503, 'not ready before sync');
    assert.deepEqual(reconciled, [], 'controllers wait for the caches');
    releaseInitDone();
    await flush();
    assert.equal((await get(mgr.addresses.health, '/readyz')).status, 200);
    assert.deepEqual(reconciled, ['a']);
    const metrics = await get(mgr.addresses.metrics, '/metrics');
    assert.match(metrics.body, /controller_runtime_reconcile_total\{controller="vss",result="success"\} 1/);
    assert.equal(mgr.addresses.metrics, mgr.addresses.health, 'equal addresses share one server');
    assert.equal((await get(mgr.addresses.health, '/nope')).status, 404);
    stop.abort();
    await started;
  });

  it('runs the warm-ups before the controllers, which wait for them up to their timeout', async (t) => {
    const clock = new FakeClock();
    const mgr = new Manager({
      client: {} as unknown as KubeClient,
      logger: pino({ level: 'silent' }),
      healthProbeAddress: null,
      metricsAddress: null,
      watch: syncedWatch,
      clock,
    });
    const order: string[] = [];
    let finishQuick: () => void = () => {};
    mgr.beforeControllers(
      'quick',
      () =>
        new Promise<void>((r) => {
          finishQuick = () => {
            order.push('quick done');
            r();
          };
        }),
      60_000,
    );
    let stuckSignal: AbortSignal | undefined;
    mgr.beforeControllers(
      'stuck',
      (signal) => {
        stuckSignal = signal;
        return new Promise<void>(() => {});
      },
      5_000,
    );
    mgr
      .controller({
        name: 'vss',
        reconcile: async (ctx) => {
          order.push(`reconcile ${ctx.key.name}`);
          return { awaitChange: true };
        },
      })
      .for(mgr.informer(VSS));
    const stop = new AbortController();
    t.after(() => stop.abort());
    const started = mgr.start(stop.signal);
    await flush();
    finishQuick();
    await flush();
    assert.deepEqual(order, ['quick done'], 'the controllers wait for the warm-up still running');
    clock.advance(5_000);
    await flush();
    assert.deepEqual(order, ['quick done', 'reconcile a'], 'then start at its timeout');
    assert.equal(stuckSignal?.aborted, false, 'the late warm-up goes on beside them');
    stop.abort();
    await started;
    assert.equal(stuckSignal?.aborted, true, 'until the shutdown');
  });

  it('aborts running reconciles at once when leadership is lost, without the shutdown grace period', async () => {
    const clock = new FakeClock();
    const leases = new FakeLeases();
    const mgr = new Manager({
      client: leases.client() as unknown as KubeClient,
      logger: pino({ level: 'silent' }),
      healthProbeAddress: null,
      metricsAddress: null,
      leaderElection: { namespace: 'ferry', name: 'ferry-lock', identity: 'a' },
      clock,
      random: () => 0,
      watch: syncedWatch,
    });
    // A reconcile that waits for its signal, as one blocked on a slow Vault or API server would.
    let reconcileSignal: AbortSignal | undefined;
    mgr
      .controller({
        name: 'vss',
        reconcile: (ctx) =>
          new Promise((_resolve, reject) => {
            reconcileSignal = ctx.signal;
            ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
          }),
      })
      .for(mgr.informer(VSS));
    const stop = new AbortController();
    const started = mgr.start(stop.signal).then(
      () => 'stopped',
      (err: unknown) => String(err),
    );
    await clock.advanceAsync(1);
    assert.ok(reconcileSignal, 'the reconcile runs once leading');
    assert.equal(reconcileSignal.aborted, false);
    // The API server stops answering: renewals fail until renewDeadline (10 s) has passed.
    leases.down = true;
    await clock.advanceAsync(2_000 + 10_000 + 1);
    assert.equal(reconcileSignal.aborted, true, 'aborted at the loss, not 30 s later');
    assert.match(String(reconcileSignal.reason), /leadership lost/);
    assert.match(await started, /leader election lost/);
  });
});
