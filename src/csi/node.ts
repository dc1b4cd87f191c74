// The Node service's behaviour, independent of gRPC: per-target serialisation (validation is
// validate.ts),
// idempotent republish, mount setup, atomic write, teardown, and the upkeep of what a volume holds
// in Vault for the pod's lifetime.
//
// Idempotency: a publish whose arguments (volume, target, pod, CSISecrets reference, read-only
// flag, mount group) equal those of the last successful publish at that target, while the
// CSISecrets is unchanged (same UID and generation in the cache) and the refresh interval has not
// passed, returns OK without touching Kubernetes or Vault. Otherwise the pod is authorised again and
// the files are swapped in place (kubelet's requiresRepublish refresh): KV secrets are re-read, while
// minted and leased items (AppRole secret-ids, dynamic credentials, certificates) are kept unless
// the CSISecrets changed. A different volume at a target that is already published is
// ALREADY_EXISTS (CSI spec). Calls for one target never overlap; different targets run concurrently.
//
// Upkeep: each volume has one task on the task queue, due at its earliest held item. A due lease is
// renewed in place; one that cannot be renewed any more, and a certificate in its renewal window, is
// replaced: its item is fetched again, the files swapped, and the old lease or certificate revoked.
// Unpublish removes the files first and then revokes (revocations.ts: in the background, retried,
// never holding up kubelet). Volume records are persisted (state.ts) so a restarted driver resumes
// all this.
//
// Mount layout (docs/architecture.md): each volume is a tmpfs at a staging directory below the
// state directory, `<stagingDir>/<key of the target>`, the only place the driver writes; the target
// is a read-only bind of it. A restarted driver reads files back from staging, never from the target.
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock, Random } from '../clock.ts';
import { systemClock, systemRandom } from '../clock.ts';
import { errorMessage } from '../errors.ts';
import type { CsiMetrics } from '../metrics/csi.ts';
import type { TaskScheduler } from '../runtime/tasks.ts';
import { type PodContainers, restartedMatching } from './access.ts';
import { type OutputFile, readBack, writeAtomic } from './atomic-writer.ts';
import { CsiError, toCsiError } from './errors.ts';
import { ensureRealDir, type Mounter, SCRATCH } from './mounter.ts';
import { keptItems, planRepublish } from './plan.ts';
import type { PodTokens } from './pod-tokens.ts';
import type { NodePublishVolumeRequest, NodeUnpublishVolumeRequest } from './proto.ts';
import type { Grant, PublishInput } from './publisher.ts';
import { heldDueAt, retryDelayMs } from './renewal.ts';
import { Revocations } from './revocations.ts';
import {
  byListOrder,
  type Held,
  heldOf,
  type Item,
  type ItemRef,
  isLeasedKind,
  itemKey,
  itemRefs,
} from './secrets.ts';
import { keyOf, StateStore, type VolumeRecord } from './state.ts';
import {
  fingerprint,
  isValidTarget,
  type ValidPublish,
  validatePublish,
  validateUnpublish,
} from './validate.ts';

/** The publisher as the Node service uses it (publisher.ts; a fake in unit tests). */
export interface PublishSource {
  authorize(input: PublishInput, signal?: AbortSignal): Promise<Grant>;
  fetch(grant: Grant, who: string, refs?: ItemRef[], signal?: AbortSignal): Promise<Item[]>;
  renew(grant: Grant, who: string, held: Held, due: boolean, signal?: AbortSignal): Promise<Held | undefined>;
  release(grant: Grant, who: string, held: Held[], signal?: AbortSignal): Promise<void>;
  cachedSource(ns: string, name: string): { uid: string; generation: number } | undefined;
}

export interface NodeServiceOptions {
  nodeId: string;
  audience: string;
  mounter: Mounter;
  publisher: PublishSource;
  /** Where the pods' kubelet-issued tokens are kept for Vault logins (pod-tokens.ts). */
  podTokens?: Pick<PodTokens, 'keep' | 'forget'>;
  /** When set, every target path must lie below this directory (kubelet's pods dir on a node). */
  targetRoot?: string;
  /** A republish with unchanged arguments re-fetches after this long; 0 never does. */
  refreshIntervalMs: number;
  /** Where volume records are kept across driver restarts (a tmpfs); unset keeps them in memory. */
  stateDir?: string;
  /** Where the volumes' tmpfs are staged; default `<stateDir>/volumes` (a temporary directory
   * without a state directory). Root's alone: no pod reaches it. */
  stagingDir?: string;
  /** Most volumes published at once on this node; more is RESOURCE_EXHAUSTED. Default 256. */
  maxVolumes?: number;
  /** Most bytes read back from one volume after a restart (its tmpfs size). Default 8 MiB. */
  maxVolumeBytes?: number;
  log: Logger;
  /** Runs the upkeep and the revocations (the Manager's task queue). */
  tasks: TaskScheduler;
  clock?: Clock;
  random?: Random;
  metrics?: CsiMetrics;
}

/** A published volume: its record plus the files of each item. Its upkeep is the task
 * `csi-upkeep/<target>`. */
interface Volume {
  rec: VolumeRecord;
  files: Map<string, OutputFile[]>;
  /** Failed upkeep attempts in a row. */
  attempt: number;
  retryAt?: number;
  /** Check now that every lease still belongs to the current Vault token (after a re-login or a
   * driver restart), not only when it is due. */
  recheck?: boolean;
}

export interface NodeStats {
  publishes: number;
  fetches: number;
  skipped: number;
  renewals: number;
  replacements: number;
  revocations: number;
  resyncs: number;
}

const DEFAULT_MAX_VOLUMES = 256;
const DEFAULT_MAX_VOLUME_BYTES = 8 * 1024 * 1024;

export class NodeService {
  readonly #o: NodeServiceOptions;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #state: StateStore;
  readonly #volumes = new Map<string, Volume>();
  /** Targets whose first publish is under way: they count against maxVolumes. */
  readonly #publishing = new Set<string>();
  readonly #stagingDir: string;
  readonly #locks = new Map<string, Promise<void>>();
  readonly #revocations: Revocations;
  #stopped = false;
  readonly stats: NodeStats = {
    publishes: 0,
    fetches: 0,
    skipped: 0,
    renewals: 0,
    replacements: 0,
    revocations: 0,
    resyncs: 0,
  };

  constructor(opts: NodeServiceOptions) {
    this.#o = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? systemRandom;
    this.#state = new StateStore(opts.stateDir);
    this.#stagingDir =
      opts.stagingDir ?? join(opts.stateDir ?? join(tmpdir(), `ferry-csi-${process.pid}`), 'volumes');
    this.#revocations = new Revocations({
      release: (grant, who, held) => opts.publisher.release(grant, who, held),
      state: this.#state,
      tasks: opts.tasks,
      random: this.#random,
      log: opts.log,
      onRevoked: (n) => this.#count('revocations', n),
      onAbandoned: (n) => this.#o.metrics?.upkeep.inc({ action: 'abandoned' }, n),
    });
    const m = opts.metrics;
    m?.volumes.onCollect(() => m.volumes.set({}, this.#volumes.size));
    m?.pendingRevocations.onCollect(() => m.pendingRevocations.set({}, this.#revocations.pending));
    m?.held.onCollect(() => {
      const all = [...this.#volumes.values()].flatMap((v) => heldOf(v.rec.items));
      for (const kind of ['lease', 'cert'] as const)
        m.held.set({ kind }, all.filter((h) => h.kind === kind).length);
    });
  }

  /** Counts upkeep in the stats and, when metrics are on, in ferry_csi_upkeep_total. */
  #count(action: 'renewals' | 'replacements' | 'revocations' | 'resyncs', n = 1): void {
    this.stats[action] += n;
    this.#o.metrics?.upkeep.inc({ action }, n);
  }

  get nodeId(): string {
    return this.#o.nodeId;
  }

  /** The private directory a target's volume is written in. */
  #staging(target: string): string {
    return join(this.#stagingDir, keyOf(target));
  }

  /** Runs `fn` once every earlier call for the same target has finished. */
  async #serial<T>(target: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(target) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => {
      release = r;
    });
    const chained = prev.then(() => mine);
    this.#locks.set(target, chained);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.#locks.get(target) === chained) this.#locks.delete(target);
    }
  }

  async publish(req: NodePublishVolumeRequest, signal?: AbortSignal): Promise<void> {
    const m = this.#o.metrics;
    if (!m) return void (await this.#publish(req, signal));
    const t0 = performance.now();
    let result = 'ok';
    try {
      if ((await this.#publish(req, signal)) === 'skipped') result = 'skipped';
    } catch (err) {
      result = toCsiError(err).code;
      throw err;
    } finally {
      m.publishes.inc({ result });
      m.publishDuration.observe({ result }, (performance.now() - t0) / 1000);
    }
  }

  async #publish(req: NodePublishVolumeRequest, signal?: AbortSignal): Promise<'skipped' | 'published'> {
    const o = this.#o;
    const v = validatePublish(req, { audience: o.audience, targetRoot: o.targetRoot });
    const who = `pod ${v.context.pod.namespace}/${v.context.pod.name}`;
    const log = o.log.child({
      volumeId: v.volumeId,
      pod: `${v.context.pod.namespace}/${v.context.pod.name}`,
      csiSecrets: `${v.context.csiSecrets.namespace}/${v.context.csiSecrets.name}`,
    });
    return this.#serial(v.targetPath, async () => {
      this.stats.publishes++;
      const fp = fingerprint(v);
      const prev = this.#volumes.get(v.targetPath);
      const staging = this.#staging(v.targetPath);
      const mounted = prev ? await o.mounter.isSetUp(staging, v.targetPath) : false;
      const plan = planRepublish({
        prev: prev?.rec,
        volumeId: v.volumeId,
        fingerprint: fp,
        mounted,
        cached: o.publisher.cachedSource(v.context.csiSecrets.namespace, v.context.csiSecrets.name),
        nowMs: this.#clock.now(),
        refreshIntervalMs: o.refreshIntervalMs,
      });
      if (plan.action === 'conflict')
        throw new CsiError(
          'ALREADY_EXISTS',
          `target_path is already published for volume ${prev?.rec.volumeId}`,
        );
      if (plan.action === 'skip') {
        o.podTokens?.keep(v.targetPath, v.context.pod, v.context.tokens);
        this.stats.skipped++;
        log.debug('already published');
        return 'skipped';
      }
      if (!prev) {
        const max = o.maxVolumes ?? DEFAULT_MAX_VOLUMES;
        if (this.#volumes.size + this.#publishing.size >= max)
          throw new CsiError('RESOURCE_EXHAUSTED', `this node already holds ${max} Ferry CSI volumes`);
        this.#publishing.add(v.targetPath);
      }
      // kubelet's fresh tokens for the Vault logins (pod-tokens.ts), once the node has room.
      o.podTokens?.keep(v.targetPath, v.context.pod, v.context.tokens);
      try {
        return await this.#publishOnce(v, prev, plan.samePublish, mounted, who, log, signal);
      } catch (err) {
        if (!this.#volumes.has(v.targetPath)) o.podTokens?.forget(v.targetPath);
        throw err;
      } finally {
        this.#publishing.delete(v.targetPath);
      }
    });
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
    const o = this.#o;
    const fp = fingerprint(v);
    const staging = this.#staging(v.targetPath);
    const input: PublishInput = {
      ...v.context,
      ...(v.mountGroup !== undefined ? { mountGroup: v.mountGroup } : {}),
    };
    let grant: Grant;
    try {
      grant = await o.publisher.authorize(input, signal);
    } catch (err) {
      if (prev && err instanceof CsiError && err.code === 'PERMISSION_DENIED')
        await this.#withdraw(prev, log);
      throw err;
    }
    const keep = keptItems(prev?.rec, samePublish, grant);
    const kept = new Set(keep.map((i) => itemKey(i.ref)));
    const refs = itemRefs(grant.snapshot.spec).filter((r) => !kept.has(itemKey(r)));
    const fetched = await o.publisher.fetch(grant, who, refs, signal);
    this.stats.fetches++;
    const files = new Map<string, OutputFile[]>();
    for (const i of keep) files.set(itemKey(i.ref), prev?.files.get(itemKey(i.ref)) ?? []);
    for (const i of fetched) files.set(itemKey(i.ref), i.files);
    const rec: VolumeRecord = {
      volumeId: v.volumeId,
      targetPath: v.targetPath,
      fingerprint: fp,
      who,
      podUid: v.context.pod.uid,
      grant,
      fetchedAt: this.#clock.now(),
      items: [...keep, ...fetched.map(recordOf)].sort(byListOrder),
    };
    const existed = mounted || (await o.mounter.isSetUp(staging, v.targetPath));
    try {
      await this.#write(rec, files);
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'writing the volume failed');
      if (!existed) await o.mounter.teardown(staging, v.targetPath).catch(() => {});
      await this.#revocations.add(grant, who, heldOf(fetched));
      throw new CsiError('INTERNAL', `writing the volume failed: ${errorMessage(err)}`, { cause: err });
    }
    const volume: Volume = { rec, files, attempt: 0 };
    this.#volumes.set(v.targetPath, volume);
    await this.#persist(volume, log);
    // What the previous publish held and this one no longer does.
    if (prev) {
      const replaced = prev.rec.items.filter((i) => i.held && !kept.has(itemKey(i.ref)));
      await this.#revocations.add(prev.rec.grant, who, heldOf(replaced));
    }
    this.#schedule(volume);
    log.info({ items: rec.items.length, refreshed: prev !== undefined }, 'volume published');
    return 'published';
  }

  async unpublish(req: NodeUnpublishVolumeRequest): Promise<void> {
    const o = this.#o;
    const v = validateUnpublish(req, { targetRoot: o.targetRoot });
    return this.#serial(v.targetPath, async () => {
      // Works after a driver restart too: whatever is at the target goes. Secrets leave the node
      // first; what the volume held in Vault is revoked after, in the background if need be.
      try {
        await o.mounter.teardown(this.#staging(v.targetPath), v.targetPath);
      } catch (err) {
        throw toCsiError(err);
      }
      o.podTokens?.forget(v.targetPath);
      const volume = this.#volumes.get(v.targetPath);
      if (volume) await this.#forget(volume.rec);
      o.log.info({ volumeId: v.volumeId }, 'volume unpublished');
    });
  }

  /** The pod lost its access (a republish was refused): its files are emptied in place, since the
   * running containers keep the mount, and what the volume held is revoked. */
  async #withdraw(volume: Volume, log: Logger): Promise<void> {
    const { rec } = volume;
    try {
      await writeAtomic(this.#staging(rec.targetPath), [], rec.grant.ownership);
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'could not empty the volume of a refused pod');
    }
    await this.#forget(rec);
    log.warn('pod no longer authorised: volume emptied');
  }

  /** Drops a volume (its timer and record) and revokes what it held, in the background. */
  async #forget(rec: VolumeRecord): Promise<void> {
    // Its upkeep task, if one is pending, finds no volume and ends.
    if (this.#volumes.get(rec.targetPath)?.rec === rec) this.#volumes.delete(rec.targetPath);
    await this.#state.removeVolume(rec.targetPath).catch(() => {});
    await this.#revocations.add(rec.grant, rec.who, heldOf(rec.items));
  }

  /**
   * A pod on this node changed. When one of its containers matching the CSISecrets'
   * syncConfig.containerState restarted, its volumes fetch their KV secrets and AppRole secret-ids
   * again (VSO's re-sync on container restart); leased items are kept, they are fresh already.
   */
  onPodChange(before: PodContainers, after: PodContainers & { metadata: { uid?: string } }): void {
    for (const volume of this.#volumes.values()) {
      const { rec } = volume;
      const cs = rec.grant.snapshot.spec.syncConfig?.containerState;
      if (rec.podUid !== after.metadata.uid || !cs || !restartedMatching(cs, before, after)) continue;
      const refs = rec.items.map((i) => i.ref).filter((r) => !isLeasedKind(r.kind));
      const log = this.#o.log.child({ volumeId: rec.volumeId, pod: rec.who });
      // The informer handler only schedules; the re-sync is a task like the rest of the upkeep.
      this.#o.tasks.schedule(`csi-resync/${rec.targetPath}`, () =>
        this.#serial(rec.targetPath, async () => {
          if (this.#volumes.get(rec.targetPath) !== volume || refs.length === 0) return;
          try {
            await this.#replace(volume, refs, log);
            this.#count('resyncs');
            await this.#persist(volume, log);
          } catch (err) {
            log.warn({ err: errorMessage(err) }, 're-sync after a container restart failed');
          }
        }),
      );
    }
  }

  /**
   * Picks up the volumes and pending revocations a previous driver process recorded. A volume whose
   * target is gone is released. The others are checked at once: their leases belong to the previous
   * process's Vault token, which Vault revokes them with and no one renews now, so they are replaced.
   * Certificates do not depend on a token and keep their schedule. The next republish fetches again
   * (fetchedAt 0), so KV secrets are re-read then.
   */
  async resume(): Promise<{ volumes: number; orphans: number }> {
    const o = this.#o;
    const { volumes, orphans } = await this.#state.load(
      (file, err) => o.log.warn({ file, err }, 'unreadable or tampered CSI state record dropped'),
      (path) => isValidTarget(path, o.targetRoot),
    );
    const kept = new Set<string>();
    for (const rec of volumes) {
      const files = await this.#readBack(rec);
      if (!files) {
        await this.#forget(rec);
        continue;
      }
      const volume: Volume = { rec: { ...rec, fetchedAt: 0 }, files, attempt: 0, recheck: true };
      this.#volumes.set(rec.targetPath, volume);
      kept.add(keyOf(rec.targetPath));
      this.#schedule(volume);
    }
    await this.#removeLeftovers(kept);
    this.#revocations.resume(orphans);
    return { volumes: kept.size, orphans: this.#revocations.records };
  }

  /** Removes staging volumes no record accounts for (a crash between mount and record, a record
   * dropped): a target bound to one keeps its files until kubelet unpublishes or republishes it. */
  async #removeLeftovers(kept: Set<string>): Promise<void> {
    const dir = this.#stagingDir;
    await ensureRealDir(dir, 0o700);
    for (const entry of await readdir(dir)) {
      if (kept.has(entry) || entry === SCRATCH) continue;
      try {
        await this.#o.mounter.removeStaging(join(dir, entry));
        this.#o.log.info({ entry }, 'leftover staging volume removed');
      } catch (err) {
        this.#o.log.warn({ entry, err: errorMessage(err) }, 'could not remove a leftover staging volume');
      }
    }
  }

  /** Stops the upkeep: pending tasks end without work (the records stay for the next process). */
  stop(): void {
    this.#stopped = true;
    this.#revocations.stop();
  }

  /** After stop: releases what the mounter prepared for the staging directory (volumes stay). */
  async release(): Promise<void> {
    await this.#o.mounter.release(this.#stagingDir);
  }

  /** The files of a recorded volume, read back from its staging volume (never from the target,
   * never through a link, size-capped); undefined when it is not there or not as the driver left it. */
  async #readBack(rec: VolumeRecord): Promise<Map<string, OutputFile[]> | undefined> {
    const staging = this.#staging(rec.targetPath);
    if (!(await this.#o.mounter.isSetUp(staging, rec.targetPath))) return undefined;
    try {
      const data = await readBack(
        staging,
        rec.items.flatMap((i) => i.names),
        this.#o.maxVolumeBytes ?? DEFAULT_MAX_VOLUME_BYTES,
      );
      return new Map(
        rec.items.map((i) => [
          itemKey(i.ref),
          i.names.map((name) => ({ name, data: data.get(name) ?? new Uint8Array() })),
        ]),
      );
    } catch (err) {
      this.#o.log.warn(
        { volumeId: rec.volumeId, err: errorMessage(err) },
        'volume not as the driver left it',
      );
      return undefined;
    }
  }

  async #write(rec: VolumeRecord, files: Map<string, OutputFile[]>): Promise<void> {
    const staging = this.#staging(rec.targetPath);
    await this.#o.mounter.setup(staging, rec.targetPath);
    await writeAtomic(
      staging,
      rec.items.flatMap((i) => files.get(itemKey(i.ref)) ?? []),
      rec.grant.ownership,
    );
  }

  async #persist(volume: Volume, log: Logger): Promise<void> {
    try {
      await this.#state.saveVolume(volume.rec);
    } catch (err) {
      log.warn({ err: errorMessage(err) }, 'could not record the volume; a driver restart would lose it');
    }
  }

  /** The Vault session of some VaultAuth logged in again: leases made with its previous token will
   * be revoked with it, so every volume holding leases checks them now. */
  onVaultLogin(): void {
    for (const v of this.#volumes.values()) {
      if (!v.rec.items.some((i) => i.held?.kind === 'lease')) continue;
      v.recheck = true;
      this.#schedule(v);
    }
  }

  #schedule(volume: Volume): void {
    if (this.#stopped) return;
    const now = this.#clock.now();
    const dues = volume.rec.items.flatMap((i) => (i.held ? [heldDueAt(i.held, now)] : []));
    if (volume.retryAt !== undefined) dues.push(volume.retryAt);
    if (volume.recheck) dues.push(now);
    if (dues.length === 0) return;
    const target = volume.rec.targetPath;
    this.#o.tasks.schedule(`csi-upkeep/${target}`, () => this.#tend(target), Math.min(...dues) - now);
  }

  /** Renews or replaces the due items of one volume. */
  async #tend(target: string): Promise<void> {
    await this.#serial(target, async () => {
      const volume = this.#volumes.get(target);
      if (!volume || this.#stopped) return;
      const { rec } = volume;
      const log = this.#o.log.child({ volumeId: rec.volumeId, pod: rec.who });
      const now = this.#clock.now();
      delete volume.retryAt;
      try {
        const replace: ItemRef[] = [];
        for (const item of rec.items) {
          if (!item.held) continue;
          const due = heldDueAt(item.held, now) <= now;
          if (item.held.kind === 'cert') {
            if (due) replace.push(item.ref);
            continue;
          }
          if (!due && !volume.recheck) continue;
          const kept = await this.#o.publisher.renew(rec.grant, rec.who, item.held, due);
          if (!kept) replace.push(item.ref);
          else if (kept !== item.held) {
            item.held = kept;
            this.#count('renewals');
          }
        }
        if (replace.length > 0) await this.#replace(volume, replace, log);
        volume.attempt = 0;
        delete volume.recheck;
        await this.#persist(volume, log);
      } catch (err) {
        volume.attempt++;
        volume.retryAt = now + retryDelayMs(volume.attempt - 1, this.#random);
        log.warn({ err: errorMessage(err), attempt: volume.attempt }, 'keeping the volume fresh failed');
      }
      this.#schedule(volume);
    });
  }

  /** Fetches the items again, swaps the files, then gives back what the old ones held. */
  async #replace(volume: Volume, refs: ItemRef[], log: Logger): Promise<void> {
    const { rec } = volume;
    const fetched = await this.#o.publisher.fetch(rec.grant, rec.who, refs);
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
    try {
      await this.#write(next, files);
    } catch (err) {
      await this.#revocations.add(rec.grant, rec.who, heldOf(fetched));
      throw err;
    }
    volume.rec = next;
    volume.files = files;
    this.#count('replacements', fetched.length);
    log.info({ items: refs.map(itemKey) }, 'items fetched again');
    await this.#revocations.add(rec.grant, rec.who, old);
  }
}

/** What the volume record keeps of an item: its file names (the contents stay in the volume). */
function recordOf(i: Item): VolumeRecord['items'][number] {
  return { ref: i.ref, names: i.files.map((f) => f.name), ...(i.held ? { held: i.held } : {}) };
}
