import assert from 'node:assert/strict';
import { it } from 'node:test';
import { VaultStaticSecrets } from '../../../src/api/resources.ts';
import { StatusMemo, writeStatus } from '../../../src/controllers/shared/status.ts';
import type { KubeClient } from '../../../src/k8s/client.ts';
import { K8sApiError } from '../../../src/k8s/errors.ts';
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
  memo.record(at('12', 3), { n: 5 });
  memo.record(at('13', 5), { n: 5 });
  assert.deepEqual(memo.current(at('12', 3)), { n: 3 }, 'a status the cache showed is not kept');
});

it("a refused status update is a Warning StatusUpdateError Event (VSO's), then the error; a vanished object is neither", async () => {
  const events: { kind: string; reason: string; message: string }[] = [];
  let fail = new K8sApiError(422, 'Invalid', 'status.valid: Invalid value');
  const ctx = {
    client: {
      patch: async () => {
        throw fail;
      },
    } as unknown as KubeClient,
    events: {
      warning: async (obj: { kind: string }, reason: string, message: string) =>
        void events.push({ kind: obj.kind, reason, message }),
    },
  };
  const obj = { metadata: { name: 'a', namespace: 'ns', uid: 'u' }, status: { valid: false } };
  await assert.rejects(writeStatus(ctx, VaultStaticSecrets, obj, { valid: true }), fail);
  assert.deepEqual(events, [
    {
      kind: 'VaultStaticSecret',
      reason: 'StatusUpdateError',
      message: "Failed to update the resource's status: status.valid: Invalid value",
    },
  ]);
  fail = new K8sApiError(404, 'NotFound', 'gone');
  await writeStatus(ctx, VaultStaticSecrets, obj, { valid: true });
  assert.equal(events.length, 1);
});
