// NodePublishVolume and NodeUnpublishVolume for one target, run as work of that target on the node
// service's queue (node.ts), after validation (validate.ts), following plan.ts.
//
// Idempotency: a publish whose arguments (volume, target, pod, CSISecrets reference, read-only
// flag, mount group) equal those of the last successful publish at that target, while the
// CSISecrets is unchanged (same UID and generation in the cache) and the refresh interval has not
// passed, returns OK without touching Kubernetes or Vault. Otherwise the pod is authorised again and
// the files are swapped in place (kubelet's requiresRepublish refresh): KV secrets are re-read, while
// minted and leased items (AppRole secret-ids, dynamic credentials, certificates) are kept unless
// the CSISecrets changed. A different volume at a target that is already published is
// ALREADY_EXISTS (CSI spec). Unpublish removes the files first; what the volume held is revoked
// after (revocations.ts), never holding up kubelet.
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import { errorMessage } from '../errors.ts';
import type { OutputFile } from './atomic-writer.ts';
import { CsiError, toCsiError } from './errors.ts';
import { planFetch, planPublish } from './plan.ts';
import type { PodTokens } from './pod-tokens.ts';
import type { Grant, PublishInput } from './publisher.ts';
import type { Revocations } from './revocations.ts';
import {
  byListOrder,
  type Held,
  heldId,
  heldOf,
  type Item,
  type ItemRef,
  itemKey,
  itemRefs,
} from './secrets.ts';
import type { VolumeRecord } from './state.ts';
import { fingerprint, type ValidPublish } from './validate.ts';
import { recordOf, type Volume, type Volumes } from './volumes.ts';

/** The publisher as the Node service uses it (publisher.ts; a fake in unit tests). */
export interface PublishSource {
  authorize(input: PublishInput, signal?: AbortSignal): Promise<Grant>;
  fetch(grant: Grant, who: string, refs?: ItemRef[], signal?: AbortSignal): Promise<Item[]>;
  renew(grant: Grant, who: string, held: Held, due: boolean, signal?: AbortSignal): Promise<Held | undefined>;
  release(grant: Grant, who: string, held: Held[], signal?: AbortSignal): Promise<void>;
  cachedSource(ns: string, name: string): { uid: string; generation: number } | undefined;
}

export interface PublishingDeps {
  publisher: PublishSource;
  volumes: Volumes;
  revocations: Revocations;
  /** A volume published: its upkeep is due at some point (node.ts schedules it). */
  published: (target: string) => void;
  clock: Clock;
  refreshIntervalMs: number;
  maxVolumes: number;
  log: Logger;
  /** Counts publishes, fetches and skipped (idempotent) publishes. */
  count: (what: 'publishes' | 'fetches' | 'skipped') => void;
  /** Where the pods' kubelet-issued tokens are kept for Vault logins (pod-tokens.ts). */
  podTokens?: Pick<PodTokens, 'keep' | 'forget'> | undefined;
}

export class Publishing {
  readonly #d: PublishingDeps;

  constructor(deps: PublishingDeps) {
    this.#d = deps;
  }

  async publish(v: ValidPublish, signal?: AbortSignal): Promise<'skipped' | 'published'> {
    const d = this.#d;
    const who = `pod ${v.context.pod.namespace}/${v.context.pod.name}`;
    const log = d.log.child({
      volumeId: v.volumeId,
      pod: `${v.context.pod.namespace}/${v.context.pod.name}`,
      csiSecrets: `${v.context.csiSecrets.namespace}/${v.context.csiSecrets.name}`,
    });
    d.count('publishes');
    const prev = d.volumes.get(v.targetPath);
    const mounted = prev ? await d.volumes.isSetUp(v.targetPath) : false;
    const plan = planPublish({
      prev: prev?.rec,
      volumeId: v.volumeId,
      fingerprint: fingerprint(v),
      mounted,
      cached: d.publisher.cachedSource(v.context.csiSecrets.namespace, v.context.csiSecrets.name),
      nowMs: d.clock.now(),
      refreshIntervalMs: d.refreshIntervalMs,
      volumes: d.volumes.size + d.volumes.publishing.size,
      maxVolumes: d.maxVolumes,
    });
    // kubelet's fresh tokens for the Vault logins, also on a skipped republish.
    if (plan.action !== 'conflict' && plan.action !== 'exhausted')
      d.podTokens?.keep(v.targetPath, v.context.pod, v.context.tokens);
    switch (plan.action) {
      case 'conflict':
        throw new CsiError('ALREADY_EXISTS', `target_path is already published for volume ${plan.volumeId}`);
      case 'exhausted':
        throw new CsiError('RESOURCE_EXHAUSTED', `this node already holds ${plan.max} Ferry CSI volumes`);
      case 'skip':
        d.count('skipped');
        log.debug('already published');
        return 'skipped';
    }
    if (!prev) d.volumes.publishing.add(v.targetPath);
    try {
      return await this.#publishOnce(v, prev, plan.samePublish, mounted, who, log, signal);
    } catch (err) {
      if (!d.volumes.get(v.targetPath)) d.podTokens?.forget(v.targetPath);
      throw err;
    } finally {
      d.volumes.publishing.delete(v.targetPath);
    }
  }

  async #publishOnce(
    v: ValidPublish,
    prev: Volume | undefined,
    samePublish: boolean,
    mounted: boolean,
    who: string,
    log: Logger,
    signal: AbortSignal | undefined,
  ): Promise<'published'> {
    const d = this.#d;
    const input: PublishInput = {
      ...v.context,
      ...(v.mountGroup !== undefined ? { mountGroup: v.mountGroup } : {}),
    };
    let grant: Grant;
    try {
      grant = await d.publisher.authorize(input, signal);
    } catch (err) {
      if (prev && err instanceof CsiError && err.code === 'PERMISSION_DENIED')
        await this.#withdraw(prev, log);
      throw err;
    }
    const plan = planFetch(prev?.rec, samePublish, grant, itemRefs(grant.snapshot.spec));
    const fetched = await d.publisher.fetch(grant, who, plan.fetch, signal);
    d.count('fetches');
    const files = new Map<string, OutputFile[]>();
    for (const i of plan.keep) files.set(itemKey(i.ref), prev?.files.get(itemKey(i.ref)) ?? []);
    for (const i of fetched) files.set(itemKey(i.ref), i.files);
    const rec: VolumeRecord = {
      volumeId: v.volumeId,
      targetPath: v.targetPath,
      fingerprint: fingerprint(v),
      who,
      podUid: v.context.pod.uid,
      grant,
      fetchedAt: d.clock.now(),
      items: [...plan.keep, ...fetched.map(recordOf)].sort(byListOrder),
    };
    const existed = mounted || (await d.volumes.isSetUp(v.targetPath));
    // Crash-safe order: the record says which write is under way before the files change; what the
    // previous publish held is recorded for revocation before the record that no longer holds it.
    const payload = d.volumes.newPayload();
    await d.volumes.intend(prev?.rec ?? { ...rec, items: [] }, rec, payload, log);
    try {
      await d.volumes.write(rec, files, payload);
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'writing the volume failed');
      if (!existed) await d.volumes.teardown(v.targetPath).catch(() => {});
      await d.revocations.add(v.targetPath, grant, who, heldOf(fetched));
      if (prev) await d.volumes.persist(prev.rec, log);
      else await d.volumes.drop(rec);
      throw new CsiError('INTERNAL', `writing the volume failed: ${errorMessage(err)}`, { cause: err });
    }
    d.volumes.set({ rec, files, attempt: 0 });
    // What the previous publish held and this one no longer does.
    if (prev) await d.revocations.add(v.targetPath, prev.rec.grant, who, heldOf(plan.release));
    await d.volumes.persist(rec, log);
    d.published(v.targetPath);
    log.info({ items: rec.items.length, refreshed: prev !== undefined }, 'volume published');
    return 'published';
  }

  /** Works after a driver restart too: whatever is at the target goes. Secrets leave the node
   * first; what the volume held in Vault is revoked after. */
  async unpublish(v: { volumeId: string; targetPath: string }): Promise<void> {
    try {
      await this.#d.volumes.teardown(v.targetPath);
    } catch (err) {
      throw toCsiError(err);
    }
    this.#d.podTokens?.forget(v.targetPath);
    const volume = this.#d.volumes.get(v.targetPath);
    if (volume) await this.forget(volume.rec);
    this.#d.log.info({ volumeId: v.volumeId }, 'volume unpublished');
  }

  /** The pod lost its access (a republish was refused): its files are emptied in place, since the
   * running containers keep the mount, and what the volume held is revoked. */
  async #withdraw(volume: Volume, log: Logger): Promise<void> {
    try {
      await this.#d.volumes.empty(volume.rec);
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'could not empty the volume of a refused pod');
    }
    await this.forget(volume.rec);
    log.warn('pod no longer authorised: volume emptied');
  }

  /** For a resumed record saved with a write under way (VolumeRecord.pending): the record of the
   * files the volume shows — the new one when the write's payload was committed, else the previous
   * one — saved after what the other record held (and this one does not) is recorded for revocation,
   * so a crash in between settles the same way again. */
  async settle(recorded: VolumeRecord): Promise<VolumeRecord> {
    const { pending, ...before } = recorded;
    if (!pending) return recorded;
    const committed = (await this.#d.volumes.committed(recorded.targetPath)) === pending.payload;
    const [rec, other] = committed ? [pending.next, before] : [before, pending.next];
    const kept = new Set(heldOf(rec.items).map(heldId));
    const gone = heldOf(other.items).filter((h) => !kept.has(heldId(h)));
    await this.#d.revocations.add(rec.targetPath, other.grant, other.who, gone);
    await this.#d.volumes.persist(rec, this.#d.log.child({ volumeId: rec.volumeId, pod: rec.who }));
    return rec;
  }

  /** Drops a volume (its record; a pending upkeep finds nothing) and revokes what it held. The
   * revocation is recorded before the volume record goes, so a crash in between loses neither. */
  async forget(rec: VolumeRecord): Promise<void> {
    await this.#d.revocations.add(rec.targetPath, rec.grant, rec.who, heldOf(rec.items));
    await this.#d.volumes.drop(rec);
  }
}
