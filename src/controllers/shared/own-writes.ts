// Remembers the resourceVersion of each destination Secret Ferry last wrote, so the watch event that
// write causes does not trigger another Vault read; anyone else's edit still does (drift healing).
// The watch event can arrive before the write's own response: so a write in flight is remembered by
// the resourceVersion it replaces (the update is guarded by it), and an update event from exactly
// that version counts as Ferry's. Were it someone else's, Ferry's guarded write fails with a
// conflict and its reconcile is retried, reading Vault and the Secret again.
import { objectKey } from '../../runtime/store.ts';

const MAX_ENTRIES = 100_000;

export class OwnWrites {
  readonly #last = new Map<string, string>();
  readonly #replacing = new Map<string, string>();

  /** Ferry is about to replace this Secret at `resourceVersion`. */
  expect(namespace: string, name: string, resourceVersion: string | undefined): void {
    const key = objectKey(namespace, name);
    if (resourceVersion === undefined) this.#replacing.delete(key);
    else remember(this.#replacing, key, resourceVersion);
  }

  record(namespace: string, name: string, resourceVersion: string): void {
    const key = objectKey(namespace, name);
    this.#replacing.delete(key);
    remember(this.#last, key, resourceVersion);
  }

  isOwn(
    namespace: string | undefined,
    name: string | undefined,
    resourceVersion: string | undefined,
    oldResourceVersion?: string,
  ): boolean {
    const key = objectKey(namespace, name ?? '');
    if (resourceVersion !== undefined && this.#last.get(key) === resourceVersion) return true;
    return oldResourceVersion !== undefined && this.#replacing.get(key) === oldResourceVersion;
  }
}

function remember(map: Map<string, string>, key: string, value: string): void {
  map.delete(key);
  if (map.size >= MAX_ENTRIES) map.delete(map.keys().next().value as string);
  map.set(key, value);
}
