// Client-side rate limit of API requests (--kube-client-qps/--kube-client-burst, as client-go's
// token bucket): the bucket holds at most `burst` tokens and refills at `qps` per second; each
// request takes one. A request that finds the bucket empty reserves the next token ahead of time and
// waits until then, so requests are admitted in arrival order and the long-run rate never exceeds
// qps. A waiter that gives up returns its reservation.
import { type Clock, sleep } from '../clock.ts';
import { CODES, FerryError } from '../errors.ts';

export interface RateLimit {
  qps: number;
  burst: number;
}

/** client-go's burst when only QPS is given. */
export const DEFAULT_BURST = 10;

/** The limit of the --kube-client-qps/--kube-client-burst values; undefined: no client-side limit
 * (controller-runtime's default, which leaves throttling to the API server's Priority and Fairness). */
export function parseRateLimit(qps: string | undefined, burst: string | undefined): RateLimit | undefined {
  const q = qps === undefined || qps === '' ? 0 : Number(qps);
  const b = burst === undefined || burst === '' ? 0 : Number(burst);
  if (!Number.isFinite(q) || q < 0) {
    throw new FerryError(
      CODES.INVALID_CONFIG,
      `invalid kube client QPS ${JSON.stringify(qps)}: want a number >= 0`,
    );
  }
  if (!Number.isInteger(b) || b < 0) {
    throw new FerryError(
      CODES.INVALID_CONFIG,
      `invalid kube client burst ${JSON.stringify(burst)}: want an integer >= 0`,
    );
  }
  if (q === 0) return undefined;
  return { qps: q, burst: b === 0 ? DEFAULT_BURST : b };
}

export class TokenBucket {
  readonly #qps: number;
  readonly #burst: number;
  readonly #clock: Clock;
  /** Tokens at #at; negative while requests hold reservations on future tokens. */
  #tokens: number;
  #at: number;

  constructor(limit: RateLimit, clock: Clock) {
    this.#qps = limit.qps;
    this.#burst = limit.burst;
    this.#clock = clock;
    this.#tokens = limit.burst;
    this.#at = clock.now();
  }

  /** Takes a token now, or reserves the next one: the milliseconds to wait before using it (0: go). */
  reserve(): number {
    const now = this.#clock.now();
    if (now > this.#at) {
      this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) * this.#qps) / 1000);
      this.#at = now;
    }
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens * 1000) / this.#qps);
  }

  /** Gives back a reservation that was not used. */
  cancel(): void {
    this.#tokens = Math.min(this.#burst, this.#tokens + 1);
  }

  /** Resolves when the caller may send; returns false (token given back) if `signal` aborted first. */
  async acquire(signal?: AbortSignal): Promise<boolean> {
    const wait = this.reserve();
    if (wait === 0) return true;
    await sleep(this.#clock, wait, signal ?? new AbortController().signal);
    if (signal?.aborted) {
      this.cancel();
      return false;
    }
    return true;
  }
}
