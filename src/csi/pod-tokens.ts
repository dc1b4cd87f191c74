// The pod's own ServiceAccount tokens, issued by kubelet (CSIDriver `tokenRequests`) and passed in
// the volume context of every NodePublishVolume (`csi.storage.k8s.io/serviceAccount.tokens`:
// `{"<audience>":{"token":"…","expirationTimestamp":"…"}}`). The driver logs in to Vault with them
// (kubernetes and jwt methods), as the pod's ServiceAccount, instead of minting tokens for any
// ServiceAccount with TokenRequest (docs/security.md). kubelet republishes periodically
// (`requiresRepublish`) with fresh tokens; the newest per target path is kept here, in memory only
// (never on disk, never logged), for the re-logins a session makes later, and dropped on unpublish.
// After a driver restart nothing is held: a volume's upkeep waits for kubelet's next republish.
//
// The volume context is parsed strictly and within bounds: whoever reaches the driver's socket is
// treated as hostile, and the tokens are the one thing in the context the driver passes on.
import { apiAudienceRefused } from '../delivery/vault-access.ts';
import { CODES, FerryError } from '../errors.ts';
import { invalidArgument } from './errors.ts';

export interface PodToken {
  token: string;
  /** Epoch ms; kubelet always says, and an absent expirationTimestamp counts as never expiring. */
  expiresAtMs: number;
}

/** Audience → token, as kubelet passed them. */
export type PodTokenSet = ReadonlyMap<string, PodToken>;

/** The volume context holds a few tokens of ~1 KiB each (one per audience of the CSIDriver). */
export const MAX_TOKENS_JSON_BYTES = 64 * 1024;
export const MAX_AUDIENCES = 16;
const MAX_AUDIENCE_LENGTH = 256;
const MAX_TOKEN_LENGTH = 16 * 1024;
/** A token is printable ASCII without spaces (a JWT is base64url and dots). */
const TOKEN_SHAPE = /^[\x21-\x7e]+$/;
/** RFC 3339 as kubelet writes metav1.Time (seconds, optional fraction, Z or an offset). */
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

const KEY = 'csi.storage.k8s.io/serviceAccount.tokens';
const bad = (why: string) => invalidArgument(`volume context ${KEY} ${why}`);

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses kubelet's tokens. Malformed, oversized or hostile input is INVALID_ARGUMENT naming the
 * problem, never the token. */
export function parsePodTokens(raw: string): PodTokenSet {
  if (raw.length > MAX_TOKENS_JSON_BYTES || Buffer.byteLength(raw) > MAX_TOKENS_JSON_BYTES)
    throw bad(`is larger than ${MAX_TOKENS_JSON_BYTES} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw bad('is not JSON');
  }
  if (!isPlainObject(parsed)) throw bad('is not a JSON object');
  const entries = Object.entries(parsed);
  if (entries.length > MAX_AUDIENCES) throw bad(`has more than ${MAX_AUDIENCES} audiences`);
  const out = new Map<string, PodToken>();
  for (const [audience, entry] of entries) {
    if (audience.length > MAX_AUDIENCE_LENGTH || !/^[\x20-\x7e]*$/.test(audience))
      throw bad('has an invalid audience');
    const what = `audience ${JSON.stringify(audience)}`;
    if (!isPlainObject(entry)) throw bad(`${what} is not an object`);
    const { token, expirationTimestamp } = entry;
    if (
      typeof token !== 'string' ||
      token === '' ||
      token.length > MAX_TOKEN_LENGTH ||
      !TOKEN_SHAPE.test(token)
    )
      throw bad(`${what} has no valid token`);
    let expiresAtMs = Number.POSITIVE_INFINITY;
    if (expirationTimestamp !== undefined) {
      expiresAtMs =
        typeof expirationTimestamp === 'string' && TIMESTAMP.test(expirationTimestamp)
          ? Date.parse(expirationTimestamp)
          : Number.NaN;
      if (!Number.isFinite(expiresAtMs)) throw bad(`${what} has an invalid expirationTimestamp`);
    }
    out.set(audience, { token, expiresAtMs });
  }
  return out;
}

/** Where kubelet's audiences are configured, for error messages that name the fix. */
export const AUDIENCES_VALUE = 'the chart value csi.driver.tokenAudiences (the CSIDriver’s tokenRequests)';

/**
 * The token to log in with for a VaultAuth that asks for `audiences` (kubernetes/jwt `audiences`;
 * none means the API server's default audience, the empty string): the first of them for which
 * kubelet passed a token that is still valid. kubelet's tokens carry exactly one audience each, so
 * a VaultAuth listing several should list the one its Vault role checks first.
 */
export function pickPodToken(
  tokens: PodTokenSet,
  audiences: readonly string[] | undefined,
  nowMs: number,
  opts: PickOptions = {},
): { audience: string; token: PodToken } {
  const wanted = audiences && audiences.length > 0 ? audiences : [''];
  const allowed = opts.refuseApiAudience ? wanted.filter((a) => a !== '') : wanted;
  for (const audience of allowed) {
    const t = tokens.get(audience);
    if (t && t.expiresAtMs > nowMs) return { audience, token: t };
  }
  if (allowed.length === 0) throw apiAudienceRefused(opts.refuseApiAudience ?? '');
  const names = allowed
    .map((a) => (a === '' ? '"" (the API server’s default)' : JSON.stringify(a)))
    .join(', ');
  const expired = allowed.some((a) => tokens.has(a));
  throw new FerryError(
    CODES.CSI_PRECONDITION,
    expired
      ? `the pod's kubelet-issued token for audience ${names} has expired; kubelet passes a fresh one at its next republish`
      : `kubelet passed no token for audience ${names} with the pod's volume: add it to ${AUDIENCES_VALUE}`,
  );
}

export interface PickOptions {
  /** Why the token for the API server's audience ("") may not be used here, if it may not: it
   * authenticates to the Kubernetes API as the pod's ServiceAccount, so it goes only to a Vault the
   * pod's own namespace or the cluster's administrator chose. */
  refuseApiAudience?: string | undefined;
}

/** Whether a token's claims (unverified here; Vault has the API server verify them) name this
 * pod's ServiceAccount and, when bound to a pod, this pod: what Vault would log in as. */
export function claimsMatch(token: string, pod: PodRef): boolean {
  const payload = token.split('.')[1];
  if (payload === undefined || payload.length > MAX_TOKEN_LENGTH) return false;
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return false;
  }
  if (!isPlainObject(claims)) return false;
  if (claims.sub !== `system:serviceaccount:${pod.namespace}:${pod.serviceAccount}`) return false;
  const k8s = claims['kubernetes.io'];
  const boundPod = isPlainObject(k8s) && isPlainObject(k8s.pod) ? k8s.pod.uid : undefined;
  return boundPod === undefined || boundPod === pod.uid;
}

export interface ServiceAccountRef {
  namespace: string;
  name: string;
}

/** The pod a publish is for (access.ts PodIdentity): its namespace, ServiceAccount and UID. */
export interface PodRef {
  namespace: string;
  serviceAccount: string;
  uid: string;
}

const saKey = (sa: ServiceAccountRef): string => `${sa.namespace}/${sa.name}`;

/**
 * The newest tokens kubelet passed for each published target, in memory only. Vault sessions are
 * per ServiceAccount, so a session's re-login takes the freshest token of any target whose pod runs
 * as that ServiceAccount on this node.
 */
export class PodTokens {
  readonly #byTarget = new Map<string, { sa: string; tokens: Map<string, PodToken> }>();
  readonly #now: () => number;
  /** At most this many targets; kubelet's publishes are bounded by the node's volumes. */
  readonly #max: number;
  /** The driver's own audience: that token proves the pod's identity to the driver and never
   * leaves it. */
  readonly #driverAudience: string;

  constructor(opts: { now: () => number; maxTargets: number; driverAudience: string }) {
    this.#now = opts.now;
    this.#max = opts.maxTargets;
    this.#driverAudience = opts.driverAudience;
  }

  get size(): number {
    return this.#byTarget.size;
  }

  /** Keeps what a publish of `target` for `pod` passed: per audience, whichever token expires
   * later. Tokens whose claims are not the pod's (a confused or forged caller) are not kept. */
  keep(target: string, pod: PodRef, tokens: PodTokenSet): void {
    const key = saKey({ namespace: pod.namespace, name: pod.serviceAccount });
    const prev = this.#byTarget.get(target);
    const merged = new Map(prev?.sa === key ? prev.tokens : []);
    for (const [aud, t] of tokens) {
      if (aud === this.#driverAudience || !claimsMatch(t.token, pod)) continue;
      const old = merged.get(aud);
      if (!old || t.expiresAtMs >= old.expiresAtMs) merged.set(aud, t);
    }
    this.#byTarget.delete(target);
    if (this.#byTarget.size >= this.#max) this.#evict();
    this.#byTarget.set(target, { sa: key, tokens: merged });
  }

  /** The target is unpublished: its tokens go. */
  forget(target: string): void {
    this.#byTarget.delete(target);
  }

  /** The freshest valid token of a pod running as `sa` on this node for the VaultAuth's audiences. */
  token(sa: ServiceAccountRef, audiences: readonly string[] | undefined, opts: PickOptions = {}): string {
    const key = saKey(sa);
    const now = this.#now();
    let best: PodToken | undefined;
    let lastError: unknown;
    for (const e of this.#byTarget.values()) {
      if (e.sa !== key) continue;
      try {
        const { token } = pickPodToken(e.tokens, audiences, now, opts);
        if (!best || token.expiresAtMs > best.expiresAtMs) best = token;
      } catch (err) {
        lastError = err;
      }
    }
    if (best) return best.token;
    throw (
      lastError ??
      new FerryError(
        CODES.CSI_PRECONDITION,
        `no pod running as ServiceAccount ${key} has a kubelet-issued token on this node yet (after a driver restart, kubelet passes one at its next republish)`,
      )
    );
  }

  /** Drops expired targets first, else the oldest kept. */
  #evict(): void {
    const now = this.#now();
    for (const [target, e] of this.#byTarget) {
      if ([...e.tokens.values()].every((t) => t.expiresAtMs <= now)) this.#byTarget.delete(target);
    }
    if (this.#byTarget.size >= this.#max) {
      const oldest = this.#byTarget.keys().next().value;
      if (oldest !== undefined) this.#byTarget.delete(oldest);
    }
  }
}
