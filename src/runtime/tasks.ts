// Background work that is not a reconcile of an object — a deferred revocation, a debounced restart,
// a persistence write to retry, pruning after an informer event — runs as keyed tasks on one work
// queue instead of raw timers: a key holds its latest task (scheduling again replaces it), never runs
// twice at once, is retried with the shared backoff when it throws, is counted by the workqueue_*
// metrics, and the Manager drains the queue on shutdown after the controllers stopped.
//
// call() puts awaited work on the same keys: a caller (a gRPC handler) hands in a function and gets its
// outcome, never retried. Calls of one key run one at a time in arrival order, ahead of the key's
// scheduled task, which keeps its due time; so a key serialises all work on one object (the CSI
// node service keys every publish, unpublish, renewal and revocation of a volume by its target).
import type { Logger } from 'pino';
import { BACKGROUND_BACKOFF } from '../backoff.ts';
import type { Clock, Random } from '../clock.ts';
import { workQueueMetrics } from '../metrics/controller.ts';
import type { MetricsRegistry } from '../metrics/registry.ts';
import { WorkQueue } from './queue.ts';

/** A unit of background work; `signal` aborts when a shutdown runs out of time. Throwing retries it. */
export type Task<T = void> = (signal: AbortSignal) => Promise<T>;

export interface TaskScheduler {
  /** Runs `task` under `key` after `delayMs` (at once by default), replacing a pending task of that
   * key; the earlier of two due times wins. */
  schedule(key: string, task: Task, delayMs?: number): void;
}

export interface TaskRunner extends TaskScheduler {
  /** Runs `fn` under `key` once no other work of that key runs, and settles with its outcome. An
   * abort of `signal` while it waits withdraws it (rejecting with the signal's reason); once
   * started, `fn` sees `signal` and the shutdown's abort. Rejects at once after shutdown. */
  call<T>(key: string, fn: Task<T>, signal?: AbortSignal): Promise<T>;
}

/** An awaited call waiting for its key. */
interface Call {
  run: Task;
  reject: (reason: unknown) => void;
}

export interface TaskQueueOptions {
  name: string;
  logger: Logger;
  clock: Clock;
  random: Random;
  metrics?: MetricsRegistry;
  /** Parallel workers. Default 4. */
  concurrency?: number;
  /** How long a shutdown waits for running tasks before aborting them. Default 30 s. */
  shutdownTimeoutMs?: number;
}

export class TaskQueue implements TaskRunner {
  readonly #opts: TaskQueueOptions;
  readonly #queue: WorkQueue<string>;
  readonly #tasks = new Map<string, Task>();
  /** When each scheduled task is due: a call wakes its key early, the task must still wait. */
  readonly #due = new Map<string, number>();
  readonly #calls = new Map<string, Call[]>();
  readonly #running = new Set<AbortController>();
  #stopped = false;

  constructor(opts: TaskQueueOptions) {
    this.#opts = opts;
    this.#queue = new WorkQueue<string>({
      name: opts.name,
      clock: opts.clock,
      random: opts.random,
      backoff: BACKGROUND_BACKOFF,
      ...(opts.metrics ? { metrics: workQueueMetrics(opts.metrics) } : {}),
    });
  }

  schedule(key: string, task: Task, delayMs = 0): void {
    this.#tasks.set(key, task);
    const at = this.#opts.clock.now() + Math.max(0, delayMs);
    this.#due.set(key, Math.min(at, this.#due.get(key) ?? at));
    this.#queue.forget(key);
    this.#queue.addAfter(key, delayMs);
  }

  call<T>(key: string, fn: Task<T>, signal?: AbortSignal): Promise<T> {
    if (this.#stopped) return Promise.reject(new Error('shutting down'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<T>((resolve, reject) => {
      const call: Call = {
        run: async (s) => resolve(await fn(signal ? AbortSignal.any([signal, s]) : s)),
        reject,
      };
      const list = this.#calls.get(key) ?? [];
      list.push(call);
      this.#calls.set(key, list);
      signal?.addEventListener('abort', () => this.#withdraw(key, call, signal.reason), { once: true });
      this.#queue.add(key);
    });
  }

  #withdraw(key: string, call: Call, reason: unknown): void {
    const list = this.#calls.get(key);
    const i = list?.indexOf(call) ?? -1;
    if (!list || i < 0) return; // already started
    list.splice(i, 1);
    if (list.length === 0) this.#calls.delete(key);
    call.reject(reason);
  }

  /** Tasks scheduled and not yet done (for tests and shutdown logs). */
  get pending(): number {
    return this.#tasks.size + [...this.#calls.values()].reduce((n, l) => n + l.length, 0);
  }

  /** Runs the workers until `signal` aborts, then lets running tasks finish (up to the shutdown
   * timeout) and drops the ones not yet due. Never rejects. */
  async run(signal: AbortSignal): Promise<void> {
    const workers = Array.from({ length: this.#opts.concurrency ?? 4 }, () => this.#worker());
    if (!signal.aborted) await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
    this.#stopped = true;
    this.#queue.shutdown();
    for (const list of this.#calls.values()) for (const c of list) c.reject(new Error('shutting down'));
    this.#calls.clear();
    let timer: { cancel(): void } | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = this.#opts.clock.setTimeout(() => resolve(false), this.#opts.shutdownTimeoutMs ?? 30_000);
    });
    const drained = await Promise.race([Promise.all(workers).then(() => true), timedOut]);
    timer?.cancel();
    if (!drained) for (const ac of this.#running) ac.abort(new Error('shutting down'));
    if (this.#tasks.size > 0)
      this.#opts.logger.info(
        { queue: this.#opts.name, dropped: this.#tasks.size },
        'background tasks dropped',
      );
  }

  async #worker(): Promise<void> {
    for (;;) {
      const key = await this.#queue.get();
      if (key === undefined) return;
      const call = this.#calls.get(key)?.shift();
      if (call) {
        await this.#runCall(key, call);
        continue;
      }
      this.#calls.delete(key);
      const due = this.#due.get(key);
      const now = this.#opts.clock.now();
      if (due !== undefined && due > now) {
        // Woken by a call that was withdrawn: the task keeps its time.
        this.#queue.addAfter(key, due - now);
        this.#queue.done(key);
        continue;
      }
      this.#due.delete(key);
      const task = this.#tasks.get(key);
      const ac = new AbortController();
      this.#running.add(ac);
      try {
        if (task) {
          await task(ac.signal);
          // A task scheduled again while this one ran stays pending.
          if (this.#tasks.get(key) === task) this.#tasks.delete(key);
          this.#queue.forget(key);
        }
      } catch (err) {
        this.#opts.logger.warn(
          { err, queue: this.#opts.name, task: key },
          'background task failed; retrying',
        );
        if (this.#tasks.get(key) === task) {
          this.#queue.addRateLimited(key);
          const at = this.#queue.readyAt(key);
          if (at !== undefined) this.#due.set(key, at);
        }
      } finally {
        this.#running.delete(ac);
        this.#queue.done(key);
      }
    }
  }

  /** Runs one call of `key`; the key comes round again for the next call or its scheduled task. */
  async #runCall(key: string, call: Call): Promise<void> {
    const ac = new AbortController();
    this.#running.add(ac);
    try {
      await call.run(ac.signal);
    } catch (err) {
      call.reject(err);
    } finally {
      this.#running.delete(ac);
      if (this.#calls.get(key)?.length) this.#queue.add(key);
      else {
        this.#calls.delete(key);
        // The call's add() cancelled the scheduled task's timer: set it again.
        const due = this.#due.get(key);
        if (this.#tasks.has(key) && due !== undefined)
          this.#queue.addAfter(key, due - this.#opts.clock.now());
      }
      this.#queue.done(key);
    }
  }
}
