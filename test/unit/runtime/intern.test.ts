// The intern table of the stores: bounded whatever strings tenants choose, and transparent.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Interner } from '../../../src/runtime/intern.ts';

describe('Interner', () => {
  it('returns an equal string and never holds more than its bound', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 12 }), { maxLength: 200 }), (values) => {
        const t = new Interner(16, 8);
        for (const v of values) {
          assert.equal(t.intern(v), v);
          assert.ok(t.size <= 16);
        }
      }),
    );
  });

  it('keeps no string longer than its length bound', () => {
    const t = new Interner(16, 8);
    t.intern('x'.repeat(9));
    assert.equal(t.size, 0);
    t.intern('x'.repeat(8));
    assert.equal(t.size, 1);
  });

  it('starts over when full, so hostile values cannot pin it', () => {
    const t = new Interner(4, 64);
    for (let i = 0; i < 4; i++) t.intern(`junk-${i}`);
    assert.equal(t.size, 4);
    t.intern('ns-a');
    assert.equal(t.size, 1);
  });

  it('keeps no UID label value (unique per object), so they cannot crowd out shared values', () => {
    const t = new Interner();
    const labels = {
      'app.kubernetes.io/component': 'secret-sync',
      owner: 'a7c0f4a6-a679-4c92-ba61-ae9eece0b1ef',
    };
    t.internValues(labels);
    assert.equal(t.size, 1);
    assert.equal(labels.owner, 'a7c0f4a6-a679-4c92-ba61-ae9eece0b1ef');
  });

  it('interns map values in place, leaving keys and absent maps alone', () => {
    const t = new Interner();
    const labels = { 'app.kubernetes.io/name': 'web' };
    t.internValues(labels);
    t.internValues(undefined);
    assert.deepEqual(labels, { 'app.kubernetes.io/name': 'web' });
  });
});
