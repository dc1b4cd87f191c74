// Builds (once, cached by content hash) and runs the Go template oracle: text/template plus the
// Sprig functions VSO allows, from test/differential/oracle.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

export interface OracleCase {
  name: string;
  templates: { name: string; text: string }[];
  entry: string;
  data: unknown;
  jsonNumber?: boolean;
}
export type OracleResult = { output: string } | { error: string; phase: string };

const SRC = join(import.meta.dirname, 'oracle');

export function oracleBinary(env: NodeJS.ProcessEnv = process.env): string {
  const hash = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'main.go']) hash.update(readFileSync(join(SRC, f)));
  const cache = env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  const dir = join(cache, 'ferry', 'peers', `template-oracle-${hash.digest('hex').slice(0, 16)}`);
  const bin = join(dir, 'template-oracle');
  if (existsSync(bin)) return bin;
  const work = mkdtempSync(join(tmpdir(), 'ferry-oracle-'));
  try {
    cpSync(SRC, work, { recursive: true });
    execFileSync('go', ['build', '-trimpath', '-o', join(work, 'template-oracle'), '.'], {
      cwd: work,
      env: { ...env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0', GOFLAGS: '-mod=mod' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    mkdirSync(dir, { recursive: true });
    renameSync(join(work, 'template-oracle'), bin);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return bin;
}

/**
 * The oracle binary, or why it cannot exist here: no cached build and no Go toolchain on PATH.
 * Any other build failure (network, compile error) throws.
 */
export function findOracle(env: NodeJS.ProcessEnv = process.env): { bin: string } | { skip: string } {
  try {
    return { bin: oracleBinary(env) };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { skip: 'Go toolchain not found on PATH' };
    throw e;
  }
}

export function runOracle(bin: string, cases: OracleCase[], allowed: readonly string[]): OracleResult[] {
  const out = execFileSync(bin, [], {
    input: JSON.stringify({ allowed, cases }),
    maxBuffer: 256 * 1024 * 1024,
  });
  return JSON.parse(out.toString('utf8')) as OracleResult[];
}
