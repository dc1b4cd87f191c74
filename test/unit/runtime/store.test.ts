import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { ConfigMap } from '../../../src/k8s/types.ts';
import { createStore } from '../../../src/runtime/store.ts';

function cm(name: string, v: string, extra: Partial<ConfigMap['metadata']> = {}): ConfigMap {
  return { metadata: { name, namespace: 'ns', resourceVersion: v, ...extra }, data: { v } };
}
const names = (objs: ConfigMap[]): string[] => objs.map((o) => o.metadata.name ?? '').sort();

describe('store', () => {
  it('is not ready until the first initDone, and waitUntilReady resolves then', async () => {
    const { store, writer } = createStore<ConfigMap>();
    let resolved = false;
    const waiting = store.waitUntilReady().then(() => {
      resolved = true;
    });
    writer.apply({ type: 'init' });
    writer.apply({ type: 'initApply', object: cm('a', '1') });
    await Promise.resolve();
    assert.equal(store.isReady(), false);
    assert.equal(resolved, false);
    writer.apply({ type: 'initDone' });
    await waiting;
    assert.equal(store.isReady(), true);
    await store.waitUntilReady(); // already ready: resolves at once
  });

  it('rejects waitUntilReady when the signal aborts', async () => {
    const { store } = createStore<ConfigMap>();
    const ac = new AbortController();
    const p = store.waitUntilReady(ac.signal);
    ac.abort(new Error('stop'));
    await assert.rejects(p, /stop/);
    await assert.rejects(store.waitUntilReady(ac.signal), /stop/);
  });

  it('keeps serving old contents during a relist and swaps atomically at initDone', () => {
    const { store, writer } = createStore<ConfigMap>();
    writer.apply({ type: 'init' });
    writer.apply({ type: 'initApply', object: cm('a', '1') });
    writer.apply({ type: 'initApply', object: cm('b', '1') });
    writer.apply({ type: 'initDone' });
    writer.apply({ type: 'init' });
    writer.apply({ type: 'initApply', object: cm('c', '2') });
    assert.deepEqual(names(store.list()), ['a', 'b'], 'old contents visible mid-relist');
    writer.apply({ type: 'initDone' });
    assert.deepEqual(names(store.list()), ['c'], 'a and b were deleted while disconnected');
    assert.equal(store.isReady(), true);
  });

  it('applies and deletes, keyed by namespace and name, and strips managedFields', () => {
    const { store, writer } = createStore<ConfigMap>();
    writer.apply({ type: 'apply', object: cm('a', '1', { managedFields: [{ manager: 'x' }] }) });
    writer.apply({ type: 'apply', object: { metadata: { name: 'a', namespace: 'other' } } });
    writer.apply({ type: 'apply', object: { metadata: { name: 'cluster' } } });
    assert.equal(store.get('ns', 'a')?.metadata.resourceVersion, '1');
    assert.equal(store.get('ns', 'a')?.metadata.managedFields, undefined);
    assert.ok(store.get('other', 'a'));
    assert.ok(store.get(undefined, 'cluster'));
    writer.apply({ type: 'delete', object: cm('a', '2') });
    assert.equal(store.get('ns', 'a'), undefined);
    assert.ok(store.get('other', 'a'));
    writer.apply({ type: 'delete', object: cm('never', '1') }); // unknown deletes are harmless
    assert.equal(store.list().length, 2);
  });

  it('runs the transform after stripping managedFields', () => {
    const { store, writer } = createStore<ConfigMap>({
      transform: (o) => {
        assert.equal(o.metadata.managedFields, undefined);
        const { data: _data, ...rest } = o;
        return rest;
      },
    });
    writer.apply({ type: 'apply', object: cm('a', '1', { managedFields: [] }) });
    assert.equal(store.get('ns', 'a')?.data, undefined);
  });

  it('maintains indexes across apply, delete and relist', () => {
    const { store, writer } = createStore<ConfigMap>({
      indexes: { byV: (o) => (o.data?.v ? [o.data.v] : []), all: () => ['*'] },
    });
    writer.apply({ type: 'apply', object: cm('a', 'x') });
    writer.apply({ type: 'apply', object: cm('b', 'x') });
    assert.deepEqual(names(store.byIndex('byV', 'x')), ['a', 'b']);
    writer.apply({ type: 'apply', object: cm('a', 'y') });
    assert.deepEqual(names(store.byIndex('byV', 'x')), ['b']);
    assert.deepEqual(names(store.byIndex('byV', 'y')), ['a']);
    writer.apply({ type: 'delete', object: cm('b', 'x') });
    assert.deepEqual(store.byIndex('byV', 'x'), []);
    writer.apply({ type: 'init' });
    writer.apply({ type: 'initApply', object: cm('c', 'y') });
    writer.apply({ type: 'initDone' });
    assert.deepEqual(names(store.byIndex('byV', 'y')), ['c']);
    assert.deepEqual(names(store.byIndex('all', '*')), ['c']);
    assert.deepEqual(store.byIndex('nope', 'y'), []);
  });

  // The world evolves; while connected every change reaches the store as apply/delete, while
  // disconnected changes are missed, and a relist (init, initApply*, initDone) shows the world as
  // it is. Whatever the interleaving, once connected the store equals the world.
  it('property: any interleaving of apply/delete/disconnect/relist converges to the world', () => {
    const name = fc.constantFrom('a', 'b', 'c', 'd', 'e');
    const op = fc.oneof(
      fc.record({ op: fc.constant('put' as const), name, v: fc.string({ maxLength: 3 }) }),
      fc.record({ op: fc.constant('del' as const), name }),
      fc.record({ op: fc.constant('disconnect' as const) }),
      fc.record({ op: fc.constant('relist' as const), pageBreak: fc.nat(5) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const world = new Map<string, ConfigMap>();
        const { store, writer } = createStore<ConfigMap>({ indexes: { v: (o) => [o.data?.v ?? ''] } });
        let rv = 0;
        let connected = false;
        const relist = (pageBreak = 0): void => {
          const before = store.list();
          writer.apply({ type: 'init' });
          let i = 0;
          for (const o of world.values()) {
            writer.apply({ type: 'initApply', object: o });
            // Readers never see a half-applied relist.
            if (++i === pageBreak) assert.deepEqual(store.list(), before);
          }
          writer.apply({ type: 'initDone' });
          connected = true;
        };
        const check = (): void => {
          assert.deepEqual(
            store
              .list()
              .map((o) => [o.metadata.name, o.metadata.resourceVersion])
              .sort(),
            [...world.values()].map((o) => [o.metadata.name, o.metadata.resourceVersion]).sort(),
          );
          for (const o of world.values()) {
            assert.ok(
              store
                .byIndex('v', o.data?.v ?? '')
                .includes(store.get('ns', o.metadata.name ?? '') as ConfigMap),
            );
          }
        };
        relist();
        for (const o of ops) {
          if (o.op === 'put') {
            const obj = cm(o.name, String(++rv), { managedFields: [] });
            obj.data = { v: o.v };
            world.set(o.name, obj);
            if (connected) writer.apply({ type: 'apply', object: obj });
          } else if (o.op === 'del') {
            const prev = world.get(o.name);
            world.delete(o.name);
            if (prev && connected) writer.apply({ type: 'delete', object: prev });
          } else if (o.op === 'disconnect') {
            connected = false;
          } else {
            relist(o.pageBreak);
          }
          if (connected) check();
        }
        relist();
        check();
      }),
      { numRuns: 300 },
    );
  });
});

describe('store interning', () => {
  it('leaves objects equal, adds no fields, and never touches data', () => {
    const { store, writer } = createStore<ConfigMap & { status?: unknown }>();
    const obj = {
      ...cm('a', '1', {
        labels: { team: 'x' },
        ownerReferences: [{ apiVersion: 'v1', kind: 'K', name: 'o', uid: 'u' }],
      }),
      status: {
        conditions: [{ type: 'Ready', status: 'True', reason: 'Synced' }],
        vaultClientMeta: { cacheKey: 'kubernetes-0123', id: 'c1' },
      },
    };
    const copy = structuredClone(obj);
    writer.apply({ type: 'apply', object: obj });
    assert.deepEqual(store.get('ns', 'a'), copy);
  });
});
