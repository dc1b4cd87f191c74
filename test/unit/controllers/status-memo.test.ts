import assert from 'node:assert/strict';
import { it } from 'node:test';
import { StatusMemo } from '../../../src/controllers/shared/status.ts';

it('prefers the status it wrote while the cache still shows the version it patched', () => {
  const memo = new StatusMemo<{ n: number }>();
  const cached = { metadata: { uid: 'u', resourceVersion: '10' }, status: { n: 1 } };
  assert.deepEqual(memo.current(cached), { n: 1 });
  memo.record(cached, { n: 2 });
  assert.deepEqual(memo.current(cached), { n: 2 }, 'stale cache: our write wins');
  assert.deepEqual(
    memo.current({ ...cached, metadata: { uid: 'u', resourceVersion: '11' }, status: { n: 3 } }),
    { n: 3 },
    'newer object wins',
  );
  assert.deepEqual(memo.current({ metadata: { uid: 'other', resourceVersion: '10' }, status: { n: 4 } }), {
    n: 4,
  });
});
