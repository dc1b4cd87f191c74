// Orphan revocations are bounded: a record whose revocation keeps failing is given up after
// maxAttempts passes, logged and counted, and no longer persisted or retried.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { Revocations } from '../../../src/csi/revocations.ts';
import type { Held } from '../../../src/csi/secrets.ts';
import type { OrphanRecord } from '../../../src/csi/state.ts';
import type { Task } from '../../../src/runtime/tasks.ts';
import { testGrant } from './grant.ts';

const lease = (id: string): Held => ({
  kind: 'lease',
  leaseId: id,
  clientId: 'c',
  durationS: 60,
  renewable: true,
  renewalPercent: 67,
  startedAtMs: 0,
  revoke: true,
});

describe('Revocations', () => {
  it('gives a failing record up after maxAttempts passes; others are revoked', async () => {
    const pending: Task[] = [];
    const saved: OrphanRecord[][] = [];
    let abandoned = 0;
    let revoked = 0;
    const r = new Revocations({
      release: async (_g, who) => {
        if (who === 'pod a/bad') throw new Error('vault refuses');
      },
      state: { saveOrphans: async (o) => void saved.push(structuredClone(o)) },
      tasks: { schedule: (_key, task) => void pending.push(task) },
      random: () => 0.5,
      log: pino({ level: 'silent' }),
      onRevoked: (n) => {
        revoked += n;
      },
      onAbandoned: (n) => {
        abandoned += n;
      },
      maxAttempts: 3,
    });
    await r.add(testGrant(1, {}), 'pod a/bad', [lease('l1'), lease('l2')]);
    await r.add(testGrant(1, {}), 'pod a/good', [lease('l3')]);
    for (let pass = 0; pass < 10 && pending.length > 0; pass++) {
      const task = pending.shift() as Task;
      await task(new AbortController().signal);
    }
    assert.equal(pending.length, 0, 'no more passes scheduled');
    assert.equal(revoked, 1);
    assert.equal(abandoned, 2);
    assert.equal(r.pending, 0);
    assert.deepEqual(saved.at(-1), []);
    assert.ok(
      saved.some((s) => s.some((o) => o.attempts === 2)),
      'attempts are persisted',
    );
  });
});
