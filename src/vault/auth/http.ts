// The few plain HTTP calls credential providers make to cloud endpoints (AWS STS, IMDS, ECS; Google
// STS, IAM Credentials, metadata). Bodies are returned whole (they are small); transport failures
// become VAULT_AUTH errors naming the endpoint and the error code only, never a request or body.
import { request } from 'undici';
import { CODES, FerryError } from '../../errors.ts';

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
  const timeout = init.timeoutMs ?? 30_000;
  try {
    const res = await request(url, {
      method: init.method ?? 'GET',
      ...(init.headers ? { headers: init.headers } : {}),
      ...(init.body !== undefined ? { body: init.body } : {}),
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
    return { status: res.statusCode, text: await res.body.text() };
  } catch (err) {
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
