// Backoff policies are data; KeyedBackoff turns a policy into per-key delays. Every retry delay and
// every jittered horizon in Ferry is computed here, from an injected Random and Clock, so timing is
// deterministic under test. Base layer (beside clock.ts): the runtime's queues, the watcher, Vault
// sessions and the CSI upkeep all draw their delays from here.
import type { Clock, Random } from './clock.ts';
import { systemClock, systemRandom } from './clock.ts';

export interface BackoffPolicy {
  /** Interval for the first failure. */
  readonly initialMs: number;
  /** The un-jittered interval never grows past this. */
  readonly maxMs: number;
  readonly multiplier: number;
  /** Fraction of the interval used for randomisation (see `jitterMode`). */
  readonly jitter: number;
  /**
   * 'up': delay = min(maxMs, interval × (1 + jitter × r)). Delays never decrease until forget() and
   *       never exceed maxMs (requires multiplier ≥ 1 + jitter).
   * 'spread': delay = interval × (1 ± jitter × r), as cenkalti/backoff (and therefore VSO) does; a delay
   *       may exceed maxMs by the jitter fraction.
   * 'down': delay = interval × (1 − jitter × r): never above the interval (so never above maxMs), and
   *       with jitter 0.5 within [interval/2, interval], which spreads many clients retrying together.
   */
  readonly jitterMode: 'up' | 'spread' | 'down';
  /** Give up once this long has passed since the first failure; 0 retries forever. */
  readonly maxElapsedMs: number;
}

/** controller-runtime's per-item limiter (5 ms doubling to 1000 s), with up to 10 % upward jitter so
 * keys that failed together do not retry in lock-step. */
export const CONTROLLER_RUNTIME_BACKOFF: BackoffPolicy = Object.freeze({
  initialMs: 5,
  maxMs: 1_000_000,
  multiplier: 2,
  jitter: 0.1,
  jitterMode: 'up',
  maxElapsedMs: 0,
});

/** VSO's Vault source-error backoff (--backoff-* flag defaults, vso-api.md §12). */
export const VSO_SOURCE_BACKOFF: BackoffPolicy = Object.freeze({
  initialMs: 5_000,
  maxMs: 60_000,
  multiplier: 1.5,
  jitter: 0.5,
  jitterMode: 'spread',
  maxElapsedMs: 0,
});

/** Background tasks (runtime/tasks.ts) that fail: 2 s doubling to 60 s, as the client-cache
 * persistence retried its writes before it ran on the task queue. */
export const BACKGROUND_BACKOFF: BackoffPolicy = Object.freeze({
  initialMs: 2_000,
  maxMs: 60_000,
  multiplier: 2,
  jitter: 0,
  jitterMode: 'up',
  maxElapsedMs: 0,
});

/** The CSI driver's upkeep retries (csi/renewal.ts): 1 s doubling to 60 s, ±10 % jitter. */
export const CSI_UPKEEP_BACKOFF: BackoffPolicy = Object.freeze({
  initialMs: 1_000,
  maxMs: 60_000,
  multiplier: 2,
  jitter: 0.1,
  jitterMode: 'spread',
  maxElapsedMs: 0,
});

/** Background re-login of a Vault session (vault/session.ts) after a failed login: 1 s doubling to
 * 60 s, drawn from the upper half of the interval. */
export const VAULT_RELOGIN_BACKOFF: BackoffPolicy = Object.freeze({
  initialMs: 1_000,
  maxMs: 60_000,
  multiplier: 2,
  jitter: 0.5,
  jitterMode: 'down',
  maxElapsedMs: 0,
});

/** kube-rs's watcher DefaultBackoff (runtime/watcher.ts): 800 ms doubling to 30 s, drawn from the
 * upper half of the interval so watchers of a restarted apiserver do not reconnect together. */
export const WATCH_BACKOFF: BackoffPolicy = Object.freeze({
  initialMs: 800,
  maxMs: 30_000,
  multiplier: 2,
  jitter: 0.5,
  jitterMode: 'down',
  maxElapsedMs: 0,
});

export function validateBackoffPolicy(p: BackoffPolicy): void {
  const bad = (why: string) => new RangeError(`invalid backoff policy: ${why}`);
  if (!(p.initialMs > 0)) throw bad('initialMs must be > 0');
  if (!(p.maxMs >= p.initialMs)) throw bad('maxMs must be >= initialMs');
  if (!(p.multiplier >= 1)) throw bad('multiplier must be >= 1');
  if (!(p.jitter >= 0 && p.jitter <= 1)) throw bad('jitter must be within [0, 1]');
  if (p.jitterMode === 'up' && p.multiplier < 1 + p.jitter) {
    // Otherwise a high draw followed by a low one could shorten the next delay.
    throw bad("jitterMode 'up' needs multiplier >= 1 + jitter");
  }
  if (!(p.maxElapsedMs >= 0)) throw bad('maxElapsedMs must be >= 0');
}

/** The un-jittered interval after `failures` previous failures. */
export function intervalFor(p: BackoffPolicy, failures: number): number {
  // Computed in log space so that large failure counts neither overflow nor loop.
  const exp = Math.log(p.maxMs / p.initialMs) / Math.log(p.multiplier);
  if (p.multiplier === 1 || failures < exp) return Math.min(p.maxMs, p.initialMs * p.multiplier ** failures);
  return p.maxMs;
}

/** The delay for one draw `r` ∈ [0, 1) at a given un-jittered interval. */
export function jittered(p: BackoffPolicy, interval: number, r: number): number {
  if (p.jitterMode === 'up') return Math.min(p.maxMs, interval * (1 + p.jitter * r));
  if (p.jitterMode === 'down') return interval * (1 - p.jitter * r);
  const delta = p.jitter * interval;
  return interval - delta + r * 2 * delta;
}

/** The delay after `failures` previous failures, for a caller that keeps its own failure count. */
export function delayAfter(p: BackoffPolicy, failures: number, random: Random): number {
  return jittered(p, intervalFor(p, Math.max(0, failures)), random());
}

interface KeyState {
  failures: number;
  firstFailureAt: number;
  last: number;
}

/** Per-key backoff state. next() returns undefined once maxElapsedMs is exceeded (the caller then
 * stops retrying on its own and waits for a change). */
export class KeyedBackoff<K> {
  readonly policy: BackoffPolicy;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #state = new Map<K, KeyState>();

  constructor(policy: BackoffPolicy, opts: { clock?: Clock; random?: Random } = {}) {
    validateBackoffPolicy(policy);
    this.policy = policy;
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? systemRandom;
  }

  next(key: K): number | undefined {
    const now = this.#clock.now();
    let s = this.#state.get(key);
    if (!s) {
      s = { failures: 0, firstFailureAt: now, last: 0 };
      this.#state.set(key, s);
    }
    const p = this.policy;
    if (p.maxElapsedMs > 0 && now - s.firstFailureAt > p.maxElapsedMs) return undefined;
    const delay = jittered(p, intervalFor(p, s.failures), this.#random());
    s.failures++;
    // With 'up' jitter, the policy guarantees monotonicity; clamp anyway against float rounding.
    s.last = p.jitterMode === 'up' ? Math.max(s.last, delay) : delay;
    return s.last;
  }

  failures(key: K): number {
    return this.#state.get(key)?.failures ?? 0;
  }

  forget(key: K): void {
    this.#state.delete(key);
  }
}

// Jitter helpers. `random` is injected; every helper returns milliseconds.

/** VSO's generic horizon: d − 10 % − rand[0, 10 %), i.e. within (0.8d, 0.9d]. Requeueing a little early
 * keeps a refresh from landing after the thing it refreshes has expired. */
export function jitterDown(d: number, random: Random): number {
  return d - 0.1 * d - random() * 0.1 * d;
}

/** d − rand[0, fraction·d): used for the PKI horizon (5 %). */
export function jitterDownBy(d: number, fraction: number, random: Random): number {
  return d - random() * fraction * d;
}

/** d + rand[0, fraction·d): VDS renewal (+10 %), client-go wait.Jitter (leader election uses 1.2). */
export function jitterUp(d: number, fraction: number, random: Random): number {
  return d + random() * fraction * d;
}

/** A random delay in [0, maxMs): spreads enqueues (deletion ≤ 1 s, event watcher ≤ 2 s, static creds
 * ≤ 150 ms). */
export function randomDelay(maxMs: number, random: Random): number {
  return random() * maxMs;
}
