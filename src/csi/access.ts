// Who may mount a CSISecrets: the request's pod identity (from kubelet's volume context, proven by
// the pod-bound ServiceAccount token) checked against `spec.accessControl`.
//
// Matching (vso-api.md §3.10): the ServiceAccount pattern and the namespace are always enforced.
// The namespace must match one of `namespacePatterns`, or, without them, be the CSISecrets' own
// namespace (VSO then admits every namespace: a pod anywhere whose ServiceAccount name matched got
// another tenant's secrets). The other rules are the pod-name patterns and the pod labels; a rule
// counts only when it is configured. With matchPolicy `all` (the default) every configured rule must
// match; with `any` one of them is enough (a matching namespace pattern counts as one, as in VSO).
// Pod names and labels are chosen by whoever creates the pod, so under `any` they never admit a pod
// from a namespace outside the allowed ones (VSO lets them).
// A pattern list matches when one of its patterns matches; labels match when every listed label is
// present with exactly that value.
//
// Patterns are RE2 and must match the WHOLE value (anchored). Go's MatchString, which VSO would use,
// matches substrings: `app` would admit `evil-app-2`. For an authorisation rule that is a trap, so
// Ferry anchors; a pattern written for substring matching fails closed (denies), never open.
import { RE2JS } from 're2js';
import type { AccessControl } from '../api/v1beta1/csisecrets.ts';
import { invalidArgument } from './errors.ts';
import { type PodTokenSet, parsePodTokens } from './pod-tokens.ts';

export interface PodIdentity {
  name: string;
  namespace: string;
  uid: string;
  serviceAccount: string;
}

export interface AccessSubject extends PodIdentity {
  /** The pod's labels; needed only when `podLabels` is configured. */
  labels?: Record<string, string>;
}

export type AccessDecision = { allowed: true } | { allowed: false; reason: string };

const compiled = new Map<string, RE2JS>();

function re(pattern: string): RE2JS {
  let r = compiled.get(pattern);
  if (!r) {
    r = RE2JS.compile(pattern); // validated beforehand by validateCSISecrets
    if (compiled.size >= 500) compiled.delete(compiled.keys().next().value as string);
    compiled.set(pattern, r);
  }
  return r;
}

/** Whole-value RE2 match. */
export function fullMatch(pattern: string, value: string): boolean {
  return re(pattern).matches(value);
}

/** Whether `pod` may mount the CSISecrets with access control `ac` that lives in `home`. */
export function checkAccess(ac: AccessControl, pod: AccessSubject, home: string): AccessDecision {
  if (!fullMatch(ac.serviceAccountPattern, pod.serviceAccount)) {
    return { allowed: false, reason: `service account ${pod.serviceAccount} does not match` };
  }
  const ns = ac.namespacePatterns ?? [];
  if (ns.length === 0 && pod.namespace !== home) {
    return {
      allowed: false,
      reason: `namespace ${pod.namespace} is not the CSISecrets' own and accessControl.namespacePatterns is unset`,
    };
  }
  if (ns.length > 0 && !ns.some((p) => fullMatch(p, pod.namespace))) {
    return { allowed: false, reason: `namespace ${pod.namespace} does not match` };
  }
  const rules: { name: string; ok: () => boolean }[] = [];
  // Matched above; under `any` it is the one rule that suffices, as in VSO.
  if (ns.length > 0) rules.push({ name: 'namespace', ok: () => true });
  const names = ac.podNamePatterns ?? [];
  if (names.length > 0) rules.push({ name: 'pod name', ok: () => names.some((p) => fullMatch(p, pod.name)) });
  const labels = Object.entries(ac.podLabels ?? {});
  if (labels.length > 0) {
    rules.push({ name: 'pod labels', ok: () => labels.every(([k, v]) => pod.labels?.[k] === v) });
  }
  if (rules.length === 0) return { allowed: true };
  const policy = ac.matchPolicy ?? 'all';
  if (policy === 'any') {
    if (rules.some((r) => r.ok())) return { allowed: true };
    return { allowed: false, reason: `none of ${rules.map((r) => r.name).join(', ')} matches` };
  }
  const failed = rules.filter((r) => !r.ok()).map((r) => r.name);
  return failed.length === 0
    ? { allowed: true }
    : { allowed: false, reason: `${failed.join(', ')} does not match` };
}

export interface ContainerState {
  namePattern?: string | undefined;
  imagePattern?: string | undefined;
}

export interface PodContainers {
  spec?: { containers?: { name: string; image?: string }[] };
  status?: { containerStatuses?: { name: string; restartCount?: number }[] };
}

/** Names of the pod's containers that match syncConfig.containerState (every set pattern, whole
 * value). With containerState set, a pod must have one to be authorised (VSO). */
export function matchingContainers(cs: ContainerState, pod: PodContainers): string[] {
  return (pod.spec?.containers ?? [])
    .filter(
      (c) =>
        (!cs.namePattern || fullMatch(cs.namePattern, c.name)) &&
        (!cs.imagePattern || fullMatch(cs.imagePattern, c.image ?? '')),
    )
    .map((c) => c.name);
}

/** Whether a container matching containerState has restarted between two observations of the pod:
 * its restartCount went up. (Its first start is not a restart: the volume is published before any
 * container starts, so it already has fresh secrets.) */
export function restartedMatching(cs: ContainerState, before: PodContainers, after: PodContainers): boolean {
  const names = new Set(matchingContainers(cs, after));
  const count = (p: PodContainers, name: string) =>
    p.status?.containerStatuses?.find((s) => s.name === name)?.restartCount ?? 0;
  return [...names].some((n) => count(after, n) > count(before, n));
}

// Keys kubelet puts in the volume context of a CSI volume when the CSIDriver sets podInfoOnMount
// and tokenRequests (k8s.io/kubernetes pkg/volume/csi).
export const CTX = {
  podName: 'csi.storage.k8s.io/pod.name',
  podNamespace: 'csi.storage.k8s.io/pod.namespace',
  podUid: 'csi.storage.k8s.io/pod.uid',
  serviceAccount: 'csi.storage.k8s.io/serviceAccount.name',
  ephemeral: 'csi.storage.k8s.io/ephemeral',
  tokens: 'csi.storage.k8s.io/serviceAccount.tokens',
  csiSecretsName: 'csiSecretsName',
  csiSecretsNamespace: 'csiSecretsNamespace',
} as const;

export interface PublishContext {
  pod: PodIdentity;
  csiSecrets: { namespace: string; name: string };
  /** The pod-bound token for the driver's audience, which proves who the pod is. Never logged. */
  token: string;
  /** Every token kubelet passed, by audience: the Vault login takes the pod's from them. Never logged. */
  tokens: PodTokenSet;
}

// DNS-1123 subdomain (object names) and label (namespaces); UIDs are free-form but bounded.
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const UID = /^[-a-zA-Z0-9]{1,128}$/;

function required(ctx: Record<string, string>, key: string, shape: RegExp, what: string): string {
  const v = ctx[key];
  if (v === undefined || v === '') {
    throw invalidArgument(
      `volume context lacks ${key}: the CSIDriver must set podInfoOnMount (and the pod must set ${what})`,
    );
  }
  if (!shape.test(v)) throw invalidArgument(`volume context ${key} is not a valid ${what}`);
  return v;
}

/** Pod identity, CSISecrets reference and token from kubelet's volume context. */
export function parsePublishContext(ctx: Record<string, string>, audience: string): PublishContext {
  const pod: PodIdentity = {
    name: required(ctx, CTX.podName, SUBDOMAIN, 'pod name'),
    namespace: required(ctx, CTX.podNamespace, LABEL, 'namespace'),
    uid: required(ctx, CTX.podUid, UID, 'pod UID'),
    serviceAccount: required(ctx, CTX.serviceAccount, SUBDOMAIN, 'service account name'),
  };
  const name = ctx[CTX.csiSecretsName];
  if (!name) throw invalidArgument(`volume attribute ${CTX.csiSecretsName} is required`);
  if (!SUBDOMAIN.test(name))
    throw invalidArgument(`volume attribute ${CTX.csiSecretsName} is not a valid name`);
  const ns = ctx[CTX.csiSecretsNamespace] || pod.namespace;
  if (!LABEL.test(ns))
    throw invalidArgument(`volume attribute ${CTX.csiSecretsNamespace} is not a valid namespace`);

  const rawTokens = ctx[CTX.tokens];
  if (!rawTokens) {
    throw invalidArgument(
      `volume context lacks ${CTX.tokens}: the CSIDriver must request a token for audience ${audience}`,
    );
  }
  const tokens = parsePodTokens(rawTokens);
  const token = tokens.get(audience)?.token;
  if (token === undefined) {
    throw invalidArgument(`volume context ${CTX.tokens} has no token for audience ${audience}`);
  }
  return { pod, csiSecrets: { namespace: ns, name }, token, tokens };
}

/** The parts of a TokenReview status Ferry checks. */
export interface TokenReviewStatus {
  authenticated?: boolean;
  audiences?: string[];
  error?: string;
  user?: { username?: string; uid?: string; extra?: Record<string, string[]> };
}

const POD_NAME_EXTRA = 'authentication.kubernetes.io/pod-name';
const POD_UID_EXTRA = 'authentication.kubernetes.io/pod-uid';

/**
 * Whether a TokenReview result proves the request's pod identity: the token is authenticated for
 * the driver's audience, belongs to system:serviceaccount:<pod namespace>:<service account>, and
 * is bound to exactly this pod (name and UID). Returns the reason for a refusal.
 */
export function checkTokenReview(
  review: TokenReviewStatus,
  pod: PodIdentity,
  audience: string,
): AccessDecision {
  if (review.authenticated !== true) return { allowed: false, reason: 'service account token is not valid' };
  // An absent audiences list is no proof: the API server echoes the audiences it validated.
  if (!review.audiences?.includes(audience)) {
    return { allowed: false, reason: `service account token is not valid for audience ${audience}` };
  }
  const expected = `system:serviceaccount:${pod.namespace}:${pod.serviceAccount}`;
  if (review.user?.username !== expected) {
    return { allowed: false, reason: 'service account token belongs to another service account' };
  }
  const extra = review.user.extra ?? {};
  if (extra[POD_NAME_EXTRA]?.[0] !== pod.name || extra[POD_UID_EXTRA]?.[0] !== pod.uid) {
    return { allowed: false, reason: 'service account token is not bound to this pod' };
  }
  return { allowed: true };
}
