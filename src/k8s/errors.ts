import { CODES, FerryError } from '../errors.ts';
import type { Status, StatusCause } from './types.ts';

// The StatusCause the NamespaceLifecycle admission plugin adds to a create in a terminating namespace.
const NAMESPACE_TERMINATING_CAUSE = 'NamespaceTerminating';

// Long server messages are cut so a pathological response cannot flood logs and conditions.
const MAX_MESSAGE = 1024;

/**
 * An API-level failure, built from the metav1.Status the apiserver returns. The message carries the
 * method, path and the server's Status message only: request bodies (which may hold Secret data)
 * and non-Status response bodies are never copied into it.
 */
export class K8sApiError extends FerryError {
  readonly status: number;
  readonly reason: string;
  readonly causes: StatusCause[];
  readonly retryAfterSeconds?: number;

  constructor(
    status: number,
    reason: string,
    message: string,
    opts: { causes?: StatusCause[]; retryAfterSeconds?: number | undefined; cause?: unknown } = {},
  ) {
    super(
      status === 403 && opts.causes?.some((c) => c.reason === NAMESPACE_TERMINATING_CAUSE)
        ? CODES.K8S_NAMESPACE_TERMINATING
        : CODES.K8S_API,
      message,
      opts.cause === undefined ? undefined : { cause: opts.cause },
    );
    this.status = status;
    this.reason = reason;
    this.causes = opts.causes ?? [];
    if (opts.retryAfterSeconds !== undefined) this.retryAfterSeconds = opts.retryAfterSeconds;
  }

  isNotFound(): boolean {
    return this.status === 404;
  }
  isConflict(): boolean {
    return this.status === 409 && this.reason !== 'AlreadyExists';
  }
  isAlreadyExists(): boolean {
    return this.status === 409 && this.reason === 'AlreadyExists';
  }
  isGone(): boolean {
    return this.status === 410;
  }
  isForbidden(): boolean {
    return this.status === 403;
  }
  isInvalid(): boolean {
    return this.status === 422;
  }
  isTooManyRequests(): boolean {
    return this.status === 429;
  }
  /** A create refused because the namespace is being deleted: it can never succeed there. */
  isNamespaceTerminating(): boolean {
    return this.code === CODES.K8S_NAMESPACE_TERMINATING;
  }
}

export function isK8sApiError(err: unknown): err is K8sApiError {
  return err instanceof K8sApiError;
}

// Reasons the apiserver uses when a body is not a Status (e.g. a proxy's HTML error page).
const REASON_BY_STATUS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Gone',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

export function isStatus(v: unknown): v is Status {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'Status';
}

/**
 * Builds a K8sApiError from an HTTP status, the raw response body and the Retry-After header.
 * `context` (e.g. "GET /api/v1/...") prefixes the message.
 */
export function errorFromResponse(
  context: string,
  httpStatus: number,
  bodyText: string,
  retryAfterHeader?: string,
  now: () => number = Date.now,
): K8sApiError {
  let status: Status | undefined;
  try {
    const parsed: unknown = JSON.parse(bodyText);
    if (isStatus(parsed)) status = parsed;
  } catch {
    // Not JSON: fall through with the HTTP status alone.
  }
  return errorFromStatus(context, status ?? {}, httpStatus, parseRetryAfter(retryAfterHeader, now));
}

/** Builds a K8sApiError from a Status (also used for in-stream watch ERROR events). */
export function errorFromStatus(
  context: string,
  status: Status,
  httpStatus?: number,
  retryAfterSeconds?: number,
): K8sApiError {
  const code = status.code ?? httpStatus ?? 500;
  const reason = status.reason || REASON_BY_STATUS[code] || 'Unknown';
  const serverMessage = status.message ? truncate(status.message) : reason;
  const retryAfter = retryAfterSeconds ?? status.details?.retryAfterSeconds;
  const causes = (status.details?.causes ?? []).map((c) => {
    const out: StatusCause = {};
    if (c.field !== undefined) out.field = c.field;
    if (c.message !== undefined) out.message = truncate(c.message);
    if (c.reason !== undefined) out.reason = c.reason;
    return out;
  });
  return new K8sApiError(code, reason, `${context}: ${code} ${reason}: ${serverMessage}`, {
    causes,
    retryAfterSeconds: retryAfter,
  });
}

/** Retry-After is either delta-seconds or an HTTP-date (RFC 9110 §10.2.3). */
export function parseRetryAfter(
  header: string | undefined,
  now: () => number = Date.now,
): number | undefined {
  if (header === undefined) return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now()) / 1000));
}

function truncate(s: string): string {
  return s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE)}…` : s;
}
