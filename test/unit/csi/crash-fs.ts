// A process killed after its k-th filesystem change, for crash tests: every call of
// node:fs/promises and of an open file's handle goes through a counter (the modules under test import
// the functions by name, so the builtin module's exports are re-synced after patching). Calls that
// change the filesystem — create, write, chmod/chown, rename, link, remove — are counted; once the
// k-th has completed the process is "dead": every later call, reads included, rejects with Crash, so
// nothing the code does after that (its own error handling, retries) reaches the disk.
import { constants } from 'node:fs';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { mock } from 'node:test';

export class Crash extends Error {
  constructor() {
    super('crashed');
  }
}

const CHANGING = ['mkdir', 'rename', 'rm', 'rmdir', 'symlink', 'unlink', 'writeFile'] as const;
const READING = ['lstat', 'stat', 'readdir', 'readlink', 'readFile'] as const;
const HANDLE_CHANGING = ['chmod', 'chown', 'writeFile', 'write'] as const;
const HANDLE_READING = ['stat', 'read'] as const;
const { O_CREAT, O_WRONLY, O_RDWR } = constants;

type Fn = (...args: unknown[]) => Promise<unknown>;

export class CrashFs {
  /** Changes made so far. */
  changes = 0;
  /** Crash once this many changes are made; undefined never. */
  crashAfter: number | undefined;
  dead = false;
  /** Every path a change was made at (both of a rename, the link of a symlink). */
  readonly changed: string[] = [];

  /** Counts from zero again and crashes after `k` changes (undefined: never). */
  arm(k: number | undefined): void {
    this.changes = 0;
    this.crashAfter = k;
    this.dead = k === 0;
    this.changed.length = 0;
  }

  /** Kills the process now (it was about to do something that is not a file change). */
  kill(): void {
    this.dead = true;
  }

  #wrap(original: Fn, changes: (args: unknown[]) => string[] | undefined): Fn {
    return async (...args: unknown[]) => {
      if (this.dead) throw new Crash();
      const paths = changes(args);
      const result = await original(...args);
      if (paths) {
        this.changed.push(...paths);
        if (++this.changes === this.crashAfter) this.dead = true;
      }
      return result;
    };
  }

  /** Patches node:fs/promises and FileHandle until restore(). */
  async install(): Promise<void> {
    const fh = await fsp.open(import.meta.filename);
    const handleProto = Object.getPrototypeOf(fh) as Record<string, Fn>;
    await fh.close();
    const mod = fsp as unknown as Record<string, Fn>;
    for (const name of CHANGING) {
      const original = mod[name] as Fn;
      mock.method(
        mod,
        name,
        this.#wrap(original, (a) =>
          (name === 'rename' ? [a[0], a[1]] : name === 'symlink' ? [a[1]] : [a[0]]).map(String),
        ),
      );
    }
    for (const name of READING)
      mock.method(
        mod,
        name,
        this.#wrap(mod[name] as Fn, () => undefined),
      );
    const open = mod.open as Fn;
    mock.method(
      mod,
      'open',
      this.#wrap(open, (a) =>
        typeof a[1] === 'number' && (a[1] & (O_CREAT | O_WRONLY | O_RDWR)) !== 0 ? [String(a[0])] : undefined,
      ),
    );
    // A handle's path is unknown here: its changes count, its open recorded the path.
    const handle = (name: string, changes: () => string[] | undefined) => {
      const original = handleProto[name] as Fn;
      const wrap = (h: unknown) => this.#wrap((...a) => original.apply(h, a), changes);
      mock.method(handleProto, name, async function (this: unknown, ...args: unknown[]) {
        return wrap(this)(...args);
      });
    };
    for (const name of HANDLE_CHANGING) handle(name, () => []);
    for (const name of HANDLE_READING) handle(name, () => undefined);
    syncBuiltinESMExports();
  }

  restore(): void {
    mock.restoreAll();
    syncBuiltinESMExports();
  }
}
