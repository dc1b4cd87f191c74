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

/** One JSON line of the operator's log (pino: `time` in epoch ms, `msg`, then its own fields). */
export interface LogLine {
  time: number;
  msg?: string;
  namespace?: string;
  name?: string;
  controller?: string;
  err?: { message?: string; code?: string; retryAfterSeconds?: number };
  [field: string]: unknown;
}

/** The JSON lines of `text` logged at or after `since` (epoch ms), in order; other lines skipped. */
export function logLines(text: string, since = 0): LogLine[] {
  const out: LogLine[] = [];
  for (const l of text.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      const line = JSON.parse(l) as LogLine;
      if (typeof line.time === 'number' && line.time >= since) out.push(line);
    } catch {
      // a line cut short by a kill
    }
  }
  return out;
}

/**
 * The operator's log across pod deletions: kubelet removes a pod's logs with the pod, so a test that
 * deletes one (or restarts the API server under it) calls keep() first. Lines kept and still there
 * appear twice: look lines up, do not count them.
 */
export class OperatorLogs {
  readonly #env: StackEnv;
  #kept = '';
  constructor(env: StackEnv) {
    this.#env = env;
  }
  /** Keeps what the operator logged so far. */
  keep(): void {
    this.#kept += operatorLog(this.#env);
  }
  /** What was kept, then what is there now. */
  text(): string {
    return this.#kept + operatorLog(this.#env);
  }
}
