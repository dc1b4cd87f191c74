// Processes of the stack: each runs detached in its own process group with its log in the stack's
// directory; helpers to wait for readiness and to stop them.
import { spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { type Agent, request } from 'undici';

export type Log = (msg: string) => void;

/** A loopback TCP port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

export interface Started {
  name: string;
  pid: number;
  signal: NodeJS.Signals;
}

export function start(
  dir: string,
  name: string,
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number; signal?: NodeJS.Signals } = {},
): Started {
  const logFile = join(dir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: opts.env ?? process.env,
    ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
    ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
  });
  if (child.pid === undefined) throw new Error(`${name} did not start (see ${logFile})`);
  child.unref();
  return { name, pid: child.pid, signal: opts.signal ?? 'SIGTERM' };
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function waitFor(
  what: string,
  logFile: string,
  pid: number,
  check: () => Promise<boolean>,
  timeoutMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive(pid)) throw new Error(`${what} exited during start-up:\n${tail(logFile)}`);
    try {
      if (await check()) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} not ready after ${timeoutMs / 1000}s:\n${tail(logFile)}`);
}

export function tail(file: string, lines = 25): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export async function httpOk(
  url: string,
  dispatcher?: Agent,
  headers: Record<string, string> = {},
): Promise<boolean> {
  const res = await request(url, { ...(dispatcher ? { dispatcher } : {}), headers });
  await res.body.dump();
  return res.statusCode === 200;
}

/** Signals the processes (their own signal unless one is given), waits, and kills stragglers. */
export async function stopAll(
  processes: Started[],
  log: Log,
  opts: { signal?: NodeJS.Signals; timeoutMs?: number } = {},
): Promise<void> {
  for (const p of [...processes].reverse()) {
    try {
      process.kill(-p.pid, opts.signal ?? p.signal);
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  while (processes.some((p) => alive(p.pid)) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 100));
  for (const p of processes) {
    if (!alive(p.pid)) continue;
    log(`${p.name} did not stop in time; killing it`);
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** Polls until `probe` returns a value; fails with `what` and the last value seen. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
