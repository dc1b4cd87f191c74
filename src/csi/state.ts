// What the driver must remember across its own restarts (a DaemonSet rollout, a crash): per
// published volume, which CSISecrets it came from, who logs in for it, and what it holds in Vault
// (lease ids, certificate serials), so that renewal resumes and unpublish still revokes. Also the
// leases and certificates whose revocation failed and is being retried.
//
// No secret value is stored: file contents stay in the volume (they are read back from it), and
// lease ids and serials are what VSO itself keeps in status. Records are JSON files in a directory
// that should be a tmpfs (the DaemonSet uses /run on the host): they outlive the driver, not the node,
// and pods do not outlive the node either. Writes go to a temporary file renamed into place.
//
// The directory is read as untrusted input (a tampered node, a record of another version): files
// are opened without following links or blocking on FIFOs, regular files only, size-capped, and
// every record is checked in depth — its target below kubelet's pods directory and matching its
// file name, file names the driver would write, an ownership that never lets the pod write. A
// record that fails is dropped (and its file removed) with a log line; nothing here throws on input.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../errors.ts';
import { readRegularFile } from '../safe-read.ts';
import { isPayloadName, isValidFileName } from './names.ts';
import type { Grant } from './publisher.ts';
import { type Held, type ItemRef, isItemKind } from './secrets.ts';

export interface VolumeRecord {
  volumeId: string;
  targetPath: string;
  fingerprint: string;
  /** Who the volume is for, in logs and Events ("pod ns/name"). */
  who: string;
  podUid: string;
  grant: Grant;
  fetchedAt: number;
  items: { ref: ItemRef; names: string[]; held?: Held }[];
  /** Saved before a write of the volume's files (upkeep, republish): the record that holds once
   * `payload` is committed (atomic-writer.ts). A driver resuming a record with this set finds out
   * which side of the commit a crash fell on, keeps that record and revokes what the other held. */
  pending?: { payload: string; next: VolumeRecord };
}

/** Held items still to be revoked, with the grant that can revoke them. */
export interface OrphanRecord {
  /** The target whose volume held them: its queue key (unset in records of older drivers). */
  targetPath?: string;
  who: string;
  grant: Grant;
  held: Held[];
  /** Failed revocation passes so far (revocations.ts gives up after a bound). */
  attempts?: number;
}

const ORPHANS = 'orphans.json';
/** Size caps: a volume record is a few KB (twice that while a write is under way: `pending` holds
 * the next record); the orphans list grows with failed revocations. */
const MAX_VOLUME_RECORD_BYTES = 512 * 1024;
const MAX_ORPHANS_BYTES = 4 * 1024 * 1024;

// Shape checks: a record that is not exactly what this module writes is dropped, not trusted.
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const isTime = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
const isIndex = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
const isId = (v: unknown): boolean =>
  v === undefined || (Number.isInteger(v) && (v as number) >= 0 && (v as number) < 2 ** 32);
/** Root-owned (or the writer's own uid in an unprivileged harness) and never writable by the pod. */
const isOwnership = (v: unknown): boolean =>
  isObject(v) &&
  (v.uid === undefined || v.uid === 0) &&
  isId(v.gid) &&
  Number.isInteger(v.fileMode) &&
  ((v.fileMode as number) & ~0o444) === 0 &&
  Number.isInteger(v.dirMode) &&
  ((v.dirMode as number) & ~0o755) === 0;
const hasGrant = (v: Record<string, unknown>): boolean =>
  isObject(v.grant) &&
  isObject(v.grant.csiSecrets) &&
  isString(v.grant.csiSecrets.namespace) &&
  isString(v.grant.csiSecrets.name) &&
  isString(v.grant.csiSecrets.uid) &&
  isIndex(v.grant.csiSecrets.generation) &&
  isObject(v.grant.consumer) &&
  isString(v.grant.consumer.namespace) &&
  isObject(v.grant.snapshot) &&
  isString(v.grant.snapshot.namespace) &&
  isObject(v.grant.snapshot.spec) &&
  isOwnership(v.grant.ownership);
/** A lease or certificate as secrets.ts records it: revocation sends its id or serial to Vault. */
const isHeld = (v: unknown): boolean =>
  isObject(v) &&
  typeof v.revoke === 'boolean' &&
  ((v.kind === 'lease' &&
    isString(v.leaseId) &&
    isString(v.clientId) &&
    isTime(v.durationS) &&
    typeof v.renewable === 'boolean' &&
    isTime(v.startedAtMs) &&
    (v.renewalPercent === undefined || isTime(v.renewalPercent))) ||
    (v.kind === 'cert' &&
      isString(v.mount) &&
      isString(v.serial) &&
      isTime(v.expiration) &&
      isTime(v.issuedAt) &&
      isTime(v.expiryOffsetMs)));
const isItem = (v: unknown): boolean =>
  isObject(v) &&
  isObject(v.ref) &&
  isItemKind(v.ref.kind) &&
  isIndex(v.ref.index) &&
  Array.isArray(v.names) &&
  v.names.every((n) => isString(n) && isValidFileName(n)) &&
  (v.held === undefined || isHeld(v.held));
function isVolumeRecord(v: unknown): v is VolumeRecord {
  return (
    isRecordBody(v) &&
    (v.pending === undefined ||
      (isObject(v.pending) &&
        isString(v.pending.payload) &&
        isPayloadName(v.pending.payload) &&
        isRecordBody(v.pending.next) &&
        v.pending.next.pending === undefined &&
        v.pending.next.targetPath === v.targetPath))
  );
}
function isRecordBody(v: unknown): v is VolumeRecord {
  return (
    isObject(v) &&
    isString(v.volumeId) &&
    v.volumeId !== '' &&
    isString(v.targetPath) &&
    isString(v.podUid) &&
    isString(v.who) &&
    isString(v.fingerprint) &&
    isTime(v.fetchedAt) &&
    Array.isArray(v.items) &&
    v.items.every(isItem) &&
    hasGrant(v)
  );
}
function isOrphanRecord(v: unknown): v is OrphanRecord {
  return (
    isObject(v) &&
    isString(v.who) &&
    (v.targetPath === undefined || isString(v.targetPath)) &&
    Array.isArray(v.held) &&
    v.held.every(isHeld) &&
    (v.attempts === undefined || isIndex(v.attempts)) &&
    hasGrant(v)
  );
}

/** The key of a target path: its record's file name and its staging directory's name. */
export const keyOf = (target: string): string =>
  createHash('sha256').update(target).digest('hex').slice(0, 32);
const fileOf = (target: string): string => `volume-${keyOf(target)}.json`;
/** A save's temporary file (#write), left when a crash came before its rename. */
const TMP_FILE = /^\.(volume-[0-9a-f]{32}\.json|orphans\.json)\.[0-9a-f]{8}$/;

export class StateStore {
  readonly #dir: string | undefined;
  constructor(dir: string | undefined) {
    this.#dir = dir;
  }

  async #write(name: string, value: unknown): Promise<void> {
    const dir = this.#dir;
    if (!dir) return;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = join(dir, `.${name}.${randomBytes(4).toString('hex')}`);
    await writeFile(tmp, JSON.stringify(value), { mode: 0o600, flag: 'wx' });
    await rename(tmp, join(dir, name));
  }

  saveVolume(rec: VolumeRecord): Promise<void> {
    return this.#write(fileOf(rec.targetPath), rec);
  }

  async removeVolume(targetPath: string): Promise<void> {
    if (this.#dir) await rm(join(this.#dir, fileOf(targetPath)), { force: true });
  }

  saveOrphans(orphans: OrphanRecord[]): Promise<void> {
    return this.#write(ORPHANS, orphans);
  }

  /** Everything stored that passes the checks. `validTarget` says whether a record's target path
   * is acceptable (below kubelet's pods directory); anything dropped is reported and its file
   * removed. Never throws on what the directory holds. */
  async load(
    onError: (file: string, err: string) => void,
    validTarget: (path: string) => boolean = () => true,
  ): Promise<{ volumes: VolumeRecord[]; orphans: OrphanRecord[] }> {
    const dir = this.#dir;
    const out = { volumes: [] as VolumeRecord[], orphans: [] as OrphanRecord[] };
    if (!dir) return out;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return out;
    }
    for (const name of names) {
      if (TMP_FILE.test(name)) {
        await rm(join(dir, name), { force: true }).catch(() => {});
        continue;
      }
      const isOrphans = name === ORPHANS;
      if (!isOrphans && !/^volume-[0-9a-f]{32}\.json$/.test(name)) continue;
      const path = join(dir, name);
      try {
        const text = await readRegularFile(path, isOrphans ? MAX_ORPHANS_BYTES : MAX_VOLUME_RECORD_BYTES);
        const value: unknown = JSON.parse(text.toString('utf8'));
        if (isOrphans) {
          if (!Array.isArray(value) || !value.every(isOrphanRecord)) throw new Error('not a list of orphans');
          out.orphans = value;
        } else {
          if (!isVolumeRecord(value)) throw new Error('not a volume record');
          if (fileOf(value.targetPath) !== name || !validTarget(value.targetPath))
            throw new Error('target path does not match the record');
          out.volumes.push(value);
        }
      } catch (err) {
        onError(name, errorMessage(err));
        await rm(path, { recursive: true, force: true }).catch(() => {});
      }
    }
    return out;
  }
}
