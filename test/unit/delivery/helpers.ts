import type { KubeObject } from '../../../src/k8s/types.ts';
import { createStore, type Store } from '../../../src/runtime/store.ts';

/** A synced informer store holding exactly `items`. */
export function storeOf<T extends KubeObject>(...items: T[]): Store<T> {
  const { store, writer } = createStore<T>();
  writer.apply({ type: 'init' });
  for (const object of items) writer.apply({ type: 'initApply', object });
  writer.apply({ type: 'initDone' });
  return store;
}
