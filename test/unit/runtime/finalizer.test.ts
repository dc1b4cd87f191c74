import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject } from '../../../src/k8s/types.ts';
import {
  addFinalizerPatch,
  type JsonPatchOp,
  reconcileWithFinalizer,
  removeFinalizerPatch,
} from '../../../src/runtime/finalizer.ts';

const F = 'vaultstaticsecret.secrets.hashicorp.com/finalizer';
const o = (finalizers?: string[], deleting = false): KubeObject => ({
  metadata: {
    name: 'x',
    namespace: 'ns',
    ...(finalizers ? { finalizers } : {}),
    ...(deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
  },
});

/** Applies test/add/remove to metadata.finalizers like the apiserver (enough for these tests). */
function applyPatch(obj: KubeObject, ops: JsonPatchOp[]): KubeObject {
  let list = obj.metadata.finalizers ? [...obj.metadata.finalizers] : undefined;
  for (const op of ops) {
    const idx = op.path.split('/')[3];
    if (op.op === 'test') {
      const actual = idx === undefined ? (list ?? null) : list?.[Number(idx)];
      assert.deepEqual(actual, op.value, 'test op failed');
    } else if (op.op === 'add') {
      if (idx === '-') list = [...(list ?? []), op.value as string];
      else list = op.value as string[];
    } else list?.splice(Number(idx), 1);
  }
  return { metadata: { ...obj.metadata, ...(list ? { finalizers: list } : {}) } };
}

describe('finalizer patches', () => {
  it('add: creates the list guarded by test null, or appends guarded by the current list', () => {
    assert.deepEqual(addFinalizerPatch(o(), F), [
      { op: 'test', path: '/metadata/finalizers', value: null },
      { op: 'add', path: '/metadata/finalizers', value: [F] },
    ]);
    assert.deepEqual(addFinalizerPatch(o(['other']), F), [
      { op: 'test', path: '/metadata/finalizers', value: ['other'] },
      { op: 'add', path: '/metadata/finalizers/-', value: F },
    ]);
    assert.equal(addFinalizerPatch(o([F]), F), undefined, 'idempotent');
  });

  it('remove: index-based, each guarded by a test, all duplicates, highest index first', () => {
    assert.deepEqual(removeFinalizerPatch(o(['a', F, 'b', F]), F), [
      { op: 'test', path: '/metadata/finalizers/3', value: F },
      { op: 'remove', path: '/metadata/finalizers/3' },
      { op: 'test', path: '/metadata/finalizers/1', value: F },
      { op: 'remove', path: '/metadata/finalizers/1' },
    ]);
    const patched = applyPatch(o(['a', F, 'b', F]), removeFinalizerPatch(o(['a', F, 'b', F]), F) ?? []);
    assert.deepEqual(patched.metadata.finalizers, ['a', 'b']);
    assert.equal(removeFinalizerPatch(o(['a']), F), undefined, 'idempotent');
  });
});

describe('reconcileWithFinalizer', () => {
  function harness(obj: KubeObject, cleanupFails = false) {
    const log: string[] = [];
    let current = obj;
    const patch = async (ops: JsonPatchOp[]) => {
      log.push(`patch:${ops.map((x) => x.op).join(',')}`);
      current = applyPatch(current, ops);
      return current;
    };
    const handlers = {
      apply: async (x: KubeObject) => {
        log.push(`apply:${x.metadata.finalizers?.join('|')}`);
        return { requeueAfterMs: 1000 };
      },
      cleanup: async () => {
        log.push('cleanup');
        if (cleanupFails) throw new Error('revoke failed');
        return { awaitChange: true as const };
      },
    };
    return { log, run: () => reconcileWithFinalizer(current, F, patch, handlers), get: () => current };
  }

  it('adds the finalizer before the first apply, then applies to the patched object', async () => {
    const h = harness(o());
    assert.deepEqual(await h.run(), { requeueAfterMs: 1000 });
    assert.deepEqual(h.log, ['patch:test,add', `apply:${F}`]);
    await h.run();
    assert.deepEqual(h.log.slice(2), [`apply:${F}`], 'no second patch');
  });

  it('under deletion: cleanup, then remove the finalizer', async () => {
    const h = harness(o(['keep', F], true));
    assert.deepEqual(await h.run(), { awaitChange: true });
    assert.deepEqual(h.log, ['cleanup', 'patch:test,remove']);
    assert.deepEqual(h.get().metadata.finalizers, ['keep']);
    await h.run();
    assert.equal(h.log.length, 2, 'nothing to do once our finalizer is gone');
  });

  it('keeps the finalizer when cleanup fails', async () => {
    const h = harness(o([F], true), true);
    await assert.rejects(h.run(), /revoke failed/);
    assert.deepEqual(h.log, ['cleanup']);
    assert.deepEqual(h.get().metadata.finalizers, [F]);
  });

  it('never applies or cleans up an object being deleted without our finalizer', async () => {
    const h = harness(o(['other'], true));
    assert.deepEqual(await h.run(), { awaitChange: true });
    assert.deepEqual(h.log, []);
  });
});
