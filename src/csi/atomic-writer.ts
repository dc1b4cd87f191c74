// Writes a volume's files so a reader never sees a half-written set: kubelet's AtomicWriter layout
// (pkg/volume/util/atomic_writer.go, also used by the Secrets Store CSI driver).
//
//   <dir>/..2025_01_31_12_00_00.abc123/<name>   the payload, one directory per write
//   <dir>/..data -> ..2025_01_31_12_00_00.abc123   swapped atomically (symlink + rename)
//   <dir>/<name> -> ..data/<name>                  the names users see
//
// A write creates a fresh timestamped directory, fills it, points `..data_tmp` at it and renames
// that over `..data` (rename(2) is atomic), then adds links for new names, drops links for names no
// longer present and removes the previous payload directory. Files are created exclusively with the
// requested mode and ownership before any data is written, so no other reader ever sees them with
// looser permissions.
//
// The directory is the driver's private staging volume, but it is still treated as untrusted input
// (a tampered node, a crash half-way): no link is followed and no non-regular file opened
// (O_NOFOLLOW, O_NONBLOCK, fstat), ownership is set through descriptors, only names this module
// generates (names.ts) are kept, everything else in the volume root is removed on the next write,
// and reading back is capped in size.
//
// The rename of `..data` is the commit point: a crash before it leaves the previous files, after it
// the new ones. The caller may name the payload (newPayloadName) and record that name before the
// write, so that a restarted driver knows which side of the commit point a crash fell on
// (committedPayload); recover() then finishes what the crash interrupted.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import {
  type FileHandle,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  rename,
  rm,
  symlink,
} from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../errors.ts';
import { readRegularFile } from '../safe-read.ts';
import { isPayloadName, isValidFileName, payloadName } from './names.ts';

export const DATA_DIR_LINK = '..data';
const DATA_DIR_TMP_LINK = '..data_tmp';
const { O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_RDONLY, O_WRONLY } = constants;

export interface OutputFile {
  /** A flat file name (names.ts isValidFileName). */
  name: string;
  data: Uint8Array;
}

export interface Ownership {
  /** File mode, e.g. 0o440 (group-readable for fsGroup) or 0o400. */
  fileMode: number;
  /** Mode of the volume root and payload directories, e.g. 0o750. */
  dirMode: number;
  /** chown target; undefined keeps the writer's own uid / gid. */
  uid?: number;
  gid?: number;
}

async function own(fh: FileHandle, mode: number, o: Ownership): Promise<void> {
  if (o.uid !== undefined || o.gid !== undefined) await fh.chown(o.uid ?? -1, o.gid ?? -1);
  await fh.chmod(mode); // after chown, which may clear mode bits
}

/** Sets a directory's ownership through a descriptor opened without following a link. */
async function ownDir(path: string, mode: number, o: Ownership): Promise<void> {
  const fh = await open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  try {
    await own(fh, mode, o);
  } finally {
    await fh.close();
  }
}

/** A fresh payload directory name. */
export const newPayloadName = (now: Date): string => payloadName(now, randomBytes(5).toString('hex'));

/** The payload `..data` points at, if it is a link to a payload name this module generates. */
export async function committedPayload(dir: string): Promise<string | undefined> {
  const st = await lstat(join(dir, DATA_DIR_LINK)).catch(() => undefined);
  if (!st?.isSymbolicLink()) return undefined;
  const to = await readlink(join(dir, DATA_DIR_LINK));
  return isPayloadName(to) ? to : undefined;
}

/** Replaces the file set in `dir` (which must exist) atomically. */
export async function writeAtomic(
  dir: string,
  files: OutputFile[],
  o: Ownership,
  payload = newPayloadName(new Date()),
): Promise<void> {
  if (!isPayloadName(payload)) throw new Error(`invalid payload name ${JSON.stringify(payload)}`);
  const names = new Set<string>();
  for (const f of files) {
    if (!isValidFileName(f.name)) throw new Error(`invalid file name ${JSON.stringify(f.name)}`);
    if (names.has(f.name)) throw new Error(`duplicate file name ${JSON.stringify(f.name)}`);
    names.add(f.name);
  }
  await ownDir(dir, o.dirMode, o);

  const payloadPath = join(dir, payload);
  await mkdir(payloadPath, { mode: 0o700 });
  try {
    for (const f of files) {
      const fh = await open(join(payloadPath, f.name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
      try {
        await own(fh, o.fileMode, o);
        await fh.writeFile(f.data);
      } finally {
        await fh.close();
      }
    }
    await ownDir(payloadPath, o.dirMode, o);

    const tmpLink = join(dir, DATA_DIR_TMP_LINK);
    await rm(tmpLink, { recursive: true, force: true });
    await symlink(payload, tmpLink);
    await rename(tmpLink, join(dir, DATA_DIR_LINK));
  } catch (err) {
    await rm(payloadPath, { recursive: true, force: true });
    throw err;
  }

  await finish(dir, payload, names);
}

/** After the commit: links for the payload's names, and nothing else left in the volume root. */
async function finish(dir: string, payload: string, names: ReadonlySet<string>): Promise<void> {
  // User-visible links: add new names; links for names present before already point through ..data.
  for (const name of names) {
    const path = join(dir, name);
    const target = join(DATA_DIR_LINK, name);
    const st = await lstat(path).catch(() => undefined);
    if (st?.isSymbolicLink() && (await readlink(path)) === target) continue;
    if (st) await rm(path, { recursive: true, force: true });
    await symlink(target, path);
  }
  // Everything else goes: names that are gone, previous payloads (also those a crash left), and
  // whatever this module did not write. rm removes a link itself, never what it points at.
  for (const entry of await readdir(dir)) {
    if (entry === DATA_DIR_LINK || entry === payload || names.has(entry)) continue;
    await rm(join(dir, entry), { recursive: true, force: true });
  }
}

/**
 * Finishes a write a crash interrupted, whichever step it stopped at: the committed payload keeps
 * its files and gets a link for each, and everything else goes (a payload half-written or not yet
 * removed, `..data_tmp`, links of names that are gone). Refuses (throws) a volume without a committed
 * payload, or whose payload holds a name the driver would not write.
 */
export async function recover(dir: string): Promise<void> {
  const payload = await committedPayload(dir);
  if (!payload) throw new Error(`${DATA_DIR_LINK} is not a link to a payload directory`);
  if (!(await lstat(join(dir, payload))).isDirectory()) throw new Error('the payload is not a directory');
  const names = new Set(await readdir(join(dir, payload)));
  for (const name of names)
    if (!isValidFileName(name)) throw new Error(`unexpected name ${JSON.stringify(name)} in the payload`);
  await finish(dir, payload, names);
}

/**
 * Reads the named files of the current payload back, for a restarted driver. Refuses (throws) a
 * `..data` that is not a link to a generated payload name, a payload that is not a directory, a name
 * the driver would not write, a link or non-regular file, and more than `maxBytes` in total.
 */
export async function readBack(dir: string, names: string[], maxBytes: number): Promise<Map<string, Buffer>> {
  const payload = await committedPayload(dir);
  if (!payload) throw new Error(`${DATA_DIR_LINK} is not a link to a payload directory`);
  const pst = await lstat(join(dir, payload));
  if (!pst.isDirectory()) throw new Error('the payload is not a directory');
  const out = new Map<string, Buffer>();
  let left = maxBytes;
  for (const name of names) {
    if (!isValidFileName(name)) throw new Error(`invalid file name ${JSON.stringify(name)}`);
    const data = await readRegularFile(join(dir, payload, name), left).catch((err: unknown) => {
      throw new Error(`${name}: ${errorMessage(err)}`, { cause: err });
    });
    left -= data.length;
    out.set(name, data);
  }
  return out;
}

/** The names currently published in `dir` (the user-visible links). */
export async function publishedNames(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir)) {
    if (entry.startsWith('..')) continue;
    const st = await lstat(join(dir, entry));
    if (st.isSymbolicLink()) out.push(entry);
  }
  return out.sort();
}
