// End-to-end tests share one real stack, started by `npm test` (or `npm run stack -- up`).
// This module only reads its description; it never fakes a component.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { operatorLog } from '../../stack/lib/operator-log.ts';
import { loadStackEnv, operatorIncarnation, type StackEnv } from '../../stack/lib/stack.ts';

export type { StackEnv };
export { operatorIncarnation, operatorLog };

let cached: StackEnv | undefined;

export async function useStack(): Promise<StackEnv> {
  cached ??= loadStackEnv();
  return cached;
}

/** A namespace name unique to one test, so test files can run in parallel on one stack. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
}

const FERRY = join(import.meta.dirname, '..', '..', 'src', 'cli', 'ferry.ts');

/** Runs the `ferry` command as users run it (`node src/cli/ferry.ts`, the image's entry) with the
 * stack's admin kubeconfig and no colour; resolves with its output and exit code, never rejects. */
export async function ferry(
  env: Pick<StackEnv, 'kubeconfig'>,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [FERRY, ...args, '--kubeconfig', env.kubeconfig],
      { env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000 },
    );
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
