// One copy of each repeated short string in the stores. `JSON.parse` makes a new string for every
// value, so N objects hold N copies of their apiVersion, kind, namespace, label values,
// condition types and reasons and timestamps. The table is bounded (tenants choose these values):
// strings longer than `maxLength` are never kept, and a full table starts over, so the worst case is
// `maxEntries × maxLength` characters and a few extra copies after each start-over.
const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class Interner {
  readonly #table = new Map<string, string>();
  readonly #maxEntries: number;
  readonly #maxLength: number;

  constructor(maxEntries = 4096, maxLength = 128) {
    this.#maxEntries = maxEntries;
    this.#maxLength = maxLength;
  }

  get size(): number {
    return this.#table.size;
  }

  intern(s: string): string {
    if (s.length > this.#maxLength) return s;
    const kept = this.#table.get(s);
    if (kept !== undefined) return kept;
    if (this.#table.size >= this.#maxEntries) this.#table.clear();
    this.#table.set(s, s);
    return s;
  }

  /** Interns the values of a string map in place (labels, annotations); V8 already keeps one copy of
   * each property name. UIDs (a managed Secret's owner label) are unique per object: kept, they
   * filled the table at 4,096 secrets and made it start over again and again. */
  internValues(m: Record<string, string> | undefined): void {
    if (m === undefined) return;
    for (const k of Object.keys(m)) {
      const v = m[k] as string;
      if (!UID.test(v)) m[k] = this.intern(v);
    }
  }
}
