import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { VaultStaticSecrets as VSS } from '../../../src/api/resources.ts';
import type { Clock } from '../../../src/clock.ts';
import { CODES, TerminalError } from '../../../src/errors.ts';
import { K8sApiError } from '../../../src/k8s/errors.ts';
import { type ResourceType, Secrets } from '../../../src/k8s/resources.ts';
import type { KubeObject } from '../../../src/k8s/types.ts';
import { MetricsRegistry } from '../../../src/metrics/registry.ts';
import {
  type Action,
  Controller,
  type ControllerOptions,
  formatKey,
  parseKey,
} from '../../../src/runtime/controller.ts';
import { Informer, type InformerSource } from '../../../src/runtime/informer.ts';
import { and, generationChanged, labelsChanged, not, or } from '../../../src/runtime/predicates.ts';
import { createStore } from '../../../src/runtime/store.ts';
import type { WatcherEvent } from '../../../src/runtime/watcher.ts';
import { FakeClock, flush } from './fake-clock.ts';

const log = pino({ level: 'silent' });

/** A watcher stream the test pushes events into. */
function channel<T>() {
  const buf: WatcherEvent<T>[] = [];
  let wake: (() => void) | undefined;
  return {
    push(...evs: WatcherEvent<T>[]) {
      buf.push(...evs);
      wake?.();
    },
    source: async function* (signal: AbortSignal): AsyncIterable<WatcherEvent<T>> {
      while (!signal.aborted) {
        const ev = buf.shift();
        if (ev) {
          yield ev;
          continue;
        }
        await new Promise<void>((r) => {
          wake = r;
          signal.addEventListener('abort', () => r(), { once: true });
        });
        wake = undefined;
      }
    },
  };
}

/** An informer over a fresh store. */
function informerOf(
  rt: ResourceType,
  source: InformerSource<KubeObject>,
  stallAfterMs: number,
  clock?: Clock,
): Informer<KubeObject> {
  const { store, writer } = createStore<KubeObject>();
  return new Informer<KubeObject>({ rt, store, writer, source, stallAfterMs, ...(clock ? { clock } : {}) });
}

function obj(name: string, extra: Partial<KubeObject['metadata']> = {}): KubeObject {
  return { metadata: { name, namespace: 'ns', generation: 1, resourceVersion: '1', ...extra } };
}

function setup(opts: Partial<ControllerOptions> = {}, clock = new FakeClock()) {
  const ch = channel<KubeObject>();
  const informer = informerOf(VSS, ch.source, 1000, clock);
  const metrics = new MetricsRegistry();
  const calls: string[] = [];
  const c = new Controller({
    name: 'vss',
    logger: log,
    metrics,
    clock,
    random: () => 0,
    reconcile: async (ctx) => {
      calls.push(formatKey(ctx.key));
      return { awaitChange: true };
    },
    ...opts,
  });
  c.for(informer);
  /** The initial list: `objects` (or objects of these names), then initDone. */
  const seed = (...objects: (string | KubeObject)[]) =>
    ch.push(
      { type: 'init' },
      ...objects.map((o) => ({ type: 'initApply' as const, object: typeof o === 'string' ? obj(o) : o })),
      { type: 'initDone' },
    );
  return { ch, informer, c, metrics, calls, clock, seed };
}

async function runFor(c: Controller, informer: Informer<KubeObject>, body: () => Promise<void>) {
  const stop = new AbortController();
  const runs = [informer.run(stop.signal), c.run(stop.signal)];
  await body();
  stop.abort();
  await Promise.all(runs);
}

describe('keys', () => {
  it('formatKey/parseKey round-trip', () => {
    assert.deepEqual(parseKey(formatKey({ namespace: 'a', name: 'b' })), { namespace: 'a', name: 'b' });
    assert.deepEqual(parseKey('cluster-wide'), { name: 'cluster-wide' });
  });
});

describe('Controller result handling', () => {
  it('reconciles every listed object once caches sync, with context', async () => {
    const seen: { id: string; aborted: boolean }[] = [];
    const { informer, c, calls, seed } = setup({
      reconcile: async (ctx) => {
        calls.push(formatKey(ctx.key));
        seen.push({ id: ctx.reconcileId, aborted: ctx.signal.aborted });
        return { awaitChange: true };
      },
    });
    seed('a', 'b');
    await runFor(c, informer, async () => {
      await flush();
      assert.deepEqual(calls.sort(), ['ns/a', 'ns/b']);
    });
    assert.equal(new Set(seen.map((s) => s.id)).size, 2);
    assert.ok(seen.every((s) => !s.aborted));
  });

  it('binds the reconcile logger to the object, and makes it only when the reconciler logs', async () => {
    const lines: Record<string, unknown>[] = [];
    let children = 0;
    const logger = pino(
      {
        level: 'info',
        // Inherited by every descendant: counts the per-reconcile children.
        onChild: (child) => {
          if ('reconcileID' in child.bindings()) children++;
        },
      },
      { write: (l: string) => lines.push(JSON.parse(l)) },
    );
    const { informer, c, seed } = setup({
      logger,
      reconcile: async (ctx) => {
        if (ctx.key.name === 'b') ctx.log.info('hello');
        return { awaitChange: true };
      },
    });
    seed('a', 'b');
    await runFor(c, informer, async () => {
      await flush();
    });
    const hello = lines.find((l) => l.msg === 'hello');
    assert.equal(hello?.namespace, 'ns');
    assert.equal(hello?.name, 'b');
    assert.equal(typeof hello?.reconcileID, 'string');
    assert.equal(children, 1);
  });

  it('success forgets backoff and requeueAfter schedules a timed requeue', async () => {
    const clock = new FakeClock();
    const { informer, c, calls, metrics, seed } = setup(
      {
        reconcile: async (ctx) => {
          calls.push(formatKey(ctx.key));
          return { requeueAfterMs: 60_000 };
        },
      },
      clock,
    );
    seed('a');
    await runFor(c, informer, async () => {
      await flush();
      assert.equal(calls.length, 1);
      assert.equal(c.queue.readyAt('ns/a'), clock.now() + 60_000);
      await clock.advanceAsync(60_000);
      assert.equal(calls.length, 2);
    });
    const text = await metrics.metrics();
    assert.match(text, /controller_runtime_reconcile_total\{controller="vss",result="requeue_after"\} 2/);
    assert.match(text, /controller_runtime_max_concurrent_reconciles\{controller="vss"\} 1/);
  });

  it('errors requeue with per-key backoff; success resets it', async () => {
    const clock = new FakeClock();
    let failures = 2;
    const { informer, c, metrics, seed } = setup(
      {
        reconcile: async () => {
          if (failures-- > 0) throw new Error('vault unavailable');
          return { awaitChange: true } satisfies Action;
        },
      },
      clock,
    );
    seed('a');
    await runFor(c, informer, async () => {
      await flush();
      assert.equal(c.queue.numRequeues('ns/a'), 1);
      assert.equal(c.queue.readyAt('ns/a'), clock.now() + 5);
      await clock.advanceAsync(5);
      assert.equal(c.queue.numRequeues('ns/a'), 2);
      assert.equal(c.queue.readyAt('ns/a'), clock.now() + 10);
      await clock.advanceAsync(10);
      assert.equal(c.queue.numRequeues('ns/a'), 0, 'forgotten after success');
      assert.equal(c.queue.readyAt('ns/a'), undefined);
    });
    const text = await metrics.metrics();
    assert.match(text, /controller_runtime_reconcile_errors_total\{controller="vss"\} 2/);
    assert.match(text, /controller_runtime_reconcile_total\{controller="vss",result="error"\} 2/);
    assert.match(text, /controller_runtime_reconcile_total\{controller="vss",result="success"\} 1/);
  });

  it('TerminalError is counted and never retried', async () => {
    const clock = new FakeClock();
    const { ch, informer, c, calls, metrics, seed } = setup(
      {
        reconcile: async (ctx) => {
          calls.push(formatKey(ctx.key));
          throw new TerminalError('spec.mount is empty');
        },
      },
      clock,
    );
    seed('a');
    await runFor(c, informer, async () => {
      await flush();
      await clock.advanceAsync(2_000_000);
      assert.equal(calls.length, 1);
      // A change to the object brings it back.
      ch.push({ type: 'apply', object: obj('a', { generation: 2, resourceVersion: '2' }) });
      await flush();
      assert.equal(calls.length, 2);
    });
    assert.match(
      await metrics.metrics(),
      /controller_runtime_terminal_reconcile_errors_total\{controller="vss"\} 2/,
    );
  });

  it('an expected TerminalError (the object or its namespace going away) is neither retried nor an error', async () => {
    const lines: { level: number; msg: string }[] = [];
    const logger = pino({ level: 'debug' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    const { informer, c, calls, seed, metrics } = setup({
      logger,
      reconcile: async (ctx) => {
        calls.push(formatKey(ctx.key));
        throw new TerminalError('refused', { code: CODES.INVALID_REF, expected: ctx.key.name === 'a' });
      },
    });
    seed('a', 'b');
    await runFor(c, informer, async () => {
      await flush();
    });
    assert.deepEqual(calls.sort(), ['ns/a', 'ns/b']);
    const levels = Object.fromEntries(lines.map((l) => [l.msg, l.level]));
    assert.equal(levels['the object or its namespace is being deleted; not retrying'], 20);
    assert.equal(levels['terminal reconciler error; not retrying until the object changes'], 50);
    const text = await metrics.metrics();
    assert.match(text, /controller_runtime_reconcile_errors_total\{controller="vss"\} 1\n/);
    assert.match(text, /controller_runtime_reconcile_total\{controller="vss",result="success"\} 1\n/);
  });

  it('errorPolicy decides the timing of non-terminal errors', async () => {
    const clock = new FakeClock();
    const { informer, c, seed } = setup(
      {
        reconcile: async () => {
          throw new Error('boom');
        },
        errorPolicy: (err) => (String(err).includes('boom') ? { requeueAfterMs: 7000 } : undefined),
      },
      clock,
    );
    seed('a');
    await runFor(c, informer, async () => {
      await flush();
      assert.equal(c.queue.readyAt('ns/a'), clock.now() + 7000);
      assert.equal(c.queue.numRequeues('ns/a'), 0);
    });
  });

  it("an API server's Retry-After is a floor under the backoff and under the errorPolicy", async () => {
    const clock = new FakeClock();
    const tooMany = (seconds: number) =>
      new K8sApiError(429, 'TooManyRequests', 'PUT /api/v1/secrets: 429', { retryAfterSeconds: seconds });
    const { informer, c, seed } = setup(
      {
        reconcile: async ({ key: { name } }) => {
          // Wrapped as a reconciler's own error may wrap it: the floor still applies.
          if (name === 'b') throw new Error('write failed', { cause: tooMany(4) });
          throw tooMany(3);
        },
        errorPolicy: (_err, { key: { name } }) => (name === 'b' ? { requeueAfterMs: 1000 } : undefined),
      },
      clock,
    );
    seed('a', 'b');
    await runFor(c, informer, async () => {
      await flush();
      assert.equal(c.queue.readyAt('ns/a'), clock.now() + 3000, 'not the 5 ms first backoff');
      assert.equal(c.queue.numRequeues('ns/a'), 1, 'the backoff still advances');
      assert.equal(c.queue.readyAt('ns/b'), clock.now() + 4000, "not the errorPolicy's 1 s");
    });
  });

  it('a synchronous throw, a non-Action result or a throwing errorPolicy never kill the workers', async () => {
    let n = 0;
    const { informer, c, calls, seed } = setup({
      reconcile: ((ctx: { key: { name: string } }) => {
        calls.push(ctx.key.name);
        n++;
        if (n === 1) throw new Error('sync throw');
        if (n === 2) return Promise.resolve(undefined);
        return Promise.resolve({ awaitChange: true });
      }) as unknown as ControllerOptions['reconcile'],
      errorPolicy: () => {
        throw new Error('policy bug');
      },
    });
    seed('a', 'b', 'c');
    await runFor(c, informer, async () => {
      await flush();
      assert.deepEqual(calls.sort(), ['a', 'b', 'c']);
      assert.equal(c.queue.numRequeues('ns/a') + c.queue.numRequeues('ns/b'), 2);
    });
  });

  it('aborts ctx.signal at the reconcile timeout and counts it', async () => {
    const clock = new FakeClock();
    const { informer, c, metrics, seed } = setup(
      {
        reconcileTimeoutMs: 1000,
        reconcile: (ctx) =>
          new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
      },
      clock,
    );
    seed('a');
    await runFor(c, informer, async () => {
      await flush();
      await clock.advanceAsync(1000);
      assert.equal(c.queue.numRequeues('ns/a'), 1);
    });
    assert.match(
      await metrics.metrics(),
      /controller_runtime_reconcile_timeouts_total\{controller="vss"\} 1/,
    );
  });

  it('graceful shutdown waits for in-flight reconciles, then aborts stragglers at the deadline', async () => {
    const clock = new FakeClock();
    let finished = false;
    let abortedBy: unknown;
    const { informer, c, seed } = setup(
      {
        shutdownTimeoutMs: 5000,
        reconcileTimeoutMs: 0,
        reconcile: (ctx) =>
          new Promise((resolve) => {
            ctx.signal.addEventListener('abort', () => {
              abortedBy = ctx.signal.reason;
              finished = true;
              resolve({ awaitChange: true });
            });
          }),
      },
      clock,
    );
    seed('a');
    const stop = new AbortController();
    const runs = [informer.run(stop.signal), c.run(stop.signal)];
    await flush();
    stop.abort();
    await flush();
    assert.equal(finished, false, 'in-flight reconcile is given time');
    await clock.advanceAsync(5000);
    await Promise.all(runs);
    assert.ok(finished);
    assert.ok(abortedBy instanceof Error);
  });

  it('the same key is never reconciled concurrently even with many workers', async () => {
    let active = 0;
    let maxActive = 0;
    const { ch, informer, c, seed } = setup({
      concurrency: 8,
      reconcile: async () => {
        active++;
        maxActive = Math.max(maxActive, active);
        await flush(2);
        active--;
        return { awaitChange: true };
      },
    });
    seed('a');
    await runFor(c, informer, async () => {
      for (let i = 2; i < 20; i++) {
        ch.push({ type: 'apply', object: obj('a', { resourceVersion: String(i) }) });
        await flush(1);
      }
      await flush();
    });
    assert.equal(maxActive, 1);
  });
});

describe('event mapping and predicates', () => {
  it('owns() maps child events to owners of the For kind and group only', async () => {
    const { informer, c, calls } = setup();
    const secrets = channel<KubeObject>();
    const secretInformer = informerOf(Secrets, secrets.source, 1000);
    c.owns(secretInformer);
    const owned = obj('dest', {
      ownerReferences: [
        { apiVersion: 'secrets.hashicorp.com/v1beta1', kind: 'VaultStaticSecret', name: 'owner', uid: 'u1' },
        { apiVersion: 'other.io/v1', kind: 'VaultStaticSecret', name: 'not-ours', uid: 'u2' },
        { apiVersion: 'apps/v1', kind: 'Deployment', name: 'dep', uid: 'u3' },
      ],
    });
    secrets.push(
      { type: 'init' },
      { type: 'initDone' },
      { type: 'apply', object: owned },
      { type: 'delete', object: owned },
    );
    const stop = new AbortController();
    const runs = [informer.run(stop.signal), secretInformer.run(stop.signal), c.run(stop.signal)];
    await flush();
    stop.abort();
    await Promise.all(runs);
    assert.deepEqual([...new Set(calls)], ['ns/owner']);
  });

  it('watches() uses the mapper; predicates see old and new objects', async () => {
    const ch = channel<KubeObject>();
    const informer = informerOf(VSS, ch.source, 1);
    const calls: string[] = [];
    const c = new Controller({
      name: 't',
      logger: log,
      reconcile: async (ctx) => {
        calls.push(formatKey(ctx.key));
        return { awaitChange: true };
      },
    });
    c.watches(informer, (o) => [{ namespace: 'x', name: `for-${o.metadata.name}` }], {
      predicate: or(generationChanged, labelsChanged),
    });
    ch.push(
      { type: 'init' },
      { type: 'initApply', object: obj('a') },
      { type: 'initDone' },
      // status-only write: same generation and labels → filtered
      { type: 'apply', object: obj('a', { resourceVersion: '2' }) },
    );
    const stop = new AbortController();
    const runs = [informer.run(stop.signal), c.run(stop.signal)];
    await flush();
    assert.deepEqual(calls, ['x/for-a'], 'create passes; status-only update filtered');
    ch.push({ type: 'apply', object: obj('a', { resourceVersion: '3', labels: { l: '1' } }) });
    await flush();
    assert.deepEqual(calls, ['x/for-a', 'x/for-a']);
    stop.abort();
    await Promise.all(runs);
  });

  it('predicate combinators', () => {
    const old = obj('a');
    const upd = (m: Partial<KubeObject['metadata']>) => ({ type: 'update' as const, old, obj: obj('a', m) });
    assert.equal(generationChanged(upd({ generation: 2 })), true);
    assert.equal(generationChanged(upd({})), false);
    assert.equal(generationChanged({ type: 'create', obj: old }), true);
    assert.equal(and(generationChanged, labelsChanged)(upd({ generation: 2 })), false);
    assert.equal(not(generationChanged)(upd({})), true);
  });

  it('a relist diffs against the store: deletes vanished objects and updates survivors', async () => {
    const ch = channel<KubeObject>();
    const informer = informerOf(VSS, ch.source, 1);
    const events: string[] = [];
    informer.addHandler((ev) => events.push(`${ev.type}:${ev.obj.metadata.name}`));
    ch.push(
      { type: 'init' },
      { type: 'initApply', object: obj('a') },
      { type: 'initApply', object: obj('b') },
      { type: 'initDone' },
      { type: 'init' },
      { type: 'initApply', object: obj('b', { resourceVersion: '9' }) },
      { type: 'initApply', object: obj('c') },
      { type: 'initDone' },
    );
    const stop = new AbortController();
    const run = informer.run(stop.signal);
    await flush();
    stop.abort();
    await run;
    assert.deepEqual(events, ['create:a', 'create:b', 'update:b', 'create:c', 'delete:a']);
    assert.equal(informer.hasSynced(), true);
  });

  it('informer health: stalled when errors persist past the threshold without events', async () => {
    const clock = new FakeClock();
    let report: ((e: unknown) => void) | undefined;
    const informer = informerOf(
      VSS,
      (signal, onError) => {
        report = onError;
        return (async function* () {
          await new Promise((r) => signal.addEventListener('abort', r));
        })() as AsyncIterable<WatcherEvent<KubeObject>>;
      },
      10_000,
      clock,
    );
    const stop = new AbortController();
    const run = informer.run(stop.signal);
    await flush();
    report?.(new Error('429'));
    clock.advance(9_000);
    report?.(new Error('429'));
    assert.equal(informer.health().stalled, false);
    clock.advance(2_000);
    report?.(new Error('429'));
    assert.equal(informer.health().stalled, true);
    clock.advance(20_000); // errors stopped: the watch resumed quietly
    assert.equal(informer.health().stalled, false);
    stop.abort();
    await run;
  });
});
