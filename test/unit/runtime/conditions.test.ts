import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatTime } from '../../../src/clock.ts';
import { findCondition, setCondition } from '../../../src/runtime/conditions.ts';

const T1 = Date.parse('2026-01-01T00:00:00.123Z');
const T2 = Date.parse('2026-01-01T00:05:00Z');
const synced = { type: 'SecretSynced', status: 'True' as const, reason: 'Synced', message: 'ok' };

describe('setCondition', () => {
  it('adds a condition with second-precision time and observedGeneration', () => {
    const out = setCondition(undefined, synced, { now: T1, generation: 3 });
    assert.deepEqual(out, [{ ...synced, lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 3 }]);
  });

  it('keeps lastTransitionTime when the status does not flip, even if reason/message change', () => {
    const a = setCondition(undefined, synced, { now: T1, generation: 1 });
    const b = setCondition(a, { ...synced, message: 'still ok' }, { now: T2, generation: 2 });
    assert.equal(b[0]?.lastTransitionTime, formatTime(T1));
    assert.equal(b[0]?.message, 'still ok');
    assert.equal(b[0]?.observedGeneration, 2);
  });

  it('moves lastTransitionTime when the status flips', () => {
    const a = setCondition(undefined, synced, { now: T1 });
    const b = setCondition(a, { ...synced, status: 'False' }, { now: T2 });
    assert.equal(b[0]?.lastTransitionTime, '2026-01-01T00:05:00Z');
    assert.equal('observedGeneration' in (b[0] ?? {}), false);
  });

  it('dedupes by type, keeps other types and order, does not mutate the input', () => {
    const input = [
      { type: 'Healthy', status: 'True' as const, reason: 'Healthy', message: '', lastTransitionTime: 'x' },
      { ...synced, lastTransitionTime: 'y' },
      { ...synced, status: 'False' as const, lastTransitionTime: 'z' },
    ];
    const copy = structuredClone(input);
    const out = setCondition(input, synced, { now: T2 });
    assert.deepEqual(input, copy);
    assert.deepEqual(
      out.map((c) => c.type),
      ['Healthy', 'SecretSynced'],
    );
    assert.equal(findCondition(out, 'SecretSynced')?.lastTransitionTime, 'y');
  });
});
