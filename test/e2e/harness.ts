// End-to-end tests share one real stack, started by `npm test` (or `npm run stack -- up`).
// This module only reads its description; it never fakes a component.
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
