// The resource budget of the render in progress. Rendering is synchronous, so one slot is enough:
// the executor installs its meter for the duration of a render, and the functions (Sprig, builtins)
// and the serializers deep inside fmt and json charge it through meter(), the one way in: a
// function's CallContext carries no budget of its own.

export interface Meter {
  /** Charges units of work against the step limit; also checks the deadline now and then. */
  charge(units: number): void;
  /**
   * Fails if a value of `bytes` more would exceed the allocation budget. Call it before building
   * a value whose size depends on arguments; the value is charged when the function returns it.
   */
  reserve(bytes: number): void;
}

/**
 * What one `+=` onto a long string costs beyond its characters: V8 links the two parts with a
 * 32-byte cons node. Loops that build a string piece by piece reserve it per piece.
 */
export const APPEND_BYTES = 32;

const UNMETERED: Meter = { charge() {}, reserve() {} };
let current: Meter = UNMETERED;

export const meter = (): Meter => current;

export function withMeter<T>(m: Meter, run: () => T): T {
  const previous = current;
  current = m;
  try {
    return run();
  } finally {
    current = previous;
  }
}
