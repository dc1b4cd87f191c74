// What published volumes held and no longer do (replaced leases and certificates, volumes torn
// down): recorded first (state.ts), so a restarted driver still revokes it, then revoked as work of
// the volume's target on the node service's queue (node.ts), retried with the upkeep backoff.
// Revocations never hold up kubelet: unpublish returns once they are recorded.
// No record is lost by a crash: a restarted driver takes over the records of the previous one before
// it records anything new (each save writes all of them, atomically), and an item recorded twice (a
// crash after recording it, before the volume record that also holds it was removed) is kept once.
// A record whose revocation failed `maxAttempts` times in a row is given up (logged, counted):
// Vault expires a lease at its TTL anyway, and a CSISecrets or VaultAuth deleted for good would
// otherwise keep it retrying for the life of the node.
import type { Logger } from 'pino';
import type { Clock, Random } from '../clock.ts';
import { errorMessage } from '../errors.ts';
import type { Grant } from './publisher.ts';
import { retryDelayMs } from './renewal.ts';
import { type Held, heldId } from './secrets.ts';
import type { OrphanRecord, StateStore } from './state.ts';

export interface RevocationsDeps {
  release(grant: Grant, who: string, held: Held[], signal?: AbortSignal): Promise<void>;
  state: Pick<StateStore, 'saveOrphans'>;
  /** Asks for a pass of `key` (a target path) at the time dueAt(key) says. */
  wake: (key: string) => void;
  clock: Clock;
  random: Random;
  log: Logger;
  /** Counts revoked items. */
  onRevoked: (n: number) => void;
  /** Counts items given up. */
  onAbandoned?: (n: number) => void;
  /** Failed passes after which a record is given up; default 10 (about 5 minutes of backoff). */
  maxAttempts?: number;
}

export const DEFAULT_MAX_REVOCATION_ATTEMPTS = 10;
/** The queue key of records an older driver wrote without their target. */
export const UNTARGETED = 'csi-revoke-orphans';

interface Pending {
  records: OrphanRecord[];
  /** Failed passes in a row, for the retry delay. */
  attempt: number;
  retryAt?: number;
}

export class Revocations {
  readonly #d: RevocationsDeps;
  readonly #byKey = new Map<string, Pending>();

  constructor(deps: RevocationsDeps) {
    this.#d = deps;
  }

  /** Items recorded and not yet revoked. */
  get pending(): number {
    return this.#all().reduce((n, o) => n + o.held.length, 0);
  }

  /** Records (one per volume or replacement) not yet revoked. */
  get records(): number {
    return this.#all().length;
  }

  #all(): OrphanRecord[] {
    return [...this.#byKey.values()].flatMap((p) => p.records);
  }

  /** Records `o` under `key` without the items already recorded; false when none is left. */
  #push(key: string, o: OrphanRecord): boolean {
    const recorded = new Set(this.#all().flatMap((r) => r.held.map(heldId)));
    const held = o.held.filter((h) => !recorded.has(heldId(h)));
    if (held.length === 0) return false;
    const p = this.#byKey.get(key) ?? { records: [], attempt: 0 };
    p.records.push(held.length === o.held.length ? o : { ...o, held });
    this.#byKey.set(key, p);
    return true;
  }

  /** Takes over what a previous process recorded: called before anything new is recorded, so the
   * first save keeps it. `start` schedules it. */
  resume(orphans: OrphanRecord[]): void {
    for (const o of orphans) this.#push(o.targetPath ?? UNTARGETED, o);
  }

  /** Schedules a pass of every target with records. */
  start(): void {
    for (const key of this.#byKey.keys()) this.#d.wake(key);
  }

  /** Records the held items that must be revoked (persisted first); a pass of the target follows. */
  async add(targetPath: string, grant: Grant, who: string, held: Held[]): Promise<void> {
    const due = held.filter((h) => h.revoke);
    if (!this.#push(targetPath, { targetPath, grant, who, held: due })) return;
    // New records go at once, as the first try of the earlier ones did.
    delete this.#byKey.get(targetPath)?.retryAt;
    await this.#save();
    this.#d.wake(targetPath);
  }

  /** When the records of `key` are to be revoked; undefined when there are none. */
  dueAt(key: string): number | undefined {
    const p = this.#byKey.get(key);
    return p ? (p.retryAt ?? this.#d.clock.now()) : undefined;
  }

  async #save(): Promise<void> {
    await this.#d.state
      .saveOrphans(this.#all())
      .catch((err: unknown) =>
        this.#d.log.warn({ err: errorMessage(err) }, 'could not record pending revocations'),
      );
  }

  /** One pass over the records of `key` when due (the queue never runs a key twice at once); an
   * item stays recorded until Vault has revoked it. */
  async run(key: string, signal?: AbortSignal): Promise<void> {
    const p = this.#byKey.get(key);
    if (!p || (p.retryAt ?? 0) > this.#d.clock.now()) return;
    let failed = false;
    for (const o of [...p.records]) {
      try {
        await this.#d.release(o.grant, o.who, o.held, signal);
        p.records = p.records.filter((x) => x !== o);
        this.#d.onRevoked(o.held.length);
      } catch (err) {
        o.attempts = (o.attempts ?? 0) + 1;
        if (o.attempts >= (this.#d.maxAttempts ?? DEFAULT_MAX_REVOCATION_ATTEMPTS)) {
          p.records = p.records.filter((x) => x !== o);
          this.#d.onAbandoned?.(o.held.length);
          this.#d.log.error(
            { err: errorMessage(err), pod: o.who, attempts: o.attempts, items: o.held.length },
            'revocation given up; Vault expires what is left at its TTL',
          );
          continue;
        }
        failed = true;
        this.#d.log.warn(
          { err: errorMessage(err), pod: o.who, attempt: o.attempts },
          'revocation failed; will retry',
        );
      }
    }
    if (p.records.length === 0) this.#byKey.delete(key);
    else if (failed) p.retryAt = this.#d.clock.now() + retryDelayMs(p.attempt++, this.#d.random);
    await this.#save();
  }
}
