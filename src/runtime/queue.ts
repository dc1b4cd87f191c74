// A keyed work queue with controller-runtime semantics:
// - a key is pending at most once (dedupe), with the earliest requested ready time;
// - a key handed out by get() is "processing" until done(); re-adds meanwhile are remembered and the
//   key becomes ready again only after done(), so no key is ever processed by two workers at once;
// - addRateLimited() delays by the key's exponential backoff, forget() resets it.
// Delayed keys wait in a min-heap of due times under one timer on the injected Clock (client-go's
// delaying queue does the same): a timer per key cost ~600 bytes each, one per resource with a refresh.

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
  /** Keys waiting to become ready, at the earliest requested time. */
  readonly #waiting = new Map<K, number>();
  /** Due times of #waiting as a binary min-heap; an entry whose time is not its key's #waiting time
   * any more is stale and skipped when it comes out. */
  #heap: Delayed<K>[] = [];
  /** The one timer, armed for #timerAt (the heap's earliest entry when it was set). */
  #timer: Timer | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
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
    if (this.#waiting.delete(key) && this.#waiting.size === 0) this.#clearDelayed();
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
    if (w !== undefined && w <= readyAt) return;
    this.#waiting.set(key, readyAt);
    // Superseded entries stay in the heap until they come out; rebuild before they outnumber the live.
    if (this.#heap.length >= 2 * this.#waiting.size + 64) this.#rebuildHeap();
    else heapPush(this.#heap, { key, at: readyAt });
    this.#arm();
  }

  /** Requeue after the key's next backoff delay. */
  addRateLimited(key: K): void {
    if (this.#shutdown) return;
    this.#metrics?.retries.inc({ name: this.name });
    // The queue's policy has maxElapsedMs 0 by default; a policy that gives up stops requeueing.
    const delay = this.#backoff.next(key);
    if (delay !== undefined) this.addAfter(key, delay);
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
    return this.#waiting.get(key);
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
    this.#waiting.clear();
    this.#clearDelayed();
    for (const resolve of this.#getters.splice(0)) resolve(undefined);
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
  }

  /** Moves every key whose time has come to ready, then sets the timer for the next. */
  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    for (let top = this.#heap[0]; top && top.at <= now; top = this.#heap[0]) {
      heapPop(this.#heap);
      if (this.#waiting.get(top.key) !== top.at) continue; // superseded or already added
      this.#waiting.delete(top.key);
      this.add(top.key);
    }
    if (this.#waiting.size === 0) this.#heap = [];
    this.#arm();
  }

  /** (Re)sets the timer when the heap's earliest entry is earlier than the timer. */
  #arm(): void {
    const top = this.#heap[0];
    if (!top || top.at >= this.#timerAt) return;
    this.#timer?.cancel();
    this.#timerAt = top.at;
    this.#timer = this.#clock.setTimeout(() => this.#fire(), top.at - this.#clock.now());
  }

  #rebuildHeap(): void {
    this.#heap = [];
    for (const [key, at] of this.#waiting) heapPush(this.#heap, { key, at });
  }

  #clearDelayed(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    this.#heap = [];
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

interface Delayed<K> {
  key: K;
  at: number;
}

function heapPush<K>(h: Delayed<K>[], e: Delayed<K>): void {
  let i = h.push(e) - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const p = h[parent] as Delayed<K>;
    if (p.at <= e.at) break;
    h[i] = p;
    i = parent;
  }
  h[i] = e;
}

function heapPop<K>(h: Delayed<K>[]): void {
  const last = h.pop();
  if (last === undefined || h.length === 0) return;
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= h.length) break;
    const r = l + 1;
    const c = r < h.length && (h[r] as Delayed<K>).at < (h[l] as Delayed<K>).at ? r : l;
    const child = h[c] as Delayed<K>;
    if (child.at >= last.at) break;
    h[i] = child;
    i = c;
  }
  h[i] = last;
}
