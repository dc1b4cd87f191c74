// Ferry's error root. Every error Ferry throws carries a stable `code` (declared once in CODES and
// never reused) and an optional `cause`. The Symbol.for brand keeps `isFerryError` working across
// duplicate module instances, as undici does.
const kFerryError = Symbol.for('ferry.error');

export const CODES = {
  // k8s
  K8S_API: 'FERRY_ERR_K8S_API',
  K8S_TRANSPORT: 'FERRY_ERR_K8S_TRANSPORT',
  K8S_WATCH: 'FERRY_ERR_K8S_WATCH',
  // a create refused because its namespace is being deleted (the NamespaceTerminating cause)
  K8S_NAMESPACE_TERMINATING: 'FERRY_ERR_K8S_NAMESPACE_TERMINATING',
  KUBECONFIG: 'FERRY_ERR_KUBECONFIG',
  // vault
  VAULT_API: 'FERRY_ERR_VAULT_API',
  VAULT_TRANSPORT: 'FERRY_ERR_VAULT_TRANSPORT',
  VAULT_CONFIG: 'FERRY_ERR_VAULT_CONFIG',
  VAULT_AUTH: 'FERRY_ERR_VAULT_AUTH',
  VAULT_RESPONSE_TOO_LARGE: 'FERRY_ERR_VAULT_RESPONSE_TOO_LARGE',
  VAULT_ADDRESS_NOT_ALLOWED: 'FERRY_ERR_VAULT_ADDRESS_NOT_ALLOWED',
  // resources
  INVALID_REF: 'FERRY_ERR_INVALID_REF',
  NAMESPACE_NOT_ALLOWED: 'FERRY_ERR_NAMESPACE_NOT_ALLOWED',
  INVALID_CONFIG: 'FERRY_ERR_INVALID_CONFIG',
  NOT_OWNER: 'FERRY_ERR_NOT_OWNER',
  DESTINATION_NOT_OPTED_IN: 'FERRY_ERR_DESTINATION_NOT_OPTED_IN',
  DESTINATION_MISSING: 'FERRY_ERR_DESTINATION_MISSING',
  SECRET_DATA: 'FERRY_ERR_SECRET_DATA',
  TEMPLATE: 'FERRY_ERR_TEMPLATE',
  TEMPLATE_LIMIT: 'FERRY_ERR_TEMPLATE_LIMIT',
  // the CSI driver lacks what a login needs (a pod token audience, Secret reads, TokenRequest)
  CSI_PRECONDITION: 'FERRY_ERR_CSI_PRECONDITION',
  // the ferry command
  USAGE: 'FERRY_ERR_USAGE',
  MANIFEST: 'FERRY_ERR_MANIFEST',
  // runtime
  TERMINAL: 'FERRY_ERR_TERMINAL',
  LEADER_ELECTION: 'FERRY_ERR_LEADER_ELECTION',
} as const;

export type ErrorCode = (typeof CODES)[keyof typeof CODES];

export class FerryError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
  get [kFerryError](): true {
    return true;
  }
}

export function isFerryError(err: unknown): err is FerryError {
  return (
    typeof err === 'object' && err !== null && (err as { [kFerryError]?: boolean })[kFerryError] === true
  );
}

/** A failure retrying cannot fix (bad spec, missing reference that needs user action). The controller
 * loop logs it, reports it in status and does not requeue with backoff. */
export class TerminalError extends FerryError {
  /** What the object's own deletion, or its namespace's, brings about (outcome.ts decides): the
   * controller stops at a debug line, with no error logged or counted. */
  readonly expected: boolean;
  constructor(message: string, options?: { cause?: unknown; code?: ErrorCode; expected?: boolean }) {
    super(options?.code ?? CODES.TERMINAL, message, options);
    this.expected = options?.expected ?? false;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const isErrorLike = (v: unknown): v is { message: string; cause?: unknown } =>
  typeof v === 'object' && v !== null && typeof (v as { message?: unknown }).message === 'string';

/**
 * `err`'s message followed by those of its causes ("a: b: c", as pino's err serializer joins them),
 * except that a cause whose message the text already holds adds nothing: Ferry's wrappers keep the
 * cause's message in their own (errorFor's TerminalError, `${what}: ${errorMessage(err)}`), so
 * joining them again logged "duration X is too large: duration X is too large".
 */
export function messageWithCauses(err: unknown): string {
  let text = isErrorLike(err) ? err.message : String(err);
  const seen = new Set<unknown>([err]);
  for (let cur = err; isErrorLike(cur) && isErrorLike(cur.cause) && !seen.has(cur.cause); cur = cur.cause) {
    seen.add(cur.cause);
    const m = cur.cause.message;
    if (m !== '' && !text.includes(m)) text += `: ${m}`;
  }
  return text;
}
