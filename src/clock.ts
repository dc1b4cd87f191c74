// Base layer, importable from every layer (like errors.ts): time and randomness are injected
// wherever timing decisions are made, so that the queue, backoff and renewal horizons can be tested
// deterministically; formatTime is the one wire format of a timestamp.
export interface Clock {
  now(): number; // epoch milliseconds
  setTimeout(fn: () => void, ms: number): Timer;
}

export interface Timer {
  cancel(): void;
}

export type Random = () => number; // uniform in [0, 1)

/** Node fires a timer longer than this at once (TimeoutOverflowWarning), so a TTL from a hostile
 * Vault (`lease_duration: 1e12`) would renew in a tight loop. Longer waits wake at the cap instead,
 * where the caller decides again. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    t.unref?.();
    return { cancel: () => clearTimeout(t) };
  },
};

export const systemRandom: Random = Math.random;

/** Resolves after `ms` on `clock`, or at once when `signal` aborts. Never rejects. */
export function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = (): void => {
      timer.cancel();
      resolve();
    };
    const timer = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** metav1.Time serialises to whole seconds; writing milliseconds would make every status update look
 * like a change to clients that compare strings. */
export function formatTime(now: Date | number): string {
  return new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
