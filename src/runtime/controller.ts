// The controller loop. Informer events become keys (For / Owns / Watches, filtered by predicates), N
// workers take keys from the WorkQueue and call reconcile(ctx), and #finish() is the ONE place where a
// reconcile outcome becomes a queue action:
//   success                → forget backoff; requeueAfterMs → addAfter
//   TerminalError thrown   → log + count, no retry (a later change to the object enqueues it again)
//   any other error thrown → errorPolicy(err) if given, else addRateLimited
// The reconciler never learns why it runs (level-triggered): it reads current state from the store.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { BackoffPolicy } from '../backoff.ts';
import type { Clock, Random } from '../clock.ts';
import { systemClock } from '../clock.ts';
import { TerminalError } from '../errors.ts';
import { retryAfterMs } from '../k8s/errors.ts';
import type { KubeObject } from '../k8s/types.ts';
import type { ControllerMetrics } from '../metrics/controller.ts';
import { controllerMetrics, workQueueMetrics } from '../metrics/controller.ts';
import type { MetricsRegistry } from '../metrics/registry.ts';
import type { Informer } from './informer.ts';
import type { ObjectEvent, Predicate } from './predicates.ts';
import { WorkQueue } from './queue.ts';
import { objectKey } from './store.ts';

/** What to do after a successful reconcile. Prefer a periodic requeue over awaitChange as a fallback
 * against missed events. */
export type Action = { requeueAfterMs: number } | { awaitChange: true };

export function requeueAfter(ms: number): Action {
  return { requeueAfterMs: ms };
}

export function awaitChange(): Action {
  return { awaitChange: true };
}

export interface ObjectKey {
  namespace?: string;
  name: string;
}

export interface ReconcileContext {
  key: ObjectKey;
  /** Aborts on the reconcile timeout, on forced shutdown and at once on lost leadership. Pass it to
   * every I/O call. */
  signal: AbortSignal;
  /** Child logger bound to controller, reconcileID, namespace and name. */
  log: Logger;
  reconcileId: string;
}

export type Reconciler = (ctx: ReconcileContext) => Promise<Action>;

/** Turns a (non-terminal) error into timing. Returning undefined keeps the default rate-limited
 * requeue. */
export type ErrorPolicy = (err: unknown, ctx: ReconcileContext) => Action | undefined;

export interface ControllerOptions {
  /** Metric label and log field; by convention the lower-case kind. */
  name: string;
  reconcile: Reconciler;
  errorPolicy?: ErrorPolicy;
  /** Parallel workers; keys are never processed concurrently whatever this is. Default 1. */
  concurrency?: number;
  /** Per-reconcile deadline for ctx.signal; 0 disables. Default 5 minutes. */
  reconcileTimeoutMs?: number;
  /** How long run() waits for in-flight reconciles after its signal aborts before aborting them.
   * Default 30 s. */
  shutdownTimeoutMs?: number;
  logger: Logger;
  metrics?: MetricsRegistry;
  clock?: Clock;
  random?: Random;
  backoff?: BackoffPolicy;
}

export function formatKey(key: ObjectKey): string {
  return objectKey(key.namespace, key.name);
}

/** Inverse of formatKey. Kubernetes names cannot contain '/', so the first '/' splits. */
export function parseKey(key: string): ObjectKey {
  const i = key.indexOf('/');
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

function keyOfObject(obj: KubeObject): ObjectKey {
  const { namespace, name = '' } = obj.metadata;
  return namespace ? { namespace, name } : { name };
}

function apiGroup(apiVersion: string): string {
  const i = apiVersion.indexOf('/');
  return i < 0 ? '' : apiVersion.slice(0, i);
}

function isAction(v: unknown): v is Action {
  if (typeof v !== 'object' || v === null) return false;
  const a = v as { requeueAfterMs?: unknown; awaitChange?: unknown };
  return typeof a.requeueAfterMs === 'number' || a.awaitChange === true;
}

const RECONCILE_TIMEOUT = 'reconcile timed out';

export class Controller {
  readonly name: string;
  readonly queue: WorkQueue<string>;
  readonly #opts: ControllerOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #metrics: ControllerMetrics | undefined;
  readonly #informers: Informer<KubeObject>[] = [];
  readonly #inflight = new Set<AbortController>();
  /** run()'s `abort`: aborts every reconcile, the running and any that starts after. */
  #abort: AbortSignal | undefined;
  #forInformer: Informer<KubeObject> | undefined;
  #running = false;

  constructor(opts: ControllerOptions) {
    const concurrency = opts.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError('concurrency must be a positive integer');
    }
    this.name = opts.name;
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.logger.child({ controller: opts.name });
    this.#metrics = opts.metrics ? controllerMetrics(opts.metrics) : undefined;
    this.queue = new WorkQueue<string>({
      name: opts.name,
      clock: this.#clock,
      ...(opts.random ? { random: opts.random } : {}),
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
      ...(opts.metrics ? { metrics: workQueueMetrics(opts.metrics) } : {}),
    });
    this.#metrics?.activeWorkers.set({ controller: this.name }, 0);
    this.#metrics?.maxConcurrentReconciles.set({ controller: this.name }, concurrency);
  }

  /** The primary kind: each event enqueues the object's own key. */
  for<T extends KubeObject>(informer: Informer<T>, opts: { predicate?: Predicate<T> } = {}): this {
    if (this.#forInformer) throw new Error(`controller ${this.name}: for() was already called`);
    this.#forInformer = informer as unknown as Informer<KubeObject>;
    return this.#watch(informer, opts.predicate, (obj) => [keyOfObject(obj)]);
  }

  /**
   * Child objects: each event enqueues the owners named in its ownerReferences whose kind and API group
   * are the For kind's. VSO sets ownerReferences without `controller: true`, so all matching owners
   * count unless onlyController is set. Use a metadata-only informer for Secrets.
   */
  owns<T extends KubeObject>(
    informer: Informer<T>,
    opts: { predicate?: Predicate<T>; onlyController?: boolean } = {},
  ): this {
    return this.#watch(informer, opts.predicate, (obj) => {
      const owner = this.#forInformer?.rt;
      if (!owner) return [];
      const keys: ObjectKey[] = [];
      for (const ref of obj.metadata.ownerReferences ?? []) {
        if (ref.kind !== owner.kind || apiGroup(ref.apiVersion) !== owner.group) continue;
        if (opts.onlyController && ref.controller !== true) continue;
        const ns = owner.namespaced ? obj.metadata.namespace : undefined;
        keys.push(ns ? { namespace: ns, name: ref.name } : { name: ref.name });
      }
      return keys;
    });
  }

  /** Any other kind: `mapper` names the keys to reconcile (e.g. through a reference index). */
  watches<T extends KubeObject>(
    informer: Informer<T>,
    mapper: (obj: T) => readonly ObjectKey[],
    opts: { predicate?: Predicate<T> } = {},
  ): this {
    return this.#watch(informer, opts.predicate, mapper);
  }

  /** Informers this controller reads; the manager waits for them to sync before run(). */
  informers(): readonly Informer<KubeObject>[] {
    return this.#informers;
  }

  /**
   * Run the workers until `signal` aborts, then stop taking work, wait up to shutdownTimeoutMs for
   * in-flight reconciles, abort the stragglers' signals and return. Never rejects.
   * `opts.abort` stops at once: it aborts the in-flight reconciles' signals without a grace period, as
   * controller-runtime cancels its reconcile contexts when leadership is lost (another replica may
   * already be writing the same objects).
   */
  async run(signal: AbortSignal, opts: { abort?: AbortSignal } = {}): Promise<void> {
    if (this.#running) throw new Error(`controller ${this.name} is already running`);
    this.#running = true;
    const { abort } = opts;
    this.#abort = abort;
    const abortAll = (): void => {
      for (const ac of this.#inflight) ac.abort(abort?.reason);
    };
    abort?.addEventListener('abort', abortAll, { once: true });
    const concurrency = this.#opts.concurrency ?? 1;
    this.#log.info({ concurrency }, 'starting workers');
    const workers = Array.from({ length: concurrency }, () => this.#worker());
    const stopped = new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => resolve(), { once: true });
    });
    await stopped;
    this.queue.shutdown();
    const drained = Promise.all(workers).then(() => true);
    const deadline = this.#opts.shutdownTimeoutMs ?? 30_000;
    let timer: { cancel(): void } | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = this.#clock.setTimeout(() => resolve(false), deadline);
    });
    const clean = await Promise.race([drained, timedOut]);
    timer?.cancel();
    if (!clean) {
      this.#log.warn(
        { inflight: this.#inflight.size },
        'shutdown deadline passed; aborting in-flight reconciles',
      );
      for (const ac of this.#inflight) ac.abort(new Error('controller shutting down'));
    }
    abort?.removeEventListener('abort', abortAll);
    this.#log.info('workers stopped');
  }

  #watch<T extends KubeObject>(
    informer: Informer<T>,
    predicate: Predicate<T> | undefined,
    map: (obj: T) => readonly ObjectKey[],
  ): this {
    this.#informers.push(informer as unknown as Informer<KubeObject>);
    informer.addHandler((ev: ObjectEvent<T>) => {
      try {
        if (predicate && !predicate(ev)) return;
        // Owner or mapping may have changed in an update: both sides need a look. Collect first: a
        // key handed straight to an idle worker and added again would run twice.
        const keys = new Set(map(ev.obj).map(formatKey));
        if (ev.type === 'update') for (const k of map(ev.old)) keys.add(formatKey(k));
        for (const key of keys) this.queue.add(key);
      } catch (err) {
        this.#log.error({ err, kind: informer.rt.kind }, 'event handler failed; event dropped');
      }
    });
    return this;
  }

  async #worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.#process(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  async #process(key: string): Promise<void> {
    const objectKey = parseKey(key);
    const reconcileId = randomUUID();
    const ac = new AbortController();
    if (this.#abort?.aborted) ac.abort(this.#abort.reason);
    const timeoutMs = this.#opts.reconcileTimeoutMs ?? 5 * 60_000;
    const timer =
      timeoutMs > 0
        ? this.#clock.setTimeout(() => ac.abort(new Error(RECONCILE_TIMEOUT)), timeoutMs)
        : undefined;
    const parentLog = this.#log;
    let log: Logger | undefined;
    const ctx: ReconcileContext = {
      key: objectKey,
      signal: ac.signal,
      // Made on first use: most reconciles log nothing, and a pino child runs the redaction over its
      // bindings (a few KB of garbage per reconcile, docs/memory.md).
      get log(): Logger {
        log ??= parentLog.child({
          reconcileID: reconcileId,
          namespace: objectKey.namespace,
          name: objectKey.name,
        });
        return log;
      },
      reconcileId,
    };
    const labels = { controller: this.name };
    this.#inflight.add(ac);
    this.#metrics?.activeWorkers.inc(labels);
    const started = this.#clock.now();
    try {
      let outcome: { ok: true; action: unknown } | { ok: false; err: unknown };
      try {
        outcome = { ok: true, action: await this.#opts.reconcile(ctx) };
      } catch (err) {
        outcome = { ok: false, err };
      }
      if (
        ac.signal.aborted &&
        ac.signal.reason instanceof Error &&
        ac.signal.reason.message === RECONCILE_TIMEOUT
      ) {
        this.#metrics?.reconcileTimeouts.inc(labels);
      }
      this.#finish(key, ctx, outcome);
    } finally {
      timer?.cancel();
      this.#inflight.delete(ac);
      this.#metrics?.activeWorkers.dec(labels);
      this.#metrics?.reconcileTime.observe(labels, (this.#clock.now() - started) / 1000);
    }
  }

  /** The single place where a reconcile outcome becomes a queue action. */
  #finish(
    key: string,
    ctx: ReconcileContext,
    outcome: { ok: true; action: unknown } | { ok: false; err: unknown },
  ): void {
    const m = this.#metrics;
    const labels = { controller: this.name };
    if (outcome.ok) {
      if (!isAction(outcome.action)) {
        ctx.log.error('reconciler returned no Action; treating as an error');
        this.#finish(key, ctx, { ok: false, err: new TypeError('reconciler returned no Action') });
        return;
      }
      this.queue.forget(key);
      const action = outcome.action;
      if ('requeueAfterMs' in action) {
        if (action.requeueAfterMs > 0) {
          this.queue.addAfter(key, action.requeueAfterMs);
          m?.reconcileTotal.inc({ ...labels, result: 'requeue_after' });
        } else {
          this.queue.add(key);
          m?.reconcileTotal.inc({ ...labels, result: 'requeue' });
        }
      } else {
        m?.reconcileTotal.inc({ ...labels, result: 'success' });
      }
      if (this.#log.isLevelEnabled('debug')) ctx.log.debug('reconcile succeeded');
      return;
    }

    const err = outcome.err;
    // Handled, as controller-runtime's reconcilers ignore a NotFound: counted as a success.
    if (err instanceof TerminalError && err.expected) {
      m?.reconcileTotal.inc({ ...labels, result: 'success' });
      ctx.log.debug({ err }, 'the object or its namespace is being deleted; not retrying');
      return;
    }
    m?.reconcileErrors.inc(labels);
    m?.reconcileTotal.inc({ ...labels, result: 'error' });
    if (err instanceof TerminalError) {
      m?.terminalReconcileErrors.inc(labels);
      ctx.log.error({ err }, 'terminal reconciler error; not retrying until the object changes');
      return;
    }
    ctx.log.error({ err }, 'reconciler error');
    let action: Action | undefined;
    if (this.#opts.errorPolicy) {
      try {
        action = this.#opts.errorPolicy(err, ctx);
      } catch (policyErr) {
        ctx.log.error({ err: policyErr }, 'errorPolicy threw; using the default backoff');
      }
    }
    // An API server that answered 429 (priority and fairness) or 503 with Retry-After is not asked
    // again sooner, whatever the backoff or the errorPolicy says (client-go waits it out the same).
    const floor = retryAfterMs(err) ?? 0;
    if (action === undefined) this.queue.addRateLimited(key, floor);
    else if ('requeueAfterMs' in action) this.queue.addAfter(key, Math.max(action.requeueAfterMs, floor));
  }
}
