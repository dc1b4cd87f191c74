// Where a volume's files live. On a node the target path is an in-memory filesystem (tmpfs) the
// driver mounts, so secrets never touch the node's disk; where mounting is not permitted (an
// unprivileged test harness) a plain directory stands in. Both sit behind one interface.
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Mounter {
  readonly kind: 'tmpfs' | 'dir';
  /** Makes `target` a volume root if it is not one already (idempotent). */
  setup(target: string): Promise<void>;
  /** Removes every file and the mount at `target`, then the directory itself (idempotent). */
  teardown(target: string): Promise<void>;
  /** Whether `target` holds a volume this mounter set up. */
  isSetUp(target: string): Promise<boolean>;
}

export class DirMounter implements Mounter {
  readonly kind = 'dir' as const;
  async setup(target: string): Promise<void> {
    await mkdir(target, { recursive: true, mode: 0o750 });
  }
  async teardown(target: string): Promise<void> {
    await rm(target, { recursive: true, force: true });
  }
  async isSetUp(target: string): Promise<boolean> {
    try {
      return (await stat(target)).isDirectory();
    } catch {
      return false;
    }
  }
}

/** Decodes the octal escapes (\040 for space, ...) of /proc/self/mountinfo fields. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

export async function mountPoints(mountinfo = '/proc/self/mountinfo'): Promise<Map<string, string>> {
  const text = await readFile(mountinfo, 'utf8');
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    const fields = line.split(' ');
    const point = fields[4];
    const sep = fields.indexOf('-');
    if (point === undefined || sep < 0) continue;
    out.set(unescapeMountField(point), fields[sep + 1] ?? '');
  }
  return out;
}

export interface TmpfsOptions {
  /** tmpfs size limit, e.g. "8m". */
  size: string;
  commandTimeoutMs?: number;
}

export class TmpfsMounter implements Mounter {
  readonly kind = 'tmpfs' as const;
  readonly #opts: TmpfsOptions;
  constructor(opts: TmpfsOptions = { size: '8m' }) {
    this.#opts = opts;
  }

  async isSetUp(target: string): Promise<boolean> {
    return (await mountPoints()).get(resolve(target)) === 'tmpfs';
  }

  async setup(target: string): Promise<void> {
    await mkdir(target, { recursive: true, mode: 0o750 });
    if (await this.isSetUp(target)) return;
    // nosuid,nodev,noexec: the volume holds data only. Mode and ownership are set by the writer.
    await run(
      'mount',
      [
        '-t',
        'tmpfs',
        '-o',
        `size=${this.#opts.size},mode=0750,nosuid,nodev,noexec`,
        'tmpfs',
        resolve(target),
      ],
      { timeout: this.#opts.commandTimeoutMs ?? 30_000 },
    );
  }

  async teardown(target: string): Promise<void> {
    const abs = resolve(target);
    // A target can carry stacked mounts after a crash between mount and bookkeeping: unmount all.
    for (let i = 0; i < 8 && (await mountPoints()).has(abs); i++) {
      await run('umount', [abs], { timeout: this.#opts.commandTimeoutMs ?? 30_000 });
    }
    if ((await mountPoints()).has(abs)) throw new Error(`${abs} is still mounted`);
    await rm(abs, { recursive: true, force: true });
  }
}

/** Whether this process may mount a tmpfs: tries once in a scratch directory. */
export async function canMountTmpfs(scratch: string): Promise<{ ok: boolean; reason?: string }> {
  const m = new TmpfsMounter({ size: '1m', commandTimeoutMs: 10_000 });
  try {
    await m.setup(scratch);
    const ok = await m.isSetUp(scratch);
    await m.teardown(scratch);
    return ok ? { ok } : { ok, reason: 'mount succeeded but no tmpfs appeared in mountinfo' };
  } catch (err) {
    await rm(scratch, { recursive: true, force: true }).catch(() => {});
    return {
      ok: false,
      reason: err instanceof Error ? (err.message.split('\n')[0] ?? err.message) : String(err),
    };
  }
}
