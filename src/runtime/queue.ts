// A keyed work queue with controller-runtime semantics:
// - a key is pending at most once (dedupe), with the earliest requested ready time;
// - a key handed out by get() is "processing" until done(); re-adds meanwhile are remembered and the
//   key becomes ready again only after done(), so no key is ever processed by two workers at once;
// - addRateLimited() delays by the key's exponential backoff, forget() resets it.
// All timers run on the injected Clock.

import type { BackoffPolicy } from '../backoff.ts';
import { CONTROLLER_RUNTIME_BACKOFF, KeyedBackoff } from '../backoff.ts';
import type { Clock, Random, Timer } from '../clock.ts';
import { systemClock } from '../clock.ts';
import type { WorkQueueMetrics } from '../metrics/controller.ts';

export interface WorkQueueOptions {
  /** Value of the `name` label on workqueue_* metrics (the controller name). */
  name?: string;
  clock?: Clock;
  random?: Random;
  backoff?: BackoffPolicy;
  metrics?: WorkQueueMetrics;
}

export class WorkQueue<K extends string> {
  readonly name: string;
  readonly #clock: Clock;
  readonly #backoff: KeyedBackoff<K>;
  readonly #metrics: WorkQueueMetrics | undefined;
  /** Ready keys in FIFO order; never contains a processing key. */
  readonly #ready: K[] = [];
  /** Keys that must be processed (again): everything in #ready plus re-adds of processing keys.
   * Value: when the key became due, for queue_duration_seconds. */
  readonly #dirty = new Map<K, number>();
  /** Keys handed to a worker, with the time processing started. */
  readonly #processing = new Map<K, number>();
  /** Keys waiting for a timer; one timer per key, at the earliest requested time. */
  readonly #waiting = new Map<K, { readyAt: number; timer: Timer }>();
  readonly #getters: ((key: K | undefined) => void)[] = [];
  readonly #unsubscribe: (() => void)[] = [];
  #shutdown = false;

  constructor(opts: WorkQueueOptions = {}) {
    this.name = opts.name ?? 'queue';
    this.#clock = opts.clock ?? systemClock;
    const backoffOpts = opts.random ? { clock: this.#clock, random: opts.random } : { clock: this.#clock };
    this.#backoff = new KeyedBackoff<K>(opts.backoff ?? CONTROLLER_RUNTIME_BACKOFF, backoffOpts);
    this.#metrics = opts.metrics;
    if (this.#metrics) {
      const m = this.#metrics;
      const labels = { name: this.name };
      // Depth gauges must read 0 rather than be absent before the first add.
      m.depth.set(labels, 0);
      this.#unsubscribe.push(
        m.unfinishedWork.onCollect(() => m.unfinishedWork.set(labels, this.#unfinishedSeconds())),
        m.longestRunningProcessor.onCollect(() =>
          m.longestRunningProcessor.set(labels, this.#longestRunningSeconds()),
        ),
      );
    }
  }

  /** Number of keys ready to be handed out. */
  get length(): number {
    return this.#ready.length;
  }

  /** Keys currently handed to workers. */
  get processing(): number {
    return this.#processing.size;
  }

  add(key: K): void {
    if (this.#shutdown) return;
    const w = this.#waiting.get(key);
    if (w) {
      w.timer.cancel();
      this.#waiting.delete(key);
    }
    if (this.#dirty.has(key)) return;
    this.#dirty.set(key, this.#clock.now());
    this.#metrics?.adds.inc({ name: this.name });
    if (this.#processing.has(key)) return;
    this.#pushReady(key);
  }

  /** Make `key` ready after `ms`. If it is already pending, the earlier time wins. */
  addAfter(key: K, ms: number): void {
    if (this.#shutdown) return;
    if (!(ms > 0)) {
      this.add(key);
      return;
    }
    if (this.#dirty.has(key)) return; // already due now
    const readyAt = this.#clock.now() + ms;
    const w = this.#waiting.get(key);
    if (w) {
      if (w.readyAt <= readyAt) return;
      w.timer.cancel();
    }
    const timer = this.#clock.setTimeout(() => {
      if (this.#waiting.get(key)?.timer !== timer) return;
      this.#waiting.delete(key);
      this.add(key);
    }, ms);
    this.#waiting.set(key, { readyAt, timer });
  }

  /** Requeue after the key's next backoff delay, and not before `atLeastMs` (a server's Retry-After). */
  addRateLimited(key: K, atLeastMs = 0): void {
    if (this.#shutdown) return;
    this.#metrics?.retries.inc({ name: this.name });
    // The queue's policy has maxElapsedMs 0 by default; a policy that gives up stops requeueing.
    const delay = this.#backoff.next(key);
    if (delay !== undefined) this.addAfter(key, Math.max(delay, atLeastMs));
  }

  /** Reset the key's backoff (after a successful reconcile). */
  forget(key: K): void {
    this.#backoff.forget(key);
  }

  /** How many times the key has been rate-limited since the last forget(). */
  numRequeues(key: K): number {
    return this.#backoff.failures(key);
  }

  /** The earliest time `key` is scheduled for, if it waits on a timer (for tests and debugging). */
  readyAt(key: K): number | undefined {
    return this.#waiting.get(key)?.readyAt;
  }

  /** The next ready key, marked as processing; undefined once the queue is shut down. */
  get(): Promise<K | undefined> {
    if (this.#shutdown) return Promise.resolve(undefined);
    const key = this.#ready.shift();
    if (key !== undefined) return Promise.resolve(this.#take(key));
    return new Promise((resolve) => this.#getters.push(resolve));
  }

  /** Mark a key handed out by get() as finished. A re-add during processing makes it ready again. */
  done(key: K): void {
    const started = this.#processing.get(key);
    if (started === undefined) return;
    this.#processing.delete(key);
    this.#metrics?.workDuration.observe({ name: this.name }, (this.#clock.now() - started) / 1000);
    if (this.#dirty.has(key) && !this.#shutdown) this.#pushReady(key);
  }

  /** Stop handing out work: pending get() calls resolve undefined, timers are cancelled, later adds are
   * ignored. Keys being processed may still call done(). */
  shutdown(): void {
    if (this.#shutdown) return;
    this.#shutdown = true;
    for (const w of this.#waiting.values()) w.timer.cancel();
    this.#waiting.clear();
    for (const resolve of this.#getters.splice(0)) resolve(undefined);
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
  }

  #pushReady(key: K): void {
    const getter = this.#getters.shift();
    if (getter) {
      getter(this.#take(key));
      return;
    }
    this.#ready.push(key);
    this.#metrics?.depth.set({ name: this.name }, this.#ready.length);
  }

  #take(key: K): K {
    const now = this.#clock.now();
    const dueAt = this.#dirty.get(key) ?? now;
    this.#dirty.delete(key);
    this.#processing.set(key, now);
    if (this.#metrics) {
      this.#metrics.depth.set({ name: this.name }, this.#ready.length);
      this.#metrics.queueDuration.observe({ name: this.name }, (now - dueAt) / 1000);
    }
    return key;
  }

  #unfinishedSeconds(): number {
    const now = this.#clock.now();
    let total = 0;
    for (const started of this.#processing.values()) total += now - started;
    return total / 1000;
  }

  #longestRunningSeconds(): number {
    const now = this.#clock.now();
    let longest = 0;
    for (const started of this.#processing.values()) longest = Math.max(longest, now - started);
    return longest / 1000;
  }
}
