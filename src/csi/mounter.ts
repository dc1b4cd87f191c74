// Where a volume's files live. The driver writes only into a private staging directory under its
// state directory, which no pod can reach; the pod sees the volume through a read-only view at
// kubelet's target path. On a node the staging directory is an in-memory filesystem (tmpfs, so
// secrets never touch the node's disk) and the target a read-only bind mount of it;
// where mounting is not permitted (an unprivileged test harness) a plain directory and a symlink
// stand in. Both sit behind one interface.
import { execFile } from 'node:child_process';
import { lstat, mkdir, readFile, rm, rmdir, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Mounter {
  readonly kind: 'tmpfs' | 'dir';
  /** Makes `staging` a volume root (the driver writes there) and `target` a read-only view of it;
   * an existing target that shows anything else is replaced (idempotent). */
  setup(staging: string, target: string): Promise<void>;
  /** Whether `staging` is set up and `target` shows it read-only. */
  isSetUp(staging: string, target: string): Promise<boolean>;
  /** Removes the view at `target`, then the staging volume and its directory (idempotent). Removes
   * nothing but mounts, the empty target directory and what lies in the staging volume. */
  teardown(staging: string, target: string): Promise<void>;
  /** Removes a staging volume whose target is unknown (a leftover after a crash). */
  removeStaging(staging: string): Promise<void>;
  /** Undoes what setup prepared once per staging root (the driver stops). */
  release(stagingRoot: string): Promise<void>;
}

/** The private scratch directory in a staging root (TmpfsMounter); never a volume. */
export const SCRATCH = '.bind';

const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'ENOENT';

/** Makes `path` a real directory: anything else found there (a symlink planted on a tampered node,
 * a FIFO, a file) is removed without being followed, so a mount never lands where a link points. */
export async function ensureRealDir(path: string, mode: number): Promise<void> {
  const st = await lstat(path).catch((err: unknown) => (isMissing(err) ? undefined : Promise.reject(err)));
  if (st?.isDirectory()) return;
  if (st) await rm(path, { recursive: true, force: true });
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await mkdir(path, { mode });
}

export class DirMounter implements Mounter {
  readonly kind = 'dir' as const;
  async setup(staging: string, target: string): Promise<void> {
    await ensureRealDir(staging, 0o750);
    const st = await lstat(target).catch((err: unknown) =>
      isMissing(err) ? undefined : Promise.reject(err),
    );
    if (st?.isSymbolicLink()) return;
    if (st) await rmdir(target);
    await mkdir(resolve(target, '..'), { recursive: true });
    await symlink(resolve(staging), target);
  }
  async isSetUp(staging: string, target: string): Promise<boolean> {
    const [s, t] = await Promise.all([lstat(staging), lstat(target)].map((p) => p.catch(() => undefined)));
    return (s?.isDirectory() ?? false) && (t?.isSymbolicLink() ?? false);
  }
  async teardown(staging: string, target: string): Promise<void> {
    const st = await lstat(target).catch(() => undefined);
    if (st?.isSymbolicLink()) await unlink(target);
    else if (st?.isDirectory()) await rmdir(target);
    await this.removeStaging(staging);
  }
  async removeStaging(staging: string): Promise<void> {
    await rm(staging, { recursive: true, force: true });
  }
  async release(): Promise<void> {}
}

/** One line of /proc/self/mountinfo: the mount at a path (the topmost when several are stacked). */
export interface MountInfo {
  /** major:minor of the filesystem: a bind mount shows its source's. */
  dev: string;
  fstype: string;
  /** Per-mount read-only flag. */
  ro: boolean;
}

/** Decodes the octal escapes (\040 for space, ...) of /proc/self/mountinfo fields. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

export async function mountPoints(mountinfo = '/proc/self/mountinfo'): Promise<Map<string, MountInfo>> {
  const text = await readFile(mountinfo, 'utf8');
  const out = new Map<string, MountInfo>();
  for (const line of text.split('\n')) {
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    const fields = line.split(' ');
    const point = fields[4];
    const sep = fields.indexOf('-');
    if (point === undefined || sep < 0) continue;
    out.set(unescapeMountField(point), {
      dev: fields[2] ?? '',
      fstype: fields[sep + 1] ?? '',
      ro: (fields[5] ?? '').split(',').includes('ro'),
    });
  }
  return out;
}

export interface TmpfsOptions {
  /** tmpfs size limit per volume, e.g. "8m". */
  size: string;
  commandTimeoutMs?: number;
  /** Told once when the kernel has no tmpfs `noswap` (before Linux 6.4): volumes may be swapped. */
  onNoSwapUnsupported?: (reason: string) => void;
}

/** tmpfs size as `mount` takes it (bytes, or k/m/g), for the flag and the read-back cap. */
export function tmpfsSizeBytes(size: string): number {
  const m = /^([1-9][0-9]{0,9})([kmg]?)$/i.exec(size);
  if (!m) throw new Error(`tmpfs size must be a number with an optional k, m or g suffix, got ${size}`);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? '').toLowerCase()] ?? 1;
  return Number(m[1]) * unit;
}

/** Whether `target` is a read-only view of the tmpfs at `staging`. */
function showsStaging(mounts: Map<string, MountInfo>, staging: string, target: string): boolean {
  const s = mounts.get(staging);
  const t = mounts.get(target);
  return s?.fstype === 'tmpfs' && t !== undefined && t.dev === s.dev && t.ro;
}

export class TmpfsMounter implements Mounter {
  readonly kind = 'tmpfs' as const;
  readonly #opts: TmpfsOptions;
  /** Whether the kernel takes `noswap`; unknown until the first mount. */
  #noswap: boolean | undefined;
  readonly #scratches = new Set<string>();
  constructor(opts: TmpfsOptions = { size: '8m' }) {
    tmpfsSizeBytes(opts.size);
    this.#opts = opts;
  }

  async #run(cmd: string, args: string[]): Promise<void> {
    await run(cmd, args, { timeout: this.#opts.commandTimeoutMs ?? 30_000 });
  }

  async isSetUp(staging: string, target: string): Promise<boolean> {
    return showsStaging(await mountPoints(), resolve(staging), resolve(target));
  }

  async #mountTmpfs(staging: string): Promise<void> {
    // nosuid,nodev,noexec: the volume holds data only. Mode and ownership are set by the writer.
    const base = `size=${this.#opts.size},mode=0700,nosuid,nodev,noexec`;
    const mount = (opts: string) => this.#run('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', staging]);
    if (this.#noswap !== false) {
      try {
        await mount(`${base},noswap`);
        this.#noswap = true;
        return;
      } catch (err) {
        if (this.#noswap === true) throw err;
        // Either noswap is unknown to this kernel or mounting fails altogether: the plain mount tells.
        await mount(base);
        this.#noswap = false;
        this.#opts.onNoSwapUnsupported?.(err instanceof Error ? (err.message.split('\n')[0] ?? '') : '');
        return;
      }
    }
    await mount(base);
  }

  /**
   * A directory below the staging root whose mount is private to this process's namespace. A
   * remount to read-only is not propagated (only mount and unmount events are), so a bind made at
   * the target and then remounted would stay writable in kubelet's namespace. The read-only bind is
   * therefore made here, where nothing propagates, and moved to the target: a move propagates as a
   * copy with its flags, read-only everywhere.
   */
  async #scratch(stagingRoot: string): Promise<string> {
    const p = join(stagingRoot, SCRATCH);
    if (this.#scratches.has(p)) return p;
    await ensureRealDir(p, 0o700);
    if (!(await mountPoints()).has(p)) await this.#run('mount', ['--bind', p, p]);
    await this.#run('mount', ['--make-private', p]);
    this.#scratches.add(p);
    return p;
  }

  async release(stagingRoot: string): Promise<void> {
    const p = join(resolve(stagingRoot), SCRATCH);
    this.#scratches.delete(p);
    await this.#unmountAll(p);
    await rm(p, { recursive: true, force: true });
  }

  async setup(staging: string, target: string): Promise<void> {
    const s = resolve(staging);
    const t = resolve(target);
    let mounts = await mountPoints();
    if (mounts.get(s)?.fstype !== 'tmpfs') {
      await ensureRealDir(s, 0o700);
      await this.#mountTmpfs(s);
      mounts = await mountPoints();
    }
    if (showsStaging(mounts, s, t)) return;
    // Whatever the target shows (an older volume after a lost staging mount, a read-write view) goes.
    if (mounts.has(t)) await this.#unmountAll(t);
    await mkdir(t, { recursive: true, mode: 0o750 });
    const tmp = join(await this.#scratch(dirname(s)), basename(s));
    await ensureRealDir(tmp, 0o700);
    if (mounts.has(tmp)) await this.#unmountAll(tmp);
    // util-linux binds, then remounts read-only: in the private scratch, where the remount holds.
    await this.#run('mount', ['--bind', '-o', 'ro,nosuid,nodev,noexec', s, tmp]);
    try {
      await this.#run('mount', ['--no-mtab', '--move', tmp, t]);
    } catch (err) {
      await this.#unmountAll(tmp).catch(() => {});
      throw err;
    } finally {
      await rmdir(tmp).catch(() => {});
    }
  }

  /** Unmounts every mount stacked at `path` (a crash between mount and bookkeeping can leave two). */
  async #unmountAll(path: string): Promise<void> {
    for (let i = 0; i < 8 && (await mountPoints()).has(path); i++) await this.#run('umount', [path]);
    if ((await mountPoints()).has(path)) throw new Error(`${path} is still mounted`);
  }

  async teardown(staging: string, target: string): Promise<void> {
    const t = resolve(target);
    await this.#unmountAll(t);
    // kubelet's directory: only ever the empty mount point, never its contents.
    await rmdir(t).catch((err: unknown) => {
      if (!isMissing(err)) throw err;
    });
    await this.removeStaging(staging);
  }

  async removeStaging(staging: string): Promise<void> {
    const s = resolve(staging);
    await this.#unmountAll(s);
    // Unmounted, the directory is the driver's own and empty unless the node was tampered with.
    await rm(s, { recursive: true, force: true });
  }
}

/** Whether this process may mount a tmpfs and bind it: tries once in a scratch directory. */
export async function canMountTmpfs(scratch: string): Promise<{ ok: boolean; reason?: string }> {
  const m = new TmpfsMounter({ size: '1m', commandTimeoutMs: 10_000 });
  const staging = resolve(scratch, 'staging');
  const target = resolve(scratch, 'target');
  try {
    await m.setup(staging, target);
    const ok = await m.isSetUp(staging, target);
    await m.teardown(staging, target);
    await m.release(scratch);
    await rm(scratch, { recursive: true, force: true });
    return ok ? { ok } : { ok, reason: 'mount succeeded but no read-only bind appeared in mountinfo' };
  } catch (err) {
    await m.teardown(staging, target).catch(() => {});
    await m.release(scratch).catch(() => {});
    await rm(scratch, { recursive: true, force: true }).catch(() => {});
    return {
      ok: false,
      reason: err instanceof Error ? (err.message.split('\n')[0] ?? err.message) : String(err),
    };
  }
}
