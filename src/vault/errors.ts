// Vault/OpenBao failures. VaultError carries only what is safe to show in status, Events and logs:
// the method, the request path, the HTTP status and Vault's own error strings, all passed through
// `redact`. Request bodies, response data and tokens never reach a message.
import { CODES, FerryError } from '../errors.ts';

// Vault service/batch/recovery tokens (`hvs.`, `hvb.`, `hvr.`) and legacy or OpenBao tokens (`s.`,
// `b.`, `r.`). The length floor keeps ordinary words such as "s.t" or version strings intact.
const TOKEN_LIKE = /\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_-]{16,}/g;
// A single Vault error string is normally one sentence; anything longer is truncated so that an
// unexpectedly verbose backend cannot smuggle large payloads into status conditions.
const MAX_ERROR_CHARS = 512;

/** Replaces anything that looks like a Vault token with `<redacted>`. Defensive: Vault does not echo
 * tokens in errors, but proxies and plugins in front of it might. */
export function redact(text: string): string {
  const scrubbed = text.replace(TOKEN_LIKE, '<redacted>');
  return scrubbed.length > MAX_ERROR_CHARS ? `${scrubbed.slice(0, MAX_ERROR_CHARS)}…` : scrubbed;
}

export interface VaultErrorInit {
  method: string;
  path: string;
  status?: number;
  errors?: readonly string[];
  /** Replaces the default summary; used for semantic errors such as a deleted KV version. */
  message?: string;
}

/** An error answer from the Vault API (HTTP status >= 400 or a semantically empty answer). */
export class VaultError extends FerryError {
  readonly method: string;
  readonly path: string;
  readonly status: number | undefined;
  /** Vault's `errors` strings, redacted. */
  readonly errors: readonly string[];

  constructor(init: VaultErrorInit) {
    const errors = (init.errors ?? []).map(redact);
    const path = redact(init.path);
    const summary =
      init.message ??
      `Vault ${init.method} ${path} failed${init.status === undefined ? '' : ` with status ${init.status}`}` +
        (errors.length > 0 ? `: ${errors.join('; ')}` : '');
    super(CODES.VAULT_API, redact(summary));
    this.method = init.method;
    this.path = path;
    this.status = init.status;
    this.errors = errors;
  }

  isForbidden(): boolean {
    return this.status === 403;
  }

  isNotFound(): boolean {
    return this.status === 404;
  }

  /** Vault answers 503 with "Vault is sealed" (OpenBao: "OpenBao is sealed"). A bare 503 without
   * errors is treated as sealed too: that is what a sealed standby behind a load balancer returns. */
  isSealed(): boolean {
    if (this.errors.some((e) => /\bis sealed\b/i.test(e))) return true;
    return this.status === 503 && this.errors.length === 0;
  }

  /** The lease no longer exists (expired, revoked, or never issued to this token). */
  isLeaseNotFound(): boolean {
    return this.errors.some((e) => /lease not found|invalid lease/i.test(e));
  }
}

export function isVaultError(err: unknown): err is VaultError {
  return err instanceof VaultError;
}

/** Builds a VaultError from a raw response body. The body is parsed only for `errors`; nothing else
 * from it is retained. */
export function vaultErrorFromBody(method: string, path: string, status: number, body: unknown): VaultError {
  return new VaultError({ method, path, status, errors: errorStrings(body) });
}

function errorStrings(body: unknown): string[] {
  if (typeof body !== 'object' || body === null) return [];
  const errors = (body as { errors?: unknown }).errors;
  if (!Array.isArray(errors)) return [];
  return errors.filter((e): e is string => typeof e === 'string');
}

/** The connection failed (DNS, TCP, TLS, timeout) before Vault could answer. */
export function vaultTransportError(method: string, path: string, cause: unknown): FerryError {
  const detail = cause instanceof Error ? describeTransportCause(cause) : 'unknown error';
  return new FerryError(CODES.VAULT_TRANSPORT, redact(`Vault ${method} ${path}: ${detail}`), { cause });
}

function describeTransportCause(err: Error): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
}
