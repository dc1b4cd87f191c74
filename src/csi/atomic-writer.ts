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
import { randomBytes } from 'node:crypto';
import {
  chmod,
  chown,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  rename,
  rm,
  symlink,
  unlink,
} from 'node:fs/promises';
import { join } from 'node:path';

export const DATA_DIR_LINK = '..data';
const DATA_DIR_TMP_LINK = '..data_tmp';

export interface OutputFile {
  /** A flat file name: letters, digits, `-`, `_` and `.`, not starting with `..`. */
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

const NAME = /^[A-Za-z0-9_.-]{1,253}$/;

export function isValidFileName(name: string): boolean {
  return NAME.test(name) && !name.startsWith('..') && name !== '.';
}

function timestampName(now: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const ts = `${now.getUTCFullYear()}_${p(now.getUTCMonth() + 1)}_${p(now.getUTCDate())}_${p(now.getUTCHours())}_${p(now.getUTCMinutes())}_${p(now.getUTCSeconds())}`;
  return `..${ts}.${randomBytes(5).toString('hex')}`;
}

async function setOwnership(path: string, mode: number, own: Ownership): Promise<void> {
  if (own.uid !== undefined || own.gid !== undefined) await chown(path, own.uid ?? -1, own.gid ?? -1);
  await chmod(path, mode); // after chown, which may clear mode bits
}

async function readLinkOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await readlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Replaces the file set in `dir` (which must exist) atomically. */
export async function writeAtomic(
  dir: string,
  files: OutputFile[],
  own: Ownership,
  now = new Date(),
): Promise<void> {
  const names = new Set<string>();
  for (const f of files) {
    if (!isValidFileName(f.name)) throw new Error(`invalid file name ${JSON.stringify(f.name)}`);
    if (names.has(f.name)) throw new Error(`duplicate file name ${JSON.stringify(f.name)}`);
    names.add(f.name);
  }
  await setOwnership(dir, own.dirMode, own);
  const previous = await readLinkOrUndefined(join(dir, DATA_DIR_LINK));

  const payload = timestampName(now);
  const payloadPath = join(dir, payload);
  await mkdir(payloadPath, { mode: 0o700 });
  try {
    for (const f of files) {
      const path = join(payloadPath, f.name);
      const fh = await open(path, 'wx', 0o600);
      try {
        await setOwnership(path, own.fileMode, own);
        await fh.writeFile(f.data);
      } finally {
        await fh.close();
      }
    }
    await setOwnership(payloadPath, own.dirMode, own);

    const tmpLink = join(dir, DATA_DIR_TMP_LINK);
    await rm(tmpLink, { force: true });
    await symlink(payload, tmpLink);
    await rename(tmpLink, join(dir, DATA_DIR_LINK));
  } catch (err) {
    await rm(payloadPath, { recursive: true, force: true });
    throw err;
  }

  // User-visible links: add new names, drop names that are gone. Links for names present before and
  // now already point through ..data and need no change.
  for (const name of names) {
    const path = join(dir, name);
    const target = join(DATA_DIR_LINK, name);
    const current = await readLinkOrUndefined(path).catch(() => undefined);
    if (current === target) continue;
    await rm(path, { recursive: true, force: true });
    await symlink(target, path);
  }
  for (const entry of await readdir(dir)) {
    if (entry.startsWith('..') || names.has(entry)) continue;
    const path = join(dir, entry);
    const st = await lstat(path);
    if (st.isSymbolicLink() && (await readlink(path)).startsWith(`${DATA_DIR_LINK}/`)) await unlink(path);
  }
  if (previous && previous !== payload && previous.startsWith('..') && !previous.includes('/')) {
    await rm(join(dir, previous), { recursive: true, force: true });
  }
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
