import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type BackoffPolicy,
  CONTROLLER_RUNTIME_BACKOFF,
  delayAfter,
  intervalFor,
  jitterDown,
  jitterDownBy,
  jitterUp,
  KeyedBackoff,
  randomDelay,
  VAULT_RELOGIN_BACKOFF,
  VSO_SOURCE_BACKOFF,
  validateBackoffPolicy,
  WATCH_BACKOFF,
} from '../../src/backoff.ts';
import { FakeClock, seqRandom } from './runtime/fake-clock.ts';

const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const duration = fc.double({ min: 0, max: 1e9, noNaN: true });

describe('policies', () => {
  it('controller-runtime: 5 ms doubling, capped at 1000 s', () => {
    assert.deepEqual(
      [0, 1, 2, 3].map((n) => intervalFor(CONTROLLER_RUNTIME_BACKOFF, n)),
      [5, 10, 20, 40],
    );
    assert.equal(intervalFor(CONTROLLER_RUNTIME_BACKOFF, 30), 1_000_000);
    assert.equal(intervalFor(CONTROLLER_RUNTIME_BACKOFF, 1e9), 1_000_000);
  });

  it('VSO: 5 s × 1.5 up to 60 s, as cenkalti/backoff', () => {
    const seq = Array.from({ length: 9 }, (_, n) => intervalFor(VSO_SOURCE_BACKOFF, n));
    assert.deepEqual(seq.slice(0, 4), [5000, 7500, 11250, 16875]);
    assert.equal(seq[7], 60_000);
    assert.equal(seq[8], 60_000);
  });

  it('VSO spread: delay within interval ± 50 %', () => {
    fc.assert(
      fc.property(fc.array(unit, { minLength: 1, maxLength: 30 }), (rs) => {
        const b = new KeyedBackoff<string>(VSO_SOURCE_BACKOFF, {
          clock: new FakeClock(),
          random: seqRandom(rs),
        });
        for (let n = 0; n < rs.length; n++) {
          const i = intervalFor(VSO_SOURCE_BACKOFF, n);
          const d = b.next('k');
          assert.ok(d !== undefined && d >= i * 0.5 && d <= i * 1.5, `${d} vs ${i}`);
        }
      }),
    );
  });

  it('maxElapsedMs stops retries; forget restarts the clock', () => {
    const clock = new FakeClock();
    const p: BackoffPolicy = { ...VSO_SOURCE_BACKOFF, maxElapsedMs: 10_000 };
    const b = new KeyedBackoff<string>(p, { clock, random: () => 0.5 });
    assert.equal(b.next('k'), 5000);
    clock.advance(10_001);
    assert.equal(b.next('k'), undefined);
    b.forget('k');
    assert.equal(b.next('k'), 5000);
  });

  it('rejects policies that could shrink delays', () => {
    assert.throws(
      () => validateBackoffPolicy({ ...CONTROLLER_RUNTIME_BACKOFF, multiplier: 1.05 }),
      RangeError,
    );
    assert.throws(() => validateBackoffPolicy({ ...CONTROLLER_RUNTIME_BACKOFF, initialMs: 0 }), RangeError);
  });
});

describe('KeyedBackoff (property)', () => {
  it("'up' delays are monotonic non-decreasing until forget, capped, and reset by forget", () => {
    fc.assert(
      fc.property(fc.array(unit, { minLength: 1, maxLength: 60 }), fc.nat({ max: 59 }), (rs, forgetAt) => {
        const b = new KeyedBackoff<string>(CONTROLLER_RUNTIME_BACKOFF, {
          clock: new FakeClock(),
          random: seqRandom(rs),
        });
        let prev = 0;
        for (let n = 0; n < rs.length; n++) {
          if (n === forgetAt) {
            b.forget('k');
            prev = 0;
          }
          const d = b.next('k');
          assert.ok(d !== undefined);
          assert.ok(d >= prev, `delay decreased: ${prev} → ${d}`);
          assert.ok(d <= CONTROLLER_RUNTIME_BACKOFF.maxMs);
          assert.ok(d >= CONTROLLER_RUNTIME_BACKOFF.initialMs);
          prev = d;
        }
        b.forget('k');
        assert.equal(b.failures('k'), 0);
      }),
    );
  });

  it('keys are independent', () => {
    const b = new KeyedBackoff<string>(CONTROLLER_RUNTIME_BACKOFF, {
      clock: new FakeClock(),
      random: () => 0,
    });
    b.next('a');
    b.next('a');
    assert.equal(b.next('b'), 5);
    assert.equal(b.failures('a'), 2);
  });
});

describe("'down' policies (Vault re-login, watcher)", () => {
  for (const [name, p] of [
    ['VAULT_RELOGIN_BACKOFF', VAULT_RELOGIN_BACKOFF],
    ['WATCH_BACKOFF', WATCH_BACKOFF],
  ] as const) {
    it(`${name}: each delay within [interval/2, interval], the interval doubling to maxMs`, () => {
      validateBackoffPolicy(p);
      fc.assert(
        fc.property(fc.nat({ max: 2000 }), unit, (failures, r) => {
          const interval = Math.min(p.maxMs, p.initialMs * 2 ** failures);
          assert.equal(intervalFor(p, failures), interval);
          const d = delayAfter(p, failures, () => r);
          assert.ok(d >= interval / 2 && d <= interval, `${d} outside [${interval / 2}, ${interval}]`);
          assert.ok(d <= p.maxMs);
        }),
      );
    });
  }

  it('a later delay is never shorter than half an earlier one, whatever the draws', () => {
    fc.assert(
      fc.property(fc.array(unit, { minLength: 2, maxLength: 40 }), (rs) => {
        const ds = rs.map((r, n) => delayAfter(VAULT_RELOGIN_BACKOFF, n, () => r));
        for (let n = 1; n < ds.length; n++) {
          for (let m = 0; m < n; m++) assert.ok(ds[n]! >= ds[m]! / 2, `${ds[m]} then ${ds[n]}`);
        }
      }),
    );
  });
});

describe('jitter helpers', () => {
  it('jitterDown stays within (0.8d, 0.9d]', () => {
    fc.assert(
      fc.property(duration, unit, (d, r) => {
        const v = jitterDown(d, () => r);
        const eps = 1e-9 * Math.max(1, d); // float rounding grows with d
        assert.ok(v <= 0.9 * d + eps && v > 0.8 * d - eps);
      }),
    );
    assert.equal(
      jitterDown(1000, () => 0),
      900,
    );
  });

  it('jitterDownBy, jitterUp and randomDelay bounds', () => {
    fc.assert(
      fc.property(duration, unit, fc.double({ min: 0, max: 2, noNaN: true }), (d, r, f) => {
        const down = jitterDownBy(d, f, () => r);
        assert.ok(down <= d && down >= d - f * d - 1e-6);
        const up = jitterUp(d, f, () => r);
        assert.ok(up >= d && up <= d + f * d + 1e-6);
        const rd = randomDelay(d, () => r);
        assert.ok(rd >= 0 && rd <= d);
      }),
    );
  });
});
