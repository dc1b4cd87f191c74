// The upkeep of what a published volume holds in Vault for the pod's lifetime, run as work of its
// target on the node service's queue (node.ts) whenever plan.ts's upkeepDueAt says so. A due lease
// is renewed in place; one that cannot be renewed any more, and a certificate in its renewal
// window, is replaced: its item is fetched again, the files swapped, and the old lease or
// certificate revoked (revocations.ts). A container restart matching the CSISecrets'
// syncConfig.containerState fetches the KV secrets and AppRole secret-ids again (VSO's re-sync);
// a Vault re-login makes every lease be checked against the new token.
import type { Logger } from 'pino';
import type { Clock, Random } from '../clock.ts';
import { errorMessage } from '../errors.ts';
import { type PodContainers, restartedMatching } from './access.ts';
import { planUpkeep, upkeepDueAt } from './plan.ts';
import type { PublishSource } from './publish.ts';
import { retryDelayMs } from './renewal.ts';
import type { Revocations } from './revocations.ts';
import { type Held, heldOf, type ItemRef, isLeasedKind, itemKey } from './secrets.ts';
import type { VolumeRecord } from './state.ts';
import { recordOf, type Volume, type Volumes } from './volumes.ts';

export type UpkeepAction = 'renewals' | 'replacements' | 'revocations' | 'resyncs';

export interface UpkeepDeps {
  publisher: Pick<PublishSource, 'fetch' | 'renew'>;
  volumes: Volumes;
  revocations: Revocations;
  /** Asks for a pass of the target at the time dueAt says. */
  wake: (target: string) => void;
  clock: Clock;
  random: Random;
  log: Logger;
  count: (action: UpkeepAction, n?: number) => void;
}

export class Upkeep {
  readonly #d: UpkeepDeps;

  constructor(deps: UpkeepDeps) {
    this.#d = deps;
  }

  dueAt(target: string): number | undefined {
    const v = this.#d.volumes.get(target);
    return v && upkeepDueAt({ ...v, items: v.rec.items }, this.#d.clock.now());
  }

  /** The Vault session of some VaultAuth logged in again: leases made with its previous token will
   * be revoked with it, so every volume holding leases checks them now. */
  onVaultLogin(): void {
    for (const v of this.#d.volumes.values()) {
      if (!v.rec.items.some((i) => i.held?.kind === 'lease')) continue;
      v.recheck = true;
      this.#d.wake(v.rec.targetPath);
    }
  }

  /** A pod on this node changed: the volumes of a restarted container matching the CSISecrets'
   * syncConfig.containerState fetch their non-leased items again (leased ones are fresh already). */
  onPodChange(before: PodContainers, after: PodContainers & { metadata: { uid?: string } }): void {
    for (const volume of this.#d.volumes.values()) {
      const { rec } = volume;
      const cs = rec.grant.snapshot.spec.syncConfig?.containerState;
      if (rec.podUid !== after.metadata.uid || !cs || !restartedMatching(cs, before, after)) continue;
      const refs = rec.items.map((i) => i.ref).filter((r) => !isLeasedKind(r.kind));
      if (refs.length === 0) continue;
      volume.resync = refs;
      this.#d.wake(rec.targetPath);
    }
  }

  /** Re-syncs, renews or replaces what is due of the volume at `target`. */
  async run(target: string, signal?: AbortSignal): Promise<void> {
    const volume = this.#d.volumes.get(target);
    const now = this.#d.clock.now();
    const due = this.dueAt(target);
    if (!volume || due === undefined || due > now) return;
    const { rec } = volume;
    const log = this.#d.log.child({ volumeId: rec.volumeId, pod: rec.who });
    const resync = volume.resync;
    delete volume.resync;
    if (resync) {
      try {
        await this.#replace(volume, resync, log, signal);
        this.#d.count('resyncs');
      } catch (err) {
        log.warn({ err: errorMessage(err) }, 're-sync after a container restart failed');
      }
    }
    if ((this.dueAt(target) ?? Number.POSITIVE_INFINITY) > now) return;
    delete volume.retryAt;
    try {
      const plan = planUpkeep(volume.rec.items, volume.recheck === true, now);
      for (const { item, due } of plan.renew) {
        if (!item.held) continue;
        const kept = await this.#d.publisher.renew(rec.grant, rec.who, item.held, due, signal);
        if (!kept) plan.replace.push(item.ref);
        else if (kept !== item.held) {
          item.held = kept;
          this.#d.count('renewals');
        }
      }
      if (plan.replace.length > 0) await this.#replace(volume, plan.replace, log, signal);
      volume.attempt = 0;
      delete volume.recheck;
      await this.#d.volumes.persist(volume.rec, log);
    } catch (err) {
      volume.attempt++;
      volume.retryAt = now + retryDelayMs(volume.attempt - 1, this.#d.random);
      log.warn({ err: errorMessage(err), attempt: volume.attempt }, 'keeping the volume fresh failed');
    }
  }

  /** Fetches the items again, swaps the files, then gives back what the old ones held. */
  async #replace(volume: Volume, refs: ItemRef[], log: Logger, signal?: AbortSignal): Promise<void> {
    const { rec } = volume;
    const fetched = await this.#d.publisher.fetch(rec.grant, rec.who, refs, signal);
    const files = new Map(volume.files);
    for (const i of fetched) files.set(itemKey(i.ref), i.files);
    const byKey = new Map(fetched.map((i) => [itemKey(i.ref), i]));
    const old: Held[] = [];
    const items = rec.items.map((item) => {
      const f = byKey.get(itemKey(item.ref));
      if (!f) return item;
      if (item.held) old.push(item.held);
      return recordOf(f);
    });
    const next: VolumeRecord = { ...rec, items };
    // Crash-safe order (as publish.ts): the write under way is recorded before the files change,
    // and the replaced items are recorded for revocation before the record that no longer holds them.
    const payload = this.#d.volumes.newPayload();
    await this.#d.volumes.intend(rec, next, payload, log);
    try {
      await this.#d.volumes.write(next, files, payload);
    } catch (err) {
      await this.#d.revocations.add(rec.targetPath, rec.grant, rec.who, heldOf(fetched));
      await this.#d.volumes.persist(rec, log);
      throw err;
    }
    volume.rec = next;
    volume.files = files;
    this.#d.count('replacements', fetched.length);
    log.info({ items: refs.map(itemKey) }, 'items fetched again');
    await this.#d.revocations.add(rec.targetPath, rec.grant, rec.who, old);
    await this.#d.volumes.persist(next, log);
  }
}
