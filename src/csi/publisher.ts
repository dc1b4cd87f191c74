// The work behind NodePublishVolume once the request is valid: load the CSISecrets, prove the pod's
// identity (TokenReview of its pod-bound token), authorise it against accessControl, log in to
// Vault as the CSISecrets' VaultAuth (the driver is a trusted orchestrator, vso-api.md §17), read
// and shape the secrets, and return the files to write. Nothing here touches the target path.
import type { Logger } from 'pino';
import { CSISecretsResource } from '../api/resources.ts';
import type { Transformation } from '../api/v1beta1/common.ts';
import type { CSISecrets, CSISecretsSpec, VaultAppRoleSecretID } from '../api/v1beta1/csisecrets.ts';
import type { SecretTransformation } from '../api/v1beta1/secrettransformation.ts';
import { validateCSISecrets } from '../api/validate.ts';
import { REASONS } from '../consts/reasons.ts';
import { makeSecretData } from '../controllers/shared/secret-data.ts';
import { shapeData } from '../controllers/shared/transformation.ts';
import type { Consumer, VaultAccess } from '../controllers/shared/vault-access.ts';
import { errorMessage } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { isK8sApiError } from '../k8s/errors.ts';
import { Pods } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';
import type { Store } from '../runtime/store.ts';
import { isRecord, type VaultApi } from '../vault/client.ts';
import { readKV } from '../vault/kv.ts';
import {
  type AccessSubject,
  checkAccess,
  checkTokenReview,
  type PublishContext,
  type TokenReviewStatus,
} from './access.ts';
import { isValidFileName, type OutputFile, type Ownership } from './atomic-writer.ts';
import { CsiError, permissionDenied, toCsiError } from './errors.ts';
import { API_GROUP_VERSION } from './names.ts';

/** Event reasons of the driver (on the CSISecrets). */
export const CSI_REASONS = {
  PodNotAuthorized: REASONS.PodNotAuthorized,
  InvalidConfiguration: 'InvalidConfiguration',
  VaultClientError: 'VaultClientError',
  SecretDataBuilderError: 'SecretDataBuilderError',
} as const;

export interface EventSink {
  warning(
    obj: KubeObject & { apiVersion: string; kind: string },
    reason: string,
    message: string,
  ): Promise<void>;
}

export interface Pod extends KubeObject {
  spec?: {
    serviceAccountName?: string;
    securityContext?: { fsGroup?: number; runAsUser?: number; runAsGroup?: number };
  };
}

export interface PublisherDeps {
  /** The driver's own Kubernetes identity. */
  client: KubeClient;
  csiSecrets: Store<CSISecrets>;
  transformations: Store<SecretTransformation>;
  vault: { get(consumer: Consumer, signal?: AbortSignal): Promise<VaultAccess> };
  events: EventSink;
  audience: string;
  globalExcludeRaw: boolean;
  log: Logger;
  /** Resolves once the informer caches have synced (VaultAuth and VaultConnection come only from
   * them); rejects when the signal aborts. */
  whenSynced?: (signal: AbortSignal) => Promise<void>;
  /** How long a publish waits for the caches before answering UNAVAILABLE. Default 10 s. */
  syncWaitMs?: number;
  /** Defaults to a TokenReview through `client`. */
  reviewToken?: (token: string, audience: string, signal?: AbortSignal) => Promise<TokenReviewStatus>;
}

export interface PublishResult {
  files: OutputFile[];
  ownership: Ownership;
  /** uid/generation of the CSISecrets the files came from (republish compares them). */
  source: { uid: string; generation: number };
}

export interface PublishInput extends PublishContext {
  /** volume_mount_group from the capability (kubelet's fsGroup delegation), if any. */
  mountGroup?: number;
}

function involved(obj: CSISecrets): KubeObject & { apiVersion: string; kind: string } {
  return {
    apiVersion: API_GROUP_VERSION,
    kind: 'CSISecrets',
    metadata: {
      name: obj.metadata.name ?? '',
      namespace: obj.metadata.namespace ?? '',
      ...(obj.metadata.uid ? { uid: obj.metadata.uid } : {}),
    },
  };
}

/** The transformation for one secret: the collection-wide one, then the secret's own on top
 * (its templates win on equal keys; refs, includes and excludes add up; excludeRaw if either). */
export function mergeTransformation(
  all: Transformation | undefined,
  own: Transformation | undefined,
): Transformation | undefined {
  if (!all) return own;
  if (!own) return all;
  const out: Transformation = {};
  const templates = { ...all.templates, ...own.templates };
  if (Object.keys(templates).length > 0) out.templates = templates;
  const refs = [...(all.transformationRefs ?? []), ...(own.transformationRefs ?? [])];
  if (refs.length > 0) out.transformationRefs = refs;
  const includes = [...(all.includes ?? []), ...(own.includes ?? [])];
  if (includes.length > 0) out.includes = includes;
  const excludes = [...(all.excludes ?? []), ...(own.excludes ?? [])];
  if (excludes.length > 0) out.excludes = excludes;
  if (all.excludeRaw || own.excludeRaw) out.excludeRaw = true;
  return out;
}

/** File ownership and modes: group-readable (0440) for the pod's fsGroup when there is one, else
 * owner-only (0400) for the pod's runAsUser (root when unset). */
export function ownershipFor(pod: Pod, mountGroup: number | undefined): Ownership {
  const sc = pod.spec?.securityContext ?? {};
  const gid = mountGroup ?? sc.fsGroup;
  if (gid !== undefined) return { uid: 0, gid, fileMode: 0o440, dirMode: 0o750 };
  return { uid: sc.runAsUser ?? 0, gid: sc.runAsGroup ?? 0, fileMode: 0o400, dirMode: 0o500 };
}

export class Publisher {
  readonly #d: PublisherDeps;
  constructor(deps: PublisherDeps) {
    this.#d = deps;
  }

  /** The CSISecrets as the informer has it, or from the API while the cache is cold. */
  async load(ns: string, name: string, signal?: AbortSignal): Promise<CSISecrets> {
    const cached = this.#d.csiSecrets.get(ns, name);
    if (cached) return cached;
    try {
      return await this.#d.client.get<CSISecrets>(CSISecretsResource, name, ns);
    } catch (err) {
      if (isK8sApiError(err) && err.isNotFound()) {
        throw new CsiError('INTERNAL', `csisecrets ${ns}/${name} not found`);
      }
      signal?.throwIfAborted();
      throw toCsiError(err);
    }
  }

  /** Cheap check for republish: uid and generation of the cached CSISecrets, if cached. */
  cachedSource(ns: string, name: string): { uid: string; generation: number } | undefined {
    const o = this.#d.csiSecrets.get(ns, name);
    return o ? { uid: o.metadata.uid ?? '', generation: o.metadata.generation ?? 0 } : undefined;
  }

  async publish(input: PublishInput, signal?: AbortSignal): Promise<PublishResult> {
    const d = this.#d;
    const { pod } = input;
    if (d.whenSynced) {
      const wait = AbortSignal.timeout(d.syncWaitMs ?? 10_000);
      try {
        await d.whenSynced(signal ? AbortSignal.any([signal, wait]) : wait);
      } catch {
        throw new CsiError('UNAVAILABLE', 'the driver has not synced its caches yet; kubelet will retry');
      }
    }
    const obj = await this.load(input.csiSecrets.namespace, input.csiSecrets.name, signal);
    const spec = obj.spec as CSISecretsSpec | undefined;
    const warn = (reason: string, message: string) => d.events.warning(involved(obj), reason, message);
    if (!spec) throw new CsiError('FAILED_PRECONDITION', 'csisecrets has no spec');
    const problems = validateCSISecrets(spec);
    if (problems.length > 0) {
      const msg = `invalid CSISecrets: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`;
      await warn(CSI_REASONS.InvalidConfiguration, msg);
      throw new CsiError('FAILED_PRECONDITION', msg);
    }
    const who = `pod ${pod.namespace}/${pod.name}`;
    const deny = async (reason: string): Promise<never> => {
      await warn(CSI_REASONS.PodNotAuthorized, `${who} not authorized for secret sync: ${reason}`);
      throw permissionDenied(`not authorized for secret sync: ${reason}`);
    };

    // 1. The pod is who kubelet says it is: the token is genuine, for our audience, bound to it.
    const review = await this.#review(input.token, signal);
    const proven = checkTokenReview(review, pod, d.audience);
    if (!proven.allowed) return deny(proven.reason);

    // 2. The pod object: labels for accessControl, fsGroup/runAsUser for file ownership. Its UID
    // must be the one in the request (a pod recreated under the same name is another pod).
    let podObj: Pod;
    try {
      podObj = await d.client.get<Pod>(Pods, pod.name, pod.namespace);
    } catch (err) {
      if (isK8sApiError(err) && err.isNotFound()) return deny(`${who} does not exist`);
      throw toCsiError(err);
    }
    if (podObj.metadata.uid !== pod.uid) return deny(`${who} has another UID`);
    if ((podObj.spec?.serviceAccountName ?? 'default') !== pod.serviceAccount) {
      return deny(`${who} runs as another service account`);
    }

    // 3. accessControl.
    const subject: AccessSubject = { ...pod, labels: podObj.metadata.labels ?? {} };
    const decision = checkAccess(spec.accessControl, subject);
    if (!decision.allowed) return deny(decision.reason);

    // 4. Vault, as the CSISecrets' VaultAuth.
    if (spec.vaultAuthRef?.trustNamespace) {
      const msg = 'vaultAuthRef.trustNamespace is not supported yet';
      await warn(CSI_REASONS.InvalidConfiguration, msg);
      throw new CsiError('FAILED_PRECONDITION', msg);
    }
    const ref = spec.vaultAuthRef;
    const ns = obj.metadata.namespace ?? '';
    let access: VaultAccess;
    try {
      access = await d.vault.get(
        {
          namespace: ns,
          vaultAuthRef: ref ? (ref.namespace ? `${ref.namespace}/${ref.name}` : ref.name) : undefined,
          vaultNamespace: spec.namespace,
        },
        signal,
      );
    } catch (err) {
      await warn(CSI_REASONS.VaultClientError, `${who}: ${errorMessage(err)}`);
      throw toCsiError(err);
    }

    // 5. Secrets → files.
    let files: OutputFile[];
    try {
      files = await this.#collect(access.api, obj, spec, signal);
    } catch (err) {
      const reason =
        err instanceof CsiError ? CSI_REASONS.SecretDataBuilderError : CSI_REASONS.VaultClientError;
      await warn(reason, `${who}: ${errorMessage(err)}`);
      throw toCsiError(err);
    }
    return {
      files,
      ownership: ownershipFor(podObj, input.mountGroup),
      source: { uid: obj.metadata.uid ?? '', generation: obj.metadata.generation ?? 0 },
    };
  }

  async #review(token: string, signal?: AbortSignal): Promise<TokenReviewStatus> {
    const d = this.#d;
    try {
      if (d.reviewToken) return await d.reviewToken(token, d.audience, signal);
      const res = await d.client.request<{ status?: TokenReviewStatus }>(
        'POST',
        '/apis/authentication.k8s.io/v1/tokenreviews',
        {
          body: {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenReview',
            spec: { token, audiences: [d.audience] },
          },
        },
      );
      return res?.status ?? {};
    } catch (err) {
      throw new CsiError('UNAVAILABLE', `token review failed: ${errorMessage(err)}`, { cause: err });
    }
  }

  async #collect(
    api: VaultApi,
    obj: CSISecrets,
    spec: CSISecretsSpec,
    signal?: AbortSignal,
  ): Promise<OutputFile[]> {
    const d = this.#d;
    const ns = obj.metadata.namespace ?? '';
    const statics = spec.secrets.vaultStaticSecrets ?? [];
    const appRoles = spec.secrets.vaultAppRoleSecretIDs ?? [];
    const [kvs, roles] = await Promise.all([
      Promise.all(
        statics.map((s) =>
          readKV(api, {
            mount: s.mount,
            path: s.path,
            type: s.type,
            ...(s.version ? { version: s.version } : {}),
            ...(signal ? { signal } : {}),
          }),
        ),
      ),
      Promise.all(appRoles.map((r) => mintSecretId(api, r, signal))),
    ]);
    const files: OutputFile[] = [];
    const add = (name: string, data: Uint8Array) => {
      if (!isValidFileName(name))
        throw new CsiError('FAILED_PRECONDITION', `key gives an invalid file name ${JSON.stringify(name)}`);
      files.push({ name, data });
    };
    const shapeOpts = { transformations: d.transformations, globalExcludeRaw: d.globalExcludeRaw };
    const meta = { annotations: obj.metadata.annotations ?? {}, labels: obj.metadata.labels ?? {} };
    statics.forEach((s, i) => {
      const kv = kvs[i];
      if (!kv) return;
      const t = mergeTransformation(spec.secrets.transformation, s.transformation);
      let data: Record<string, string>;
      try {
        const shaping = shapeData(shapeOpts, ns, t, {
          secrets: kv.data,
          metadata: kv.metadata ?? {},
          ...meta,
        });
        data = makeSecretData(kv.data, kv.raw, shaping);
      } catch (err) {
        throw new CsiError('FAILED_PRECONDITION', `vaultStaticSecrets[${i}]: ${errorMessage(err)}`, {
          cause: err,
        });
      }
      for (const [key, b64] of Object.entries(data))
        add(`static_secret_${i}_${key}`, Buffer.from(b64, 'base64'));
    });
    appRoles.forEach((r, i) => {
      const out = roles[i];
      if (!out) return;
      if (out.wrapInfo) add(`app_role_${i}_wrap_info.json`, Buffer.from(JSON.stringify(out.wrapInfo)));
      if (out.secretId !== undefined) add(`app_role_${i}_secret_id`, Buffer.from(out.secretId));
      if (out.secretIdAccessor !== undefined)
        add(`app_role_${i}_secret_id_accessor`, Buffer.from(out.secretIdAccessor));
      if (out.roleId !== undefined && r.syncRoleID) add(`app_role_${i}_role_id`, Buffer.from(out.roleId));
    });
    return files;
  }
}

interface MintedSecretId {
  secretId?: string;
  secretIdAccessor?: string;
  roleId?: string;
  wrapInfo?: Record<string, unknown>;
}

const mountOf = (m: string) => m.replace(/^\/+|\/+$/g, '');

/** A new AppRole secret-id (response-wrapped when wrapTTL is set) and optionally the role-id. */
export async function mintSecretId(
  api: VaultApi,
  r: VaultAppRoleSecretID,
  signal?: AbortSignal,
): Promise<MintedSecretId> {
  const base = `auth/${mountOf(r.mount)}/role/${encodeURIComponent(r.role)}`;
  const body: Record<string, unknown> = {};
  if (r.metadata && Object.keys(r.metadata).length > 0) body.metadata = JSON.stringify(r.metadata);
  if (r.cidrList?.length) body.cidr_list = r.cidrList;
  if (r.tokenBoundCIDRs?.length) body.token_bound_cidrs = r.tokenBoundCIDRs;
  if (r.ttl) body.ttl = r.ttl;
  if (r.numUses !== undefined) body.num_uses = r.numUses;
  const headers: Record<string, string> = r.wrapTTL ? { 'X-Vault-Wrap-TTL': r.wrapTTL } : {};
  const res = await api.write(`${base}/secret-id`, body, { headers, ...(signal ? { signal } : {}) });
  const out: MintedSecretId = {};
  if (r.wrapTTL) {
    const w = res?.wrap_info;
    if (!isRecord(w)) throw new CsiError('INTERNAL', `no wrap_info from ${base}/secret-id`);
    out.wrapInfo = w;
  } else {
    const data = res?.data ?? {};
    if (typeof data.secret_id !== 'string')
      throw new CsiError('INTERNAL', `no secret_id from ${base}/secret-id`);
    out.secretId = data.secret_id;
    if (typeof data.secret_id_accessor === 'string') out.secretIdAccessor = data.secret_id_accessor;
  }
  if (r.syncRoleID) {
    const rr = await api.read(`${base}/role-id`, signal ? { signal } : {});
    const roleId = rr?.data?.role_id;
    if (typeof roleId !== 'string') throw new CsiError('INTERNAL', `no role_id from ${base}/role-id`);
    out.roleId = roleId;
  }
  return out;
}
