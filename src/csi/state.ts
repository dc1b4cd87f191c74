// What the driver must remember across its own restarts (a DaemonSet rollout, a crash): per
// published volume, which CSISecrets it came from, who logs in for it, and what it holds in Vault
// (lease ids, certificate serials), so that renewal resumes and unpublish still revokes. Also the
// leases and certificates whose revocation failed and is being retried.
//
// No secret value is stored: file contents stay in the volume (they are read back from it), and
// lease ids and serials are what VSO itself keeps in status. Records are JSON files in a directory
// that should be a tmpfs (the DaemonSet uses /run on the host): they outlive the driver, not the node,
// and pods do not outlive the node either. Writes go to a temporary file renamed into place.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../errors.ts';
import type { Grant } from './publisher.ts';
import type { Held, ItemRef } from './secrets.ts';

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
}

/** Held items still to be revoked, with the grant that can revoke them. */
export interface OrphanRecord {
  who: string;
  grant: Grant;
  held: Held[];
}

const ORPHANS = 'orphans.json';

// Shape checks of what this module wrote itself (a record from another version is skipped, not trusted).
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const hasGrant = (v: Record<string, unknown>): boolean =>
  isObject(v.grant) &&
  isObject(v.grant.csiSecrets) &&
  isObject(v.grant.consumer) &&
  isObject(v.grant.snapshot);
function isVolumeRecord(v: unknown): v is VolumeRecord {
  return (
    isObject(v) &&
    typeof v.volumeId === 'string' &&
    typeof v.targetPath === 'string' &&
    typeof v.podUid === 'string' &&
    Array.isArray(v.items) &&
    hasGrant(v)
  );
}
function isOrphanRecord(v: unknown): v is OrphanRecord {
  return isObject(v) && Array.isArray(v.held) && hasGrant(v);
}
const fileOf = (target: string): string =>
  `volume-${createHash('sha256').update(target).digest('hex').slice(0, 32)}.json`;

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
    await writeFile(tmp, JSON.stringify(value), { mode: 0o600 });
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

  /** Everything stored; unreadable files are reported and skipped, never fatal. */
  async load(onError: (file: string, err: string) => void): Promise<{
    volumes: VolumeRecord[];
    orphans: OrphanRecord[];
  }> {
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
      if (name !== ORPHANS && !/^volume-[0-9a-f]{32}\.json$/.test(name)) continue;
      try {
        const value: unknown = JSON.parse(await readFile(join(dir, name), 'utf8'));
        if (name === ORPHANS) {
          if (!Array.isArray(value) || !value.every(isOrphanRecord)) throw new Error('not a list of orphans');
          out.orphans = value;
        } else {
          if (!isVolumeRecord(value)) throw new Error('not a volume record');
          out.volumes.push(value);
        }
      } catch (err) {
        onError(name, errorMessage(err));
      }
    }
    return out;
  }
}
