// The one outcome policy of the controllers: what a failure means for the user (the Event and
// condition reason) and for timing (retry with backoff, poll, stop, or give up on a cleanup). The
// secret kinds classify the errors they catch (classify) and build their errorPolicy from it; the
// status-only kinds classify what their checks find (classifyFinding). No error branch computes its
// own requeue or picks its own reason (design-anchors §2.3).

import { jitterDown } from '../backoff.ts';
import type { Random } from '../clock.ts';
import { REASONS, type Reason } from '../consts/reasons.ts';
import { CODES, errorMessage, isFerryError, TerminalError } from '../errors.ts';
import { isK8sApiError } from '../k8s/errors.ts';
import type { EventRecorder, Involved } from '../k8s/events.ts';
import { type Action, awaitChange, type ErrorPolicy, requeueAfter } from '../runtime/controller.ts';

/** Where in a reconcile the error happened. */
export type Phase =
  /** Reading the spec and the destination Secret. */
  | 'spec'
  /** Resolving the VaultAuth/VaultConnection and logging in. */
  | 'access'
  /** A Vault request for the data (read, credentials, certificate). */
  | 'vault'
  /** Checking the referenced SecretTransformations. */
  | 'transformation'
  /** Shaping the data (templates, filters). */
  | 'shape'
  /** Renewing a lease. */
  | 'renew'
  /** Writing the destination Secret. */
  | 'destination'
  /** Revoking a lease or a certificate, or clearing a destination, while the object is deleted. */
  | 'revokeLease'
  | 'revokeCertificate'
  | 'clearDestination';

export type Timing =
  /** Rate-limited requeue (the controller's backoff). */
  | { retry: true }
  /** Waiting on something outside Ferry (a Secret someone must create): poll, not an error backoff. */
  | { requeueAfterMs: number }
  /** Only a change to the object can help. */
  | { terminal: true }
  /** A cleanup that keeps failing is retried until the object has been deleted this long. */
  | { giveUpAfterMs: number };

/** quiet: what the deletion of the object or of its namespace brings about (a reference deleted
 * first, a create refused): no Warning Event, and the controller logs it at debug, not as an error. */
export type Outcome = { reason: Reason; quiet?: true } & Timing;

/** What is known of the failed object going away. */
export interface Going {
  /** Its namespace refused a create as being terminated (EventRecorder.refusedAsTerminating). */
  namespaceTerminating?: boolean;
}

/** VSO requeues after about 5 s on a missing `create: false` destination. */
export const DESTINATION_POLL_MS = 5_000;

export interface CleanupLimits {
  /** How long after deletionTimestamp a failing cleanup is retried, so that a namespace never
   * hangs on an unreachable Vault. */
  giveUpMs: number;
  /** The same when the VaultAuth or VaultConnection is gone (typical of namespace deletion): its
   * cached token was revoked with it, and the leases that token created with it. */
  giveUpNoAuthMs: number;
}

export const DEFAULT_CLEANUP_LIMITS: CleanupLimits = Object.freeze({
  giveUpMs: 5 * 60_000,
  giveUpNoAuthMs: 30_000,
});

const PHASE_REASON: Record<Phase, Reason> = {
  spec: REASONS.K8sClientError,
  access: REASONS.VaultClientConfigError,
  vault: REASONS.VaultClientError,
  transformation: REASONS.TransformationError,
  shape: REASONS.SecretDataBuilderError,
  renew: REASONS.SecretLeaseRenewalError,
  destination: REASONS.SecretSyncError,
  revokeLease: REASONS.SecretLeaseRevoke,
  revokeCertificate: REASONS.CertificateRevocationError,
  clearDestination: REASONS.CertificateRevocationError,
};

const CLEANUP_PHASES: ReadonlySet<Phase> = new Set(['revokeLease', 'revokeCertificate', 'clearDestination']);

/** A reference or configuration error: the Vault session cannot be built. */
const isNoAccess = (err: unknown): boolean =>
  isFerryError(err) &&
  (err.code === CODES.INVALID_REF ||
    err.code === CODES.NAMESPACE_NOT_ALLOWED ||
    err.code === CODES.INVALID_CONFIG ||
    err.code === CODES.VAULT_ADDRESS_NOT_ALLOWED);

/** A create refused because the namespace is being deleted (by its code: redactError keeps only that). */
const isTerminating = (err: unknown): boolean =>
  isFerryError(err) && err.code === CODES.K8S_NAMESPACE_TERMINATING;

/** A referenced object (VaultAuth, VaultConnection, SecretTransformation…) that does not exist. */
const isMissingRef = (err: unknown): boolean => isFerryError(err) && err.code === CODES.INVALID_REF;

export function classify(
  err: unknown,
  phase: Phase,
  limits: CleanupLimits = DEFAULT_CLEANUP_LIMITS,
  going: Going = {},
): Outcome {
  if (CLEANUP_PHASES.has(phase)) {
    const reason = PHASE_REASON[phase];
    // A destination that is already gone, or going with its namespace, needs no clearing.
    if (phase === 'clearDestination' && ((isK8sApiError(err) && err.isNotFound()) || isTerminating(err)))
      return { reason, giveUpAfterMs: 0 };
    // The VaultAuth deleted before the object (namespace deletion, `kubectl delete -f`): its token
    // was revoked with it, and the leases that token created with it. A certificate outlives it.
    if (phase === 'revokeLease' && isMissingRef(err)) return { reason, giveUpAfterMs: 0, quiet: true };
    return { reason, giveUpAfterMs: isNoAccess(err) ? limits.giveUpNoAuthMs : limits.giveUpMs };
  }
  // Nothing can be created in a namespace being deleted, and the object goes with it: stop here.
  if (isTerminating(err) || (going.namespaceTerminating && isMissingRef(err)))
    return { reason: PHASE_REASON[phase], terminal: true, quiet: true };
  if (err instanceof TerminalError) return { reason: REASONS.InvalidConfiguration, terminal: true };
  if (isFerryError(err)) {
    if (err.code === CODES.DESTINATION_MISSING)
      return { reason: REASONS.InexistentDestination, requeueAfterMs: DESTINATION_POLL_MS };
    if (err.code === CODES.VAULT_ADDRESS_NOT_ALLOWED)
      return { reason: REASONS.VaultAddressNotAllowed, retry: true };
    if (err.code === CODES.DESTINATION_NOT_OPTED_IN)
      return { reason: REASONS.DestinationNotOptedIn, retry: true };
    // An invalid spec, found reading it or shaping the Vault request from it: only an edit helps.
    if ((phase === 'spec' || phase === 'vault') && err.code === CODES.INVALID_CONFIG)
      return { reason: REASONS.InvalidConfiguration, terminal: true };
    if (phase === 'vault' && err.code === CODES.SECRET_DATA)
      return { reason: REASONS.SecretDataBuilderError, retry: true };
  }
  return { reason: PHASE_REASON[phase], retry: true };
}

/** The error a reconciler throws for `outcome`: terminal outcomes become a TerminalError, so the
 * controller loop stops retrying, an expected one for a quiet outcome (not reported as an error).
 * It keeps the code of a FerryError. */
export function errorFor(err: unknown, outcome: Outcome): unknown {
  if ('terminal' in outcome && (!(err instanceof TerminalError) || outcome.quiet))
    return new TerminalError(err instanceof Error ? err.message : String(err), {
      cause: err,
      ...(isFerryError(err) && { code: err.code }),
      ...(outcome.quiet && { expected: true }),
    });
  return err;
}

/**
 * Classifies a reconcile's failure and records its Warning Event, unless the outcome is quiet. The
 * Event is also how Ferry learns that the namespace is being deleted (it refuses the create): the
 * failure is then classified again, knowing it.
 */
export async function reportFailure(
  events: Pick<EventRecorder, 'warning' | 'refusedAsTerminating'>,
  obj: Involved,
  phase: Phase,
  err: unknown,
): Promise<Outcome> {
  const going = (): Going => ({ namespaceTerminating: events.refusedAsTerminating(obj) });
  let outcome = classify(err, phase, DEFAULT_CLEANUP_LIMITS, going());
  if (outcome.quiet) return outcome;
  await events.warning(obj, outcome.reason, errorMessage(err));
  if (isMissingRef(err)) outcome = classify(err, phase, DEFAULT_CLEANUP_LIMITS, going());
  return outcome;
}

/** Whether a failed cleanup is released now: the object has been deleted for longer than the
 * outcome allows. */
export function givesUp(outcome: Outcome, deletionTimestamp: string | undefined, nowMs: number): boolean {
  if (!('giveUpAfterMs' in outcome)) return false;
  const since = nowMs - Date.parse(deletionTimestamp ?? '');
  return outcome.giveUpAfterMs === 0 || (Number.isFinite(since) && since >= outcome.giveUpAfterMs);
}

/** The errorPolicy of every secret kind: polls where the outcome says so, otherwise the default
 * rate-limited requeue. Only the error decides the timing of a thrown error: terminal outcomes were
 * thrown as TerminalError (errorFor) and never reach an errorPolicy. */
export function secretKindErrorPolicy(random: Random): ErrorPolicy {
  return (err) => {
    const outcome = classify(err, 'destination');
    return 'requeueAfterMs' in outcome ? requeueAfter(jitterDown(outcome.requeueAfterMs, random)) : undefined;
  };
}

/** The kinds that check rather than sync: they report what they find in status and a Warning Event
 * and never throw it. */
export type CheckedKind = 'VaultAuth' | 'VaultConnection' | 'SecretTransformation' | 'CSISecrets';

/** What such a check can find wrong. */
export type Finding =
  /** The spec itself is invalid (or, for a VaultConnection, no client can be built from it). */
  | 'config'
  /** A referenced object is missing, does not allow the referrer, or is invalid. */
  | 'reference'
  /** Templates or patterns do not compile. */
  | 'transformation'
  /** Vault is sealed or does not answer. */
  | 'unreachable'
  /** The VaultConnection's address is outside the operator's --vault-address-allowlist. */
  | 'address';

export type FindingOutcome = { reason: Reason } & ({ terminal: true } | { requeueAfterMs: number });

const FINDING_REASON: Record<Finding, Reason> = {
  config: REASONS.InvalidConfiguration,
  reference: REASONS.InvalidResourceRef,
  transformation: REASONS.TransformationError,
  unreachable: REASONS.VaultClientError,
  address: REASONS.VaultAddressNotAllowed,
};

function findingReason(kind: CheckedKind, finding: Finding): Reason {
  // VSO records every VaultAuth failure as a Warning with reason Accepted (vso-api.md §3.2), and
  // alerting on Event reasons must keep working.
  if (kind === 'VaultAuth') return REASONS.Accepted;
  if (kind === 'VaultConnection' && finding === 'config') return REASONS.VaultClientConfigError;
  return FINDING_REASON[finding];
}

/** A finding's reason and timing: a spec or reference problem waits for a change (the kind's watches
 * bring every change of what it refers to); an unreachable Vault is checked again after `recheckMs`. */
export function classifyFinding(kind: CheckedKind, finding: Finding, recheckMs = 0): FindingOutcome {
  const reason = findingReason(kind, finding);
  return finding === 'unreachable' ? { reason, requeueAfterMs: recheckMs } : { reason, terminal: true };
}

/** The reconcile result for a finding's outcome; the recheck is jittered down like every horizon. */
export function findingAction(outcome: FindingOutcome, random: Random): Action {
  return 'requeueAfterMs' in outcome
    ? requeueAfter(jitterDown(outcome.requeueAfterMs, random))
    : awaitChange();
}
