// src/cli/compile-cache.ts fills the image's compile cache; with it, loading an entry point must not
// need Node's TypeScript stripper (amaro), whose memory is what the cache saves (docs/memory.md).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

const SRC = join(import.meta.dirname, '..', '..', '..', 'src', 'cli');
const dir = mkdtempSync(join(tmpdir(), 'ferry-compile-cache-'));
// The environment without any compile cache of the caller's.
const { NODE_COMPILE_CACHE: _c, NODE_COMPILE_CACHE_PORTABLE: _p, ...baseEnv } = process.env;
after(() => rmSync(dir, { recursive: true, force: true }));

/** Loads an entry point (stopped by an unknown flag, as the warm-up does) and reports whether the
 * TypeScript stripper was loaded. */
function loadsStripper(entry: string, env: Record<string, string>): boolean {
  const script = `process.argv = [process.argv[0], 'x', '--unknown-flag'];
try { await import(${JSON.stringify(join(SRC, entry))}); } catch {}
console.log(process.moduleLoadList.some((m) => m.includes('amaro')));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...baseEnv, ...env },
    encoding: 'utf8',
  });
  return out.trim() === 'true';
}

test('with the filled cache, the operator and the CSI driver load without the TypeScript stripper', () => {
  const env = { NODE_COMPILE_CACHE: dir, NODE_COMPILE_CACHE_PORTABLE: '1' };
  assert.equal(loadsStripper('operator.ts', {}), true, 'control: without a cache the stripper loads');
  execFileSync(process.execPath, [join(SRC, 'compile-cache.ts')], { env: { ...baseEnv, ...env } });
  assert.equal(loadsStripper('operator.ts', env), false);
  assert.equal(loadsStripper('csi-driver.ts', env), false);
});
