// The discipline every HTTP answer Ferry reads from a server a tenant names (Vault, and the cloud
// endpoints its auth methods call) is held to: a cap on the body size, an idle timeout on headers and
// body, and a deadline for the whole body, so a hostile or broken server can make Ferry neither hold
// more than the cap nor wait longer than the timeout.
import { Agent, type Dispatcher } from '../undici.ts';

/** Error code undici gives a body cut off at the Agent's `maxResponseSize`. */
const TOO_LARGE_CODE = 'UND_ERR_RES_EXCEEDED_MAX_SIZE';

/** An Agent whose every response is bounded: headers and body idle at most `timeoutMs`, the body at
 * most `maxResponseBytes` long. */
export function boundedAgent(opts: {
  timeoutMs: number;
  maxResponseBytes: number;
  connect?: Record<string, unknown>;
}): Agent {
  return new Agent({
    connect: { timeout: opts.timeoutMs, ...opts.connect },
    headersTimeout: opts.timeoutMs,
    bodyTimeout: opts.timeoutMs,
    maxResponseSize: opts.maxResponseBytes,
  });
}

/** The body as text, within `timeoutMs` as a whole. undici's bodyTimeout is an idle timer: a server
 * dripping a byte at a time would hold the request forever; this is Go's http.Client.Timeout. */
export async function readBody(body: Dispatcher.ResponseData['body'], timeoutMs: number): Promise<string> {
  const timer = setTimeout(() => body.destroy(new BodyTimeoutError(timeoutMs)), timeoutMs);
  try {
    return await body.text();
  } finally {
    clearTimeout(timer);
  }
}

/** Whether a request failed because the body passed the Agent's size cap. */
export function isTooLarge(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === TOO_LARGE_CODE;
}

export class BodyTimeoutError extends Error {
  readonly code = 'FERRY_BODY_TIMEOUT';
  constructor(ms: number) {
    super(`response body not received within ${ms} ms`);
  }
}
