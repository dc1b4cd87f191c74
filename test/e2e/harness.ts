// End-to-end tests share one real stack, started by `npm test` (or `npm run stack -- up`).
// This module only reads its description; it never fakes a component.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ChartEnv } from '../../stack/lib/chart.ts';
import type { NodeEnv } from '../../stack/lib/node.ts';
import { logLines, operatorLog } from '../../stack/lib/operator-log.ts';
import { loadStackEnv, operatorIncarnation, type StackEnv } from '../../stack/lib/stack.ts';

export type { StackEnv };
export { logLines, operatorIncarnation, operatorLog };

let cached: StackEnv | undefined;

export async function useStack(): Promise<StackEnv> {
  cached ??= loadStackEnv();
  return cached;
}

export type ChartStackEnv = StackEnv & { node: NodeEnv; chart: ChartEnv };

/** The stack in chart mode (`npm run stack -- up`'s default): a node and the operator as pods, for
 * tests that kill pods or read kubelet's logs; fails at once otherwise, naming `needs`. */
export async function useChartStack(needs: string): Promise<ChartStackEnv> {
  const env = await useStack();
  const { node, chart } = env;
  assert.ok(node && chart, `${needs} needs the stack in chart mode (node, operator pods)`);
  return { ...env, node, chart };
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
