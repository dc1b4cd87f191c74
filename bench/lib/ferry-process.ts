// Ferry as a local process, run as the image runs it: the image's V8 flags and a compile cache
// filled beforehand (src/cli/compile-cache.ts), so a benchmark measures what a pod would use
// (docs/memory.md) rather than a checkout's Node defaults.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { NODE_OPTIONS } from '../../stack/lib/images.ts';
import { repoRoot } from '../../stack/lib/stack.ts';

export const IMAGE_NODE_FLAGS: string[] = NODE_OPTIONS.split(' ').filter(Boolean);

/** Fills a compile cache under `dir` with `nodeFlags` (V8 rejects code cached under other flags)
 * and returns the environment that makes Ferry's processes use it. */
export function compileCacheEnv(dir: string, nodeFlags: string[]): NodeJS.ProcessEnv {
  const env = { NODE_COMPILE_CACHE: join(dir, 'compile-cache'), NODE_COMPILE_CACHE_PORTABLE: '1' };
  execFileSync(process.execPath, [...nodeFlags, join(repoRoot, 'src', 'cli', 'compile-cache.ts')], {
    env: { ...process.env, ...env },
    stdio: 'inherit',
  });
  return env;
}

/** Ferry's operator entry point and the flags every bench starts it with: the stack's kubeconfig and
 * operator namespace, metrics and probes on loopback ports. */
export function operatorArgs(
  env: { operatorKubeconfig: string; operatorNamespace: string },
  ports: { metrics: number; health: number },
): string[] {
  return [
    join(repoRoot, 'src', 'cli', 'operator.ts'),
    `--kubeconfig=${env.operatorKubeconfig}`,
    `--operator-namespace=${env.operatorNamespace}`,
    `--metrics-bind-address=127.0.0.1:${ports.metrics}`,
    `--health-probe-bind-address=127.0.0.1:${ports.health}`,
  ];
}
