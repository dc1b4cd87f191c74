// Background work that is not a reconcile of an object — a deferred revocation, a debounced restart,
// a persistence write to retry, pruning after an informer event — runs as keyed tasks on one work
// queue instead of raw timers: a key holds its latest task (scheduling again replaces it), never runs
// twice at once, is retried with the shared backoff when it throws, is counted by the workqueue_*
// metrics, and the Manager drains the queue on shutdown after the controllers stopped.
import type { Logger } from 'pino';
import { BACKGROUND_BACKOFF } from '../backoff.ts';
import type { Clock, Random } from '../clock.ts';
import { workQueueMetrics } from '../metrics/controller.ts';
import type { MetricsRegistry } from '../metrics/registry.ts';
import { WorkQueue } from './queue.ts';

/** A unit of background work; `signal` aborts when a shutdown runs out of time. Throwing retries it. */
export type Task = (signal: AbortSignal) => Promise<void>;

export interface TaskScheduler {
  /** Runs `task` under `key` after `delayMs` (at once by default), replacing a pending task of that
   * key; the earlier of two due times wins. */
  schedule(key: string, task: Task, delayMs?: number): void;
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

export class TaskQueue implements TaskScheduler {
  readonly #opts: TaskQueueOptions;
  readonly #queue: WorkQueue<string>;
  readonly #tasks = new Map<string, Task>();
  readonly #running = new Set<AbortController>();

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
    this.#queue.forget(key);
    this.#queue.addAfter(key, delayMs);
  }

  /** Tasks scheduled and not yet done (for tests and shutdown logs). */
  get pending(): number {
    return this.#tasks.size;
  }

  /** Runs the workers until `signal` aborts, then lets running tasks finish (up to the shutdown
   * timeout) and drops the ones not yet due. Never rejects. */
  async run(signal: AbortSignal): Promise<void> {
    const workers = Array.from({ length: this.#opts.concurrency ?? 4 }, () => this.#worker());
    if (!signal.aborted) await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
    this.#queue.shutdown();
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
        if (this.#tasks.get(key) === task) this.#queue.addRateLimited(key);
      } finally {
        this.#running.delete(ac);
        this.#queue.done(key);
      }
    }
  }
}
