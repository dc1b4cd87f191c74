// What the operator under test logged, wherever it runs (chart pods or a local process).
import { readFileSync } from 'node:fs';
import { OPERATOR_DEPLOYMENT } from './chart.ts';
import { podLogs } from './node.ts';
import type { StackEnv } from './stack.ts';

/** Everything the operator under test has logged (all its pods, or its process), one line each. */
export function operatorLog(env: StackEnv): string {
  if (env.operator?.log) return readFileSync(env.operator.log, 'utf8');
  if (env.node && env.chart) {
    return podLogs(env.node.podLogsDir, env.operatorNamespace, `${OPERATOR_DEPLOYMENT}-`, 'manager');
  }
  return '';
}
