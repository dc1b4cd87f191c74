// The volumes this node has published: in memory, recorded across driver restarts (state.ts) and
// staged on their tmpfs (mounter.ts, atomic-writer.ts). Only the node service's queue touches one
// target's volume, one piece of work at a time (node.ts).
//
// Mount layout (docs/architecture.md): each volume is a tmpfs at a staging directory below the
// state directory, `<stagingDir>/<key of the target>`, the only place the driver writes; the target
// is a read-only bind of it. A restarted driver reads files back from staging, never from the target.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import { errorMessage } from '../errors.ts';
import {
  committedPayload,
  newPayloadName,
  type OutputFile,
  readBack,
  recover,
  writeAtomic,
} from './atomic-writer.ts';
import { ensureRealDir, type Mounter, SCRATCH } from './mounter.ts';
import { type Item, type ItemRef, itemKey } from './secrets.ts';
import { keyOf, type StateStore, type VolumeRecord } from './state.ts';

/** A published volume: its record plus the files of each item. */
export interface Volume {
  rec: VolumeRecord;
  files: Map<string, OutputFile[]>;
  /** Failed upkeep attempts in a row. */
  attempt: number;
  retryAt?: number;
  /** Check now that every lease still belongs to the current Vault token (after a re-login or a
   * driver restart), not only when it is due. */
  recheck?: boolean;
  /** Items to fetch again (a container restarted; upkeep.ts). */
  resync?: ItemRef[];
}

export interface VolumesOptions {
  mounter: Mounter;
  state: StateStore;
  stagingDir: string;
  /** Most bytes read back from one volume after a restart (its tmpfs size). */
  maxVolumeBytes: number;
  clock: Clock;
  log: Logger;
}

export class Volumes {
  readonly #o: VolumesOptions;
  readonly #byTarget = new Map<string, Volume>();
  /** Targets whose first publish is under way: they count against maxVolumes. */
  readonly publishing = new Set<string>();

  constructor(opts: VolumesOptions) {
    this.#o = opts;
  }

  get(target: string): Volume | undefined {
    return this.#byTarget.get(target);
  }

  set(volume: Volume): void {
    this.#byTarget.set(volume.rec.targetPath, volume);
  }

  values(): IterableIterator<Volume> {
    return this.#byTarget.values();
  }

  /** Published volumes. */
  get size(): number {
    return this.#byTarget.size;
  }

  /** The private directory a target's volume is written in. */
  staging(target: string): string {
    return join(this.#o.stagingDir, keyOf(target));
  }

  isSetUp(target: string): Promise<boolean> {
    return this.#o.mounter.isSetUp(this.staging(target), target);
  }

  async teardown(target: string): Promise<void> {
    await this.#o.mounter.teardown(this.staging(target), target);
  }

  /** Writes the volume's files as `payload` (newPayload). Throws only when the write did not
   * commit, so the previous files are still there: once `..data` names the payload, the files are
   * the new ones and what is left of the write is finished now or on the next write or resume. */
  async write(rec: VolumeRecord, files: Map<string, OutputFile[]>, payload: string): Promise<void> {
    const staging = this.staging(rec.targetPath);
    await this.#o.mounter.setup(staging, rec.targetPath);
    try {
      await writeAtomic(
        staging,
        rec.items.flatMap((i) => files.get(itemKey(i.ref)) ?? []),
        rec.grant.ownership,
        payload,
      );
    } catch (err) {
      if ((await this.committed(rec.targetPath)) !== payload) throw err;
      await recover(staging).catch((e: unknown) =>
        this.#o.log.warn({ volumeId: rec.volumeId, err: errorMessage(e) }, 'finishing a volume write failed'),
      );
    }
  }

  /** A name for the next write's payload, to record (pending) before writing it. */
  newPayload(): string {
    return newPayloadName(new Date(this.#o.clock.now()));
  }

  /** The payload a target's volume shows; undefined when none. */
  committed(target: string): Promise<string | undefined> {
    return committedPayload(this.staging(target)).catch(() => undefined);
  }

  /** Empties a volume in place (its pod keeps the mount). */
  async empty(rec: VolumeRecord): Promise<void> {
    await writeAtomic(this.staging(rec.targetPath), [], rec.grant.ownership);
  }

  async persist(rec: VolumeRecord, log: Logger): Promise<void> {
    try {
      await this.#o.state.saveVolume(rec);
    } catch (err) {
      log.warn({ err: errorMessage(err) }, 'could not record the volume; a driver restart would lose it');
    }
  }

  /** Drops a volume from memory (when it is still this record) and from the state directory. */
  async drop(rec: VolumeRecord): Promise<void> {
    if (this.#byTarget.get(rec.targetPath)?.rec === rec) this.#byTarget.delete(rec.targetPath);
    await this.#o.state.removeVolume(rec.targetPath).catch(() => {});
  }

  /** Records `before` with the write of `next` as `payload` under way (VolumeRecord.pending). */
  intend(before: VolumeRecord, next: VolumeRecord, payload: string, log: Logger): Promise<void> {
    return this.persist({ ...before, pending: { payload, next } }, log);
  }

  /** The files of a recorded volume, read back from its staging volume (never from the target,
   * never through a link, size-capped) once a write a crash interrupted is finished (recover);
   * undefined when it is not there or not as the driver left it. */
  async readBack(rec: VolumeRecord): Promise<Map<string, OutputFile[]> | undefined> {
    if (!(await this.isSetUp(rec.targetPath))) return undefined;
    try {
      await recover(this.staging(rec.targetPath));
      const data = await readBack(
        this.staging(rec.targetPath),
        rec.items.flatMap((i) => i.names),
        this.#o.maxVolumeBytes,
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

  /** Removes staging volumes no record accounts for (a crash between mount and record, a record
   * dropped): a target bound to one keeps its files until kubelet unpublishes or republishes it. */
  async removeLeftovers(): Promise<void> {
    const dir = this.#o.stagingDir;
    const kept = new Set([...this.#byTarget.keys()].map(keyOf));
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

  /** After stop: releases what the mounter prepared for the staging directory (volumes stay). */
  async release(): Promise<void> {
    await this.#o.mounter.release(this.#o.stagingDir);
  }
}

/** What the volume record keeps of an item: its file names (the contents stay in the volume). */
export function recordOf(i: Item): VolumeRecord['items'][number] {
  return { ref: i.ref, names: i.files.map((f) => f.name), ...(i.held ? { held: i.held } : {}) };
}
