// Writes deploy/crds/<group>_<plural>.yaml for every Ferry kind. With --check it writes nothing and
// exits 1 when a committed file is missing or differs from what the schemas generate.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { crdFileName, crdYaml } from '../api/crd.ts';
import { ALL_KINDS } from '../api/kinds.ts';

const DEFAULT_OUT = join(import.meta.dirname, '..', '..', 'deploy', 'crds');

async function readOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function crdgen(opts: { outDir: string; check: boolean }): Promise<string[]> {
  const stale: string[] = [];
  for (const def of ALL_KINDS) {
    const path = join(opts.outDir, crdFileName(def));
    const want = crdYaml(def);
    if ((await readOrUndefined(path)) === want) continue;
    stale.push(path);
    if (!opts.check) await writeFile(path, want);
  }
  return stale;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { check: { type: 'boolean', default: false }, out: { type: 'string', default: DEFAULT_OUT } },
  });
  const stale = await crdgen({ outDir: values.out, check: values.check });
  if (values.check && stale.length > 0) {
    process.stderr.write(`stale CRDs (run \`npm run crds\`):\n${stale.map((p) => `  ${p}\n`).join('')}`);
    process.exitCode = 1;
  } else if (!values.check) {
    process.stdout.write(`crdgen: ${stale.length} of ${ALL_KINDS.length} files updated\n`);
  }
}

if (import.meta.main) await main();
