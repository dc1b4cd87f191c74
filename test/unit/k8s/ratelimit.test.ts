// The API client's token bucket (--kube-client-qps/--kube-client-burst), on an injected clock.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseRateLimit, TokenBucket } from '../../../src/k8s/ratelimit.ts';
import { FakeClock } from '../runtime/fake-clock.ts';

const limit = fc.record({
  qps: fc.double({ min: 0.1, max: 500, noNaN: true }),
  burst: fc.integer({ min: 1, max: 50 }),
});
// Gaps between arrivals (ms), so arrival times never go backwards.
const gaps = fc.array(fc.integer({ min: 0, max: 2000 }), { minLength: 1, maxLength: 200 });

/** Send times of requests arriving after the given gaps. */
function admit(l: { qps: number; burst: number }, arrivalGaps: number[]): { arrive: number; send: number }[] {
  const clock = new FakeClock(0);
  const bucket = new TokenBucket(l, clock);
  return arrivalGaps.map((gap) => {
    clock.advance(gap);
    const wait = bucket.reserve();
    return { arrive: clock.now(), send: clock.now() + wait };
  });
}

describe('TokenBucket', () => {
  it('never admits more than burst + qps·Δt requests in any window', () => {
    fc.assert(
      fc.property(limit, gaps, (l, g) => {
        const sends = admit(l, g).map((r) => r.send);
        for (let i = 0; i < sends.length; i++) {
          for (let j = i; j < sends.length; j++) {
            const window = sends[j]! - sends[i]!;
            // +1 ms of rounding slack per request for the ceil of each wait.
            const allowed = l.burst + ((window + (j - i + 1)) * l.qps) / 1000;
            assert.ok(
              j - i + 1 <= allowed + 1e-9,
              `${j - i + 1} requests in ${window} ms, allowed ${allowed}`,
            );
          }
        }
      }),
    );
  });

  it('admits in arrival order, never before arrival, and without delay while tokens remain', () => {
    fc.assert(
      fc.property(limit, gaps, (l, g) => {
        const rs = admit(l, g);
        for (let i = 0; i < rs.length; i++) {
          assert.ok(rs[i]!.send >= rs[i]!.arrive);
          if (i > 0) assert.ok(rs[i]!.send >= rs[i - 1]!.send);
        }
        // The first `burst` requests of a fresh bucket arriving together all go at once.
        const together = admit(
          l,
          Array.from({ length: l.burst }, () => 0),
        );
        assert.ok(together.every((r) => r.send === r.arrive));
      }),
    );
  });

  it('refills to at most burst after a quiet spell', () => {
    fc.assert(
      fc.property(limit, fc.integer({ min: 0, max: 1e7 }), (l, idle) => {
        const rs = admit(l, [idle, ...Array.from({ length: l.burst + 1 }, () => 0)]);
        // burst + 1 requests in the same instant: the last one waits for a refill.
        assert.ok(rs.slice(0, l.burst).every((r) => r.send === r.arrive));
        assert.ok(rs[l.burst]!.send > rs[l.burst]!.arrive);
      }),
    );
  });

  it('acquire waits on the clock and gives the token back when aborted', async () => {
    const clock = new FakeClock(0);
    const bucket = new TokenBucket({ qps: 1, burst: 1 }, clock);
    assert.equal(await bucket.acquire(), true);
    let done = false;
    const waiting = bucket.acquire().then((ok) => {
      done = ok;
    });
    await Promise.resolve();
    assert.equal(done, false);
    clock.advance(1000);
    await waiting;
    assert.equal(done, true);
    // Bucket empty again: an aborted waiter returns its reservation, so the next one waits 1 s, not 2.
    const ac = new AbortController();
    const aborted = bucket.acquire(ac.signal);
    ac.abort();
    assert.equal(await aborted, false);
    assert.equal(bucket.reserve(), 1000);
  });
});

describe('parseRateLimit', () => {
  it('is off unless QPS is set, and defaults burst as client-go', () => {
    assert.equal(parseRateLimit(undefined, undefined), undefined);
    assert.equal(parseRateLimit('', '40'), undefined);
    assert.deepEqual(parseRateLimit('2.5', undefined), { qps: 2.5, burst: 10 });
    assert.deepEqual(parseRateLimit('50', '100'), { qps: 50, burst: 100 });
  });

  it('refuses nonsense with a config error', () => {
    for (const [q, b] of [
      ['x', '1'],
      ['-1', '1'],
      ['1', '2.5'],
      ['1', '-3'],
    ] as const) {
      assert.throws(() => parseRateLimit(q, b), { code: 'FERRY_ERR_INVALID_CONFIG' });
    }
  });
});
