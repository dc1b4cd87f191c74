// systemClock, found by the fuzz suite (test/fuzz/vault.test.ts): a delay past Node's 32-bit timer
// range fired at once, so a huge TTL from Vault became a renewal busy loop.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock } from '../../src/clock.ts';

test('a delay beyond 2^31-1 ms waits (at the cap) instead of firing at once', async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error): void => {
    warnings.push(w.name);
  };
  process.on('warning', onWarning);
  let fired = 0;
  const timers = [2 ** 31, 1e12 * 1000, Number.POSITIVE_INFINITY].map((ms) =>
    systemClock.setTimeout(() => fired++, ms),
  );
  await sleep(50);
  for (const t of timers) t.cancel();
  process.off('warning', onWarning);
  assert.equal(fired, 0);
  assert.deepEqual(warnings, []);
});
