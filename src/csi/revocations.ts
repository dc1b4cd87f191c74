// What published volumes held and no longer do (replaced leases and certificates, volumes torn
// down): recorded first (state.ts), so a restarted driver still revokes it, then revoked in the
// background as one task that retries with the upkeep backoff. Revocations never hold up kubelet.
// A record whose revocation failed `maxAttempts` times in a row is given up (logged, counted):
// Vault expires a lease at its TTL anyway, and a CSISecrets or VaultAuth deleted for good would
// otherwise keep the task retrying for the life of the node.
import type { Logger } from 'pino';
import type { Random } from '../clock.ts';
import { errorMessage } from '../errors.ts';
import type { TaskScheduler } from '../runtime/tasks.ts';
import type { Grant } from './publisher.ts';
import { retryDelayMs } from './renewal.ts';
import type { Held } from './secrets.ts';
import type { OrphanRecord, StateStore } from './state.ts';

export interface RevocationsDeps {
  release(grant: Grant, who: string, held: Held[]): Promise<void>;
  state: Pick<StateStore, 'saveOrphans'>;
  tasks: TaskScheduler;
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

export class Revocations {
  readonly #d: RevocationsDeps;
  #orphans: OrphanRecord[] = [];
  #attempt = 0;
  #stopped = false;

  constructor(deps: RevocationsDeps) {
    this.#d = deps;
  }

  /** Items recorded and not yet revoked. */
  get pending(): number {
    return this.#orphans.reduce((n, o) => n + o.held.length, 0);
  }

  /** Records (one per volume or replacement) not yet revoked. */
  get records(): number {
    return this.#orphans.length;
  }

  /** Picks up what a previous process recorded. */
  resume(orphans: OrphanRecord[]): void {
    this.#orphans.push(...orphans);
    if (this.#orphans.length > 0) this.#schedule(0);
  }

  /** Records the held items that must be revoked (persisted first), then revokes them. */
  async add(grant: Grant, who: string, held: Held[]): Promise<void> {
    const due = held.filter((h) => h.revoke);
    if (due.length === 0) return;
    this.#orphans.push({ grant, who, held: due });
    await this.#save();
    this.#schedule(0);
  }

  /** No more passes (the records stay for the next process). */
  stop(): void {
    this.#stopped = true;
  }

  #schedule(delayMs: number): void {
    if (!this.#stopped) this.#d.tasks.schedule('csi-revoke-orphans', () => this.#pass(), delayMs);
  }

  async #save(): Promise<void> {
    await this.#d.state
      .saveOrphans(this.#orphans)
      .catch((err: unknown) =>
        this.#d.log.warn({ err: errorMessage(err) }, 'could not record pending revocations'),
      );
  }

  /** One pass (the task queue never runs two at once); an item stays recorded until Vault has
   * revoked it. */
  async #pass(): Promise<void> {
    if (this.#stopped) return;
    let failed = false;
    for (const o of [...this.#orphans]) {
      try {
        await this.#d.release(o.grant, o.who, o.held);
        this.#orphans = this.#orphans.filter((x) => x !== o);
        this.#d.onRevoked(o.held.length);
      } catch (err) {
        o.attempts = (o.attempts ?? 0) + 1;
        if (o.attempts >= (this.#d.maxAttempts ?? DEFAULT_MAX_REVOCATION_ATTEMPTS)) {
          this.#orphans = this.#orphans.filter((x) => x !== o);
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
    await this.#save();
    if (failed) this.#schedule(retryDelayMs(this.#attempt++, this.#d.random));
    else this.#attempt = 0;
  }
}
