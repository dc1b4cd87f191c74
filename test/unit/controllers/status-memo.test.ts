import assert from 'node:assert/strict';
import { it } from 'node:test';
import { StatusMemo } from '../../../src/controllers/shared/status.ts';
import { FakeClock } from '../runtime/fake-clock.ts';

it('prefers the status it wrote until the cache shows it, or the memo expires', () => {
  const clock = new FakeClock();
  const memo = new StatusMemo<{ n: number }>(clock, 1000);
  const at = (rv: string, n: number) => ({ metadata: { uid: 'u', resourceVersion: rv }, status: { n } });
  assert.deepEqual(memo.current(at('10', 1)), { n: 1 });
  memo.record(at('10', 1), { n: 2 });
  assert.deepEqual(memo.current(at('10', 1)), { n: 2 }, 'stale cache: our write wins');
  assert.deepEqual(memo.current(at('9', 0)), { n: 2 }, 'an even older copy: our write still wins');
  assert.deepEqual(memo.current(at('11', 2)), { n: 2 }, 'the cache caught up');
  assert.deepEqual(memo.current(at('12', 3)), { n: 3 }, 'after catching up the cache is the truth');
  memo.record(at('12', 3), { n: 4 });
  clock.advance(1001);
  assert.deepEqual(memo.current(at('12', 3)), { n: 3 }, 'an expired memo gives way');
});
