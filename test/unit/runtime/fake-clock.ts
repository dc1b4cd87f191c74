// A manual clock for deterministic tests: time moves only through advance()/runAll(), and timers fire
// in due-time order (ties in creation order), each at its own due time.
import type { Clock, Random, Timer } from '../../../src/clock.ts';

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Set<Pending>();

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const t: Pending = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn };
    this.#timers.add(t);
    return { cancel: () => this.#timers.delete(t) };
  }

  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** The due time of the next timer, if any. */
  nextAt(): number | undefined {
    return this.#next()?.at;
  }

  /** Move time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (let t = this.#next(); t && t.at <= end; t = this.#next()) {
      this.#timers.delete(t);
      this.#now = Math.max(this.#now, t.at);
      t.fn();
    }
    this.#now = end;
  }

  /** Like advance(), but lets promise continuations run after every timer (async code under test). */
  async advanceAsync(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (let t = this.#next(); t && t.at <= end; t = this.#next()) {
      this.#timers.delete(t);
      this.#now = Math.max(this.#now, t.at);
      t.fn();
      await flush();
    }
    this.#now = end;
    await flush();
  }

  #next(): Pending | undefined {
    let best: Pending | undefined;
    for (const t of this.#timers)
      if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    return best;
  }
}

/** Let queued promise continuations run. */
export async function flush(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

/** A Random replaying `values` cyclically (fast-check supplies the values). */
export function seqRandom(values: readonly number[]): Random {
  let i = 0;
  return () => {
    const v = values.length === 0 ? 0 : (values[i % values.length] ?? 0);
    i++;
    return v;
  };
}
