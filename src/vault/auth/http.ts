// The few plain HTTP calls credential providers make to cloud endpoints (AWS STS, IMDS, ECS; Google
// STS, IAM Credentials, metadata). Answers are held to the Vault client's discipline (bounded-http.ts)
// with a smaller cap, as they are small: an endpoint a tenant points Ferry at (the VaultAuth's STS or
// metadata endpoint) cannot make it hold more or wait longer. Transport failures become VAULT_AUTH
// errors naming the endpoint and the error code only, never a request or body.
import { CODES, FerryError } from '../../errors.ts';
import type { Agent } from '../../undici.ts';
import { boundedAgent, isTooLarge, readBody } from '../bounded-http.ts';

/** STS credentials and metadata tokens are a few KiB. */
export const CLOUD_MAX_RESPONSE_BYTES = 1024 * 1024;
const DEFAULT_CLOUD_TIMEOUT_MS = 30_000;

// One pool per timeout (callers use a couple of constants), so the connect timeout is the call's too.
const agents = new Map<number, Agent>();
function agentFor(timeoutMs: number): Agent {
  let agent = agents.get(timeoutMs);
  if (!agent) {
    agent = boundedAgent({ timeoutMs, maxResponseBytes: CLOUD_MAX_RESPONSE_BYTES });
    agents.set(timeoutMs, agent);
  }
  return agent;
}

export interface CloudResponse {
  status: number;
  text: string;
}

export async function cloudCall(
  what: string,
  url: string,
  init: {
    method?: 'GET' | 'POST' | 'PUT';
    headers?: Record<string, string>;
    body?: string;
    timeoutMs?: number;
  } = {},
): Promise<CloudResponse> {
  const timeout = init.timeoutMs ?? DEFAULT_CLOUD_TIMEOUT_MS;
  try {
    const { origin, pathname, search } = new URL(url);
    const res = await agentFor(timeout).request({
      origin,
      path: `${pathname}${search}`,
      method: init.method ?? 'GET',
      ...(init.headers ? { headers: init.headers } : {}),
      ...(init.body !== undefined ? { body: init.body } : {}),
    });
    return { status: res.statusCode, text: await readBody(res.body, timeout) };
  } catch (err) {
    if (isTooLarge(err)) {
      throw new FerryError(
        CODES.VAULT_AUTH,
        `${what}: the answer from ${url} exceeds the limit of ${CLOUD_MAX_RESPONSE_BYTES} bytes`,
        { cause: err },
      );
    }
    const code = (err as { code?: string }).code ?? (err as Error).name ?? 'error';
    throw new FerryError(CODES.VAULT_AUTH, `${what}: cannot reach ${url} (${code})`, { cause: err });
  }
}

/** A 200 answer's JSON object, else a VAULT_AUTH error naming the step and status. */
export async function cloudJson(
  what: string,
  url: string,
  init?: Parameters<typeof cloudCall>[2],
): Promise<Record<string, unknown>> {
  const res = await cloudCall(what, url, init);
  if (res.status !== 200)
    throw new FerryError(CODES.VAULT_AUTH, `${what} at ${url} failed: HTTP ${res.status}`);
  try {
    const v: unknown = JSON.parse(res.text);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new FerryError(
    CODES.VAULT_AUTH,
    `${what} at ${url} answered with something other than a JSON object`,
  );
}
