import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OwnWrites } from '../../../src/controllers/shared/own-writes.ts';

describe('OwnWrites', () => {
  it("knows Ferry's write by the version it wrote, and by the version it replaces while in flight", () => {
    const w = new OwnWrites();
    assert.equal(w.isOwn('ns', 'd', '5', '4'), false);
    w.expect('ns', 'd', '4');
    // The watch event arrived before the write's response.
    assert.equal(w.isOwn('ns', 'd', '5', '4'), true);
    assert.equal(w.isOwn('ns', 'd', '6', '5'), false);
    w.record('ns', 'd', '5');
    assert.equal(w.isOwn('ns', 'd', '5', '4'), true);
    // Someone else's edit after Ferry's write.
    assert.equal(w.isOwn('ns', 'd', '6', '5'), false);
    assert.equal(w.isOwn('ns', 'other', '5', '4'), false);
  });
});
