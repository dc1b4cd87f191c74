// What the operator and the CSI driver load at start: packages they do not need there cost every
// pod memory for its whole life (docs/memory.md). A child process loads each entry point (which
// stops at the unknown flag, after every static import) and lists the packages it loaded.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..', '..');

const loaded = (entry: string): string[] => {
  const child = `
const { registerHooks } = await import('node:module');
const urls = [];
registerHooks({ load: (url, context, next) => (urls.push(url), next(url, context)) });
process.argv = [process.argv[0], 'entry', '--compile-cache-only'];
try { await import(${JSON.stringify(join(ROOT, 'src', 'cli', entry))}); } catch {}
console.log(JSON.stringify(urls.filter((u) => u.includes('/node_modules/')).map((u) => u.replace(/^.*node_modules\\//, ''))));
`;
  return JSON.parse(
    execFileSync(process.execPath, ['--input-type=module', '-e', child], { encoding: 'utf8', cwd: ROOT }),
  ) as string[];
};

describe('startup footprint', () => {
  for (const entry of ['operator.ts', 'csi-driver.ts']) {
    it(`${entry} loads neither the CRD schemas, the YAML parser nor undici's index`, () => {
      const files = loaded(entry);
      assert.ok(
        files.some((f) => f.startsWith('undici/lib/dispatcher/agent.js')),
        files.join(' '),
      );
      for (const pkg of ['typebox/', 'yaml/', 'ajv/', 'undici/index.js', 'undici/lib/web/'])
        assert.deepEqual(
          files.filter((f) => f.startsWith(pkg)),
          [],
          `${entry} loads ${pkg}`,
        );
    });
  }

  it('operator.ts does not load the CSI driver (gRPC)', () => {
    assert.deepEqual(
      loaded('operator.ts').filter((f) => f.startsWith('@grpc/')),
      [],
    );
  });
});
