import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keptItems, planRepublish, type RepublishInput } from '../../../src/csi/plan.ts';
import type { Grant } from '../../../src/csi/publisher.ts';
import type { VolumeRecord } from '../../../src/csi/state.ts';

const source = { namespace: 'app', name: 'db', uid: 'u1', generation: 3 };
const grant = (over: Partial<Grant['csiSecrets']> = {}) => ({ csiSecrets: { ...source, ...over } }) as Grant;
const prev = {
  volumeId: 'v1',
  fingerprint: 'fp',
  fetchedAt: 1_000,
  grant: grant(),
  items: [
    { ref: { kind: 'static', index: 0 }, names: ['kv'] },
    { ref: { kind: 'dynamic', index: 0 }, names: ['db'] },
    { ref: { kind: 'approle', index: 0 }, names: ['id'] },
  ],
} as Pick<VolumeRecord, 'volumeId' | 'fingerprint' | 'fetchedAt' | 'grant' | 'items'>;
const steady: RepublishInput = {
  prev,
  volumeId: 'v1',
  fingerprint: 'fp',
  mounted: true,
  cached: { uid: 'u1', generation: 3 },
  nowMs: 2_000,
  refreshIntervalMs: 60_000,
};

describe('planRepublish', () => {
  it('decides conflict, skip or publish', () => {
    const cases: [Partial<RepublishInput>, ReturnType<typeof planRepublish>][] = [
      [{}, { action: 'skip' }],
      [{ prev: undefined }, { action: 'publish', samePublish: false }],
      [{ volumeId: 'v2' }, { action: 'conflict' }],
      [{ fingerprint: 'other' }, { action: 'publish', samePublish: false }],
      [{ mounted: false }, { action: 'publish', samePublish: false }],
      [{ nowMs: 61_000 }, { action: 'publish', samePublish: true }],
      [{ refreshIntervalMs: 0 }, { action: 'skip' }],
      [{ cached: { uid: 'u1', generation: 4 } }, { action: 'publish', samePublish: true }],
      [{ cached: undefined }, { action: 'publish', samePublish: true }],
    ];
    for (const [over, plan] of cases)
      assert.deepEqual(planRepublish({ ...steady, ...over }), plan, JSON.stringify(over));
  });
});

describe('keptItems', () => {
  it('keeps the held kinds of the same publish of the same CSISecrets generation only', () => {
    assert.deepEqual(
      keptItems(prev, true, grant()).map((i) => i.ref.kind),
      ['dynamic', 'approle'],
    );
    assert.deepEqual(keptItems(prev, false, grant()), []);
    assert.deepEqual(keptItems(prev, true, grant({ generation: 4 })), []);
    assert.deepEqual(keptItems(undefined, true, grant()), []);
  });
});
