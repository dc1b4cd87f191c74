// Remembers the resourceVersion of each destination Secret Ferry last wrote, so the watch event that
// write causes does not trigger another Vault read; anyone else's edit still does (drift healing).
const MAX_ENTRIES = 100_000;

export class OwnWrites {
  readonly #last = new Map<string, string>();

  record(namespace: string, name: string, resourceVersion: string): void {
    const key = `${namespace}/${name}`;
    this.#last.delete(key);
    if (this.#last.size >= MAX_ENTRIES) this.#last.delete(this.#last.keys().next().value as string);
    this.#last.set(key, resourceVersion);
  }

  isOwn(
    namespace: string | undefined,
    name: string | undefined,
    resourceVersion: string | undefined,
  ): boolean {
    return (
      resourceVersion !== undefined && this.#last.get(`${namespace ?? ''}/${name ?? ''}`) === resourceVersion
    );
  }
}
