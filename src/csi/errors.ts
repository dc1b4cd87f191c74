// gRPC status for every failure the driver reports to kubelet (design-anchors §1.6, §3.5):
// request validation → INVALID_ARGUMENT, authorisation → PERMISSION_DENIED, a missing CSISecrets →
// INTERNAL as VSO does (its message says "not found"), mount and file errors → INTERNAL. Messages
// name objects, fields and paths, never token or secret values.
import { status } from '@grpc/grpc-js';
import { CODES, errorMessage, isFerryError } from '../errors.ts';
import { isK8sApiError } from '../k8s/errors.ts';

export type CsiCode =
  | 'INVALID_ARGUMENT'
  | 'PERMISSION_DENIED'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'RESOURCE_EXHAUSTED'
  | 'ABORTED'
  | 'UNAVAILABLE'
  | 'INTERNAL'
  | 'UNIMPLEMENTED';

export class CsiError extends Error {
  readonly code: CsiCode;
  constructor(code: CsiCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CsiError';
    this.code = code;
  }
  get grpcCode(): status {
    return status[this.code];
  }
}

export const invalidArgument = (message: string): CsiError => new CsiError('INVALID_ARGUMENT', message);
export const permissionDenied = (message: string): CsiError => new CsiError('PERMISSION_DENIED', message);

/** Any error as a CsiError: Ferry errors keep their (already redacted) message and map by kind. */
export function toCsiError(err: unknown, fallback: CsiCode = 'INTERNAL'): CsiError {
  if (err instanceof CsiError) return err;
  if (isK8sApiError(err)) {
    if (err.isForbidden()) return new CsiError('INTERNAL', `kubernetes API: ${err.message}`, { cause: err });
    return new CsiError(err.status >= 500 ? 'UNAVAILABLE' : 'INTERNAL', err.message, { cause: err });
  }
  if (isFerryError(err))
    return new CsiError(needsSetup(err) ? 'FAILED_PRECONDITION' : fallback, err.message, { cause: err });
  return new CsiError(fallback, errorMessage(err), { cause: err });
}

/** The driver lacks what the login needs (a pod token audience, Secret reads, TokenRequest): the
 * installation must change, which FAILED_PRECONDITION says; the error may be wrapped (a login). */
function needsSetup(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++)
    if (isFerryError(e) && e.code === CODES.CSI_PRECONDITION) return true;
  return false;
}
