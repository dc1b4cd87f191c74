// The Kubernetes and Vault side of the Node service: load the CSISecrets, prove the pod's identity
// (TokenReview of its pod-bound token), authorise it against accessControl, and then, as the
// CSISecrets' VaultAuth (the driver is a trusted orchestrator, vso-api.md §17), fetch, renew and
// release its secrets. Nothing here touches the target path; failures become Warning Events on the
// CSISecrets and CSI status codes.
import type { Logger } from 'pino';
import { CSISecretsResource } from '../api/resources.ts';
import type { CSISecrets, CSISecretsSpec } from '../api/v1beta1/csisecrets.ts';
import type { SecretTransformation } from '../api/v1beta1/secrettransformation.ts';
import { validateCSISecrets } from '../api/validate.ts';
import type { Clock } from '../clock.ts';
import { REASONS, type Reason } from '../consts/reasons.ts';
import { type Consumer, csiSecretsConsumer, type VaultAccess } from '../delivery/vault-access.ts';
import { errorMessage } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { Pods } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';
import type { Store } from '../runtime/store.ts';
import {
  type AccessSubject,
  checkAccess,
  checkTokenReview,
  matchingContainers,
  type PodContainers,
  type PublishContext,
  type TokenReviewStatus,
} from './access.ts';
import type { Ownership } from './atomic-writer.ts';
import { CsiError, permissionDenied, toCsiError } from './errors.ts';
import { API_GROUP_VERSION } from './names.ts';
import { renewHeld } from './renewal.ts';
import {
  type Held,
  type Item,
  type ItemRef,
  itemRefs,
  release,
  SecretFetcher,
  type SecretSource,
} from './secrets.ts';

export interface EventSink {
  warning(
    obj: KubeObject & { apiVersion: string; kind: string },
    reason: Reason,
    message: string,
  ): Promise<void>;
}

export interface Pod extends KubeObject, PodContainers {
  spec?: {
    nodeName?: string;
    serviceAccountName?: string;
    securityContext?: { fsGroup?: number; runAsUser?: number; runAsGroup?: number };
    containers?: { name: string; image?: string }[];
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
  /** This driver's node: kubelet only asks for its own pods, so another node's pod is refused. */
  nodeId: string;
  globalExcludeRaw: boolean;
  log: Logger;
  clock: Clock;
  /** Resolves once the informer caches have synced (VaultAuth and VaultConnection come only from
   * them); rejects when the signal aborts. */
  whenSynced?: (signal: AbortSignal) => Promise<void>;
  /** How long a publish waits for the caches before answering UNAVAILABLE. Default 10 s. */
  syncWaitMs?: number;
  /** Defaults to a TokenReview through `client`. */
  reviewToken?: (token: string, audience: string, signal?: AbortSignal) => Promise<TokenReviewStatus>;
}

/** What a publish was granted: enough to fetch, renew and release the pod's secrets later without
 * its token, and to tell a republish whether the CSISecrets changed. Plain JSON (persisted). */
export interface Grant {
  csiSecrets: { namespace: string; name: string; uid: string; generation: number };
  consumer: Consumer;
  snapshot: SecretSource;
  ownership: Ownership;
}

export interface PublishInput extends PublishContext {
  /** volume_mount_group from the capability (kubelet's fsGroup delegation), if any. */
  mountGroup?: number;
}

function involved(ref: Grant['csiSecrets']): KubeObject & { apiVersion: string; kind: string } {
  return {
    apiVersion: API_GROUP_VERSION,
    kind: 'CSISecrets',
    metadata: { name: ref.name, namespace: ref.namespace, ...(ref.uid ? { uid: ref.uid } : {}) },
  };
}

/** File ownership and modes: owned by root, so no process of the pod may change them. Readable by
 * the pod's group when it names one (volume_mount_group, fsGroup, runAsGroup); else readable by
 * everyone, which is no one outside the pod: the staging directory and kubelet's pods directory are
 * root's alone. The volume is mounted read-only at the target besides (mounter.ts). */
export function ownershipFor(pod: Pod, mountGroup: number | undefined): Ownership {
  const sc = pod.spec?.securityContext ?? {};
  const gid = mountGroup ?? sc.fsGroup ?? sc.runAsGroup;
  if (gid !== undefined) return { uid: 0, gid, fileMode: 0o440, dirMode: 0o750 };
  return { uid: 0, gid: 0, fileMode: 0o444, dirMode: 0o755 };
}

export class Publisher {
  readonly #d: PublisherDeps;
  readonly #fetcher: SecretFetcher;
  constructor(deps: PublisherDeps) {
    this.#d = deps;
    this.#fetcher = new SecretFetcher({
      transformations: deps.transformations,
      globalExcludeRaw: deps.globalExcludeRaw,
      now: () => deps.clock.now(),
    });
  }

  /** The CSISecrets as the informer has it, or from the API while the cache is cold. */
  async load(ns: string, name: string, signal?: AbortSignal): Promise<CSISecrets> {
    let obj: CSISecrets | undefined;
    try {
      obj =
        this.#d.csiSecrets.get(ns, name) ?? (await this.#d.client.getIfExists(CSISecretsResource, name, ns));
    } catch (err) {
      signal?.throwIfAborted();
      throw toCsiError(err);
    }
    if (!obj) throw new CsiError('INTERNAL', `csisecrets ${ns}/${name} not found`);
    return obj;
  }

  /** Cheap check for republish: uid and generation of the cached CSISecrets, if cached. */
  cachedSource(ns: string, name: string): { uid: string; generation: number } | undefined {
    const o = this.#d.csiSecrets.get(ns, name);
    return o ? { uid: o.metadata.uid ?? '', generation: o.metadata.generation ?? 0 } : undefined;
  }

  async #synced(signal?: AbortSignal): Promise<void> {
    const d = this.#d;
    if (!d.whenSynced) return;
    const wait = AbortSignal.timeout(d.syncWaitMs ?? 10_000);
    try {
      await d.whenSynced(signal ? AbortSignal.any([signal, wait]) : wait);
    } catch {
      throw new CsiError('UNAVAILABLE', 'the driver has not synced its caches yet; kubelet will retry');
    }
  }

  /** Warning Event on the CSISecrets. */
  warn(ref: Grant['csiSecrets'], reason: Reason, message: string): Promise<void> {
    return this.#d.events.warning(involved(ref), reason, message);
  }

  /** Proves the pod's identity and authorises it; throws PERMISSION_DENIED (with an Event) if not. */
  async authorize(input: PublishInput, signal?: AbortSignal): Promise<Grant> {
    const d = this.#d;
    const { pod } = input;
    await this.#synced(signal);
    const obj = await this.load(input.csiSecrets.namespace, input.csiSecrets.name, signal);
    const spec = obj.spec as CSISecretsSpec | undefined;
    const ns = obj.metadata.namespace ?? '';
    const ref = {
      namespace: ns,
      name: obj.metadata.name ?? '',
      uid: obj.metadata.uid ?? '',
      generation: obj.metadata.generation ?? 0,
    };
    const warn = (reason: Reason, message: string) => this.warn(ref, reason, message);
    if (!spec) throw new CsiError('FAILED_PRECONDITION', 'csisecrets has no spec');
    const problems = validateCSISecrets(spec);
    if (problems.length > 0) {
      const msg = `invalid CSISecrets: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`;
      await warn(REASONS.InvalidConfiguration, msg);
      throw new CsiError('FAILED_PRECONDITION', msg);
    }
    const who = `pod ${pod.namespace}/${pod.name}`;
    const deny = async (reason: string): Promise<never> => {
      await warn(REASONS.PodNotAuthorized, `${who} not authorized for secret sync: ${reason}`);
      throw permissionDenied(`not authorized for secret sync: ${reason}`);
    };

    // 1. The pod is who kubelet says it is: the token is genuine, for our audience, bound to it.
    const review = await this.#review(input.token, signal);
    const proven = checkTokenReview(review, pod, d.audience);
    if (!proven.allowed) return deny(proven.reason);

    // 2. The pod object: labels for accessControl, fsGroup/runAsUser for file ownership. Its UID
    // must be the one in the request (a pod recreated under the same name is another pod).
    let podObj: Pod | undefined;
    try {
      podObj = await d.client.getIfExists<Pod>(Pods, pod.name, pod.namespace);
    } catch (err) {
      throw toCsiError(err);
    }
    if (!podObj) return deny(`${who} does not exist`);
    if (podObj.metadata.uid !== pod.uid) return deny(`${who} has another UID`);
    if ((podObj.spec?.serviceAccountName ?? 'default') !== pod.serviceAccount) {
      return deny(`${who} runs as another service account`);
    }
    if (podObj.spec?.nodeName !== d.nodeId) return deny(`${who} is not scheduled on node ${d.nodeId}`);

    // 3. accessControl.
    const subject: AccessSubject = { ...pod, labels: podObj.metadata.labels ?? {} };
    const decision = checkAccess(spec.accessControl, subject, ns);
    if (!decision.allowed) return deny(decision.reason);
    const cs = spec.syncConfig?.containerState;
    if (cs && matchingContainers(cs, podObj).length === 0)
      return deny('no container matches syncConfig.containerState');

    // 4. Who logs in to Vault: the CSISecrets' VaultAuth, for the kubernetes and jwt methods as the
    // pod's ServiceAccount with its kubelet-issued token (pod-tokens.ts).
    return {
      csiSecrets: ref,
      consumer: {
        ...csiSecretsConsumer(ns, spec),
        podServiceAccount: { namespace: pod.namespace, name: pod.serviceAccount },
      },
      snapshot: {
        namespace: ns,
        annotations: obj.metadata.annotations ?? {},
        labels: obj.metadata.labels ?? {},
        spec,
      },
      ownership: ownershipFor(podObj, input.mountGroup),
    };
  }

  async #access(grant: Grant, who: string, signal?: AbortSignal): Promise<VaultAccess> {
    await this.#synced(signal);
    try {
      return await this.#d.vault.get(grant.consumer, signal);
    } catch (err) {
      await this.warn(grant.csiSecrets, REASONS.VaultClientError, `${who}: ${errorMessage(err)}`);
      throw toCsiError(err);
    }
  }

  /** Fetches the given items (all of them when refs is unset) from Vault and shapes them into files. */
  async fetch(grant: Grant, who: string, refs?: ItemRef[], signal?: AbortSignal): Promise<Item[]> {
    const access = await this.#access(grant, who, signal);
    try {
      return await this.#fetcher.fetch(access, grant.snapshot, refs ?? itemRefs(grant.snapshot.spec), signal);
    } catch (err) {
      const reason = err instanceof CsiError ? REASONS.SecretDataBuilderError : REASONS.VaultClientError;
      await this.warn(grant.csiSecrets, reason, `${who}: ${errorMessage(err)}`);
      throw toCsiError(err);
    }
  }

  /**
   * Keeps a lease: renews it when due, else returns it as it is. Undefined when the item must be
   * replaced instead: the session that created the lease has moved to another token (or this is
   * another driver process), or the lease cannot be renewed (see renewHeld).
   */
  async renew(
    grant: Grant,
    who: string,
    held: Held,
    due: boolean,
    signal?: AbortSignal,
  ): Promise<Held | undefined> {
    const access = await this.#access(grant, who, signal);
    if (held.kind === 'lease' && held.clientId !== access.clientId) return undefined;
    if (!due) return held;
    try {
      return await renewHeld(access.api, held, this.#d.clock.now(), signal);
    } catch (err) {
      await this.warn(grant.csiSecrets, REASONS.SecretLeaseRenewalError, `${who}: ${errorMessage(err)}`);
      throw toCsiError(err);
    }
  }

  /** Revokes what the items held (those marked revoke). */
  async release(grant: Grant, who: string, held: Held[], signal?: AbortSignal): Promise<void> {
    if (!held.some((h) => h.revoke)) return;
    const { api } = await this.#access(grant, who, signal);
    try {
      for (const h of held) await release(api, h, signal);
    } catch (err) {
      const reason = held.some((h) => h.kind === 'cert')
        ? REASONS.CertificateRevocationError
        : REASONS.VaultClientError;
      await this.warn(grant.csiSecrets, reason, `${who}: revoking failed: ${errorMessage(err)}`);
      throw toCsiError(err);
    }
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
}
