import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { withDeadline } from '../../../src/command/vault-login.ts';
import { FakeClock } from '../runtime/fake-clock.ts';

/** Settles only when its signal aborts, as a request to a Vault that never answers. */
const hang = (signal: AbortSignal): Promise<never> =>
  new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));

describe('ferry: deadlines of the Vault questions', () => {
  it('aborts a call that outlives the deadline, on the injected clock, with the reason', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 120_000 }), async (ms) => {
        const clock = new FakeClock();
        const run = withDeadline(clock, ms, new AbortController().signal, hang);
        clock.advance(ms - 1);
        let settled = false;
        void run
          .catch(() => {})
          .finally(() => {
            settled = true;
          });
        await new Promise((r) => setImmediate(r));
        assert.equal(settled, false, 'not before the deadline');
        clock.advance(1);
        await assert.rejects(run, new RegExp(`no answer from Vault in ${ms / 1000}s`));
      }),
      { numRuns: 30 },
    );
  });

  it('returns what the call returns, leaves no timer behind, and follows the caller abort', async () => {
    const clock = new FakeClock();
    assert.equal(await withDeadline(clock, 1000, new AbortController().signal, async () => 7), 7);
    assert.equal(clock.pendingTimers, 0);
    const stop = new AbortController();
    const run = withDeadline(clock, 1000, stop.signal, hang);
    stop.abort(new Error('interrupted'));
    await assert.rejects(run, /interrupted/);
    assert.equal(clock.pendingTimers, 0);
  });
});
