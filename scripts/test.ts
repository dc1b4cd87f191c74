// The whole test suite, as CI runs it: static checks, unit and fuzz tests, then end-to-end tests against a
// freshly started real stack (OpenBao by default; FERRY_VAULT_FLAVOR=vault for HashiCorp Vault).
// End-to-end tests under test/e2e/serial/ kill or replace the shared operator or the CSI driver's
// pod, so they run after the others, one at a time.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { type Flavor, peerDir, repoRoot, stackDown, stackUp } from '../stack/lib/stack.ts';

const bin = (name: string): string => join(repoRoot, 'node_modules', '.bin', name);
const log = (m: string): void => {
  process.stderr.write(`[test] ${m}\n`);
};

function step(label: string, cmd: string, args: string[]): boolean {
  log(label);
  const started = Date.now();
  const r = spawnSync(cmd, args, { cwd: repoRoot, stdio: 'inherit' });
  log(`${label}: ${r.status === 0 ? 'ok' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return r.status === 0;
}

interface Counts {
  ok: boolean;
  pass: number;
  fail: number;
  skipped: number;
}

/** Runs node's test runner, passing its output through and reading its summary lines. */
function nodeTest(label: string, args: string[]): Promise<Counts> {
  log(label);
  const started = Date.now();
  const counts: Counts = { ok: false, pass: 0, fail: 0, skipped: 0 };
  return new Promise((resolve) => {
    const child = spawn(bin('node'), ['--test', '--test-reporter=spec', ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let pending = '';
    child.stdout.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk);
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const m = /^ℹ (pass|fail|skipped) (\d+)$/.exec(line);
        if (m?.[1] && m[2]) counts[m[1] as 'pass' | 'fail' | 'skipped'] += Number(m[2]);
      }
    });
    child.on('close', (code) => {
      counts.ok = code === 0;
      log(`${label}: ${counts.ok ? 'ok' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(1)}s`);
      resolve(counts);
    });
  });
}

// Both flavours by default; FERRY_VAULT_FLAVOR=openbao|vault runs one.
const flavors = (process.env.FERRY_VAULT_FLAVOR ?? 'openbao,vault').split(',') as Flavor[];
const unknown = flavors.filter((f) => f !== 'openbao' && f !== 'vault');
if (unknown.length > 0) {
  log(`FERRY_VAULT_FLAVOR must be openbao, vault or both (openbao,vault), not '${unknown.join(',')}'`);
  process.exit(2);
}

const total = { pass: 0, fail: 0, skipped: 0 };
const add = (c: Counts): boolean => {
  total.pass += c.pass;
  total.fail += c.fail;
  total.skipped += c.skipped;
  return c.ok;
};

// Fail fast: static checks, unit and fuzz tests once, before any stack starts.
let ok =
  step('type check', bin('tsc'), ['--noEmit', '-p', '.']) &&
  step('lint', bin('biome'), ['ci', '.']) &&
  step('CRDs up to date', bin('node'), ['src/cli/crdgen.ts', '--check']) &&
  add(await nodeTest('unit tests', ['--test-concurrency=2', 'test/unit/**/*.test.ts'])) &&
  // A bounded budget (FERRY_FUZZ_RUNS multiplies it); a failure prints the seed that reproduces it.
  add(await nodeTest('fuzz tests', ['--test-concurrency=2', 'test/fuzz/**/*.test.ts']));

// End-to-end on the real stack (node, Ferry from its chart), once per flavour.
for (const flavor of flavors) {
  if (!ok) break;
  const started = Date.now();
  // Vault's aws auth method is tested against moto's STS on loopback (OpenBao has no aws plugin).
  if (flavor === 'vault') process.env.FERRY_MOTO_SERVER = join(peerDir('moto', log), 'moto_server');
  await stackUp({ flavor, log: (m) => log(`stack: ${m}`) });
  log(`stack (${flavor}) up in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  try {
    ok =
      add(
        await nodeTest(`end-to-end tests against ${flavor}`, ['--test-concurrency=2', 'test/e2e/*.test.ts']),
      ) &&
      add(
        await nodeTest(`operator restart tests against ${flavor}`, [
          '--test-concurrency=1',
          'test/e2e/serial/*.test.ts',
        ]),
      );
  } finally {
    await stackDown((m) => log(`stack: ${m}`));
  }
}
process.stdout.write(`\nferry: ${total.pass} passed, ${total.fail} failed, ${total.skipped} skipped\n`);
process.exitCode = ok ? 0 : 1;
