// The whole test suite, as CI runs it: static checks, then unit and end-to-end tests against a
// freshly started real stack (OpenBao by default; FERRY_VAULT_FLAVOR=vault for HashiCorp Vault).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { type Flavor, repoRoot, stackDown, stackUp } from '../stack/lib/stack.ts';

const bin = (name: string): string => join(repoRoot, 'node_modules', '.bin', name);
const log = (m: string): void => {
  process.stderr.write(`[test] ${m}\n`);
};

function step(label: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): boolean {
  log(label);
  const started = Date.now();
  const r = spawnSync(cmd, args, { cwd: repoRoot, stdio: 'inherit', env });
  log(`${label}: ${r.status === 0 ? 'ok' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return r.status === 0;
}

const flavor = (process.env.FERRY_VAULT_FLAVOR ?? 'openbao') as Flavor;
if (flavor !== 'openbao' && flavor !== 'vault') {
  log(`FERRY_VAULT_FLAVOR must be openbao or vault, not '${flavor}'`);
  process.exit(2);
}

let ok =
  step('type check', bin('tsc'), ['--noEmit', '-p', '.']) &&
  step('lint', bin('biome'), ['ci', '.']) &&
  step('CRDs up to date', bin('node'), ['src/cli/crdgen.ts', '--check']);

if (ok) {
  await stackUp({ flavor, log: (m) => log(`stack: ${m}`) });
  try {
    ok = step(`unit and end-to-end tests against ${flavor}`, bin('node'), [
      '--test',
      '--test-reporter=spec',
      '--test-concurrency=2',
      'test/unit/**/*.test.ts',
      'test/e2e/**/*.test.ts',
    ]);
  } finally {
    await stackDown((m) => log(`stack: ${m}`));
  }
}
process.exitCode = ok ? 0 : 1;
