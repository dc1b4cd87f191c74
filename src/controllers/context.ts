// What every controller gets: the client, informers' stores, the event recorder, the Vault session
// resolver, injected time and randomness, and the operator options.
import type { Logger } from 'pino';
import type { SecretTransformation } from '../api/v1beta1/secrettransformation.ts';
import type { VaultAuth } from '../api/v1beta1/vaultauth.ts';
import type { VaultAuthGlobal } from '../api/v1beta1/vaultauthglobal.ts';
import type { VaultConnection } from '../api/v1beta1/vaultconnection.ts';
import type { BackoffPolicy } from '../backoff.ts';
import type { Clock, Random } from '../clock.ts';
import type { VaultAccessResolver } from '../delivery/vault-access.ts';
import type { KubeClient } from '../k8s/client.ts';
import type { EventRecorder } from '../k8s/events.ts';
import type { Informer } from '../runtime/informer.ts';
import type { TaskScheduler } from '../runtime/tasks.ts';
import type { AuditStreamOptions } from '../vault/audit-stream.ts';
import type { VaultClientCache } from '../vault/cache.ts';
import type { PersistenceModel } from '../vault/persistence.ts';

export interface OperatorOptions {
  operatorNamespace: string;
  /** `--global-transformation-options=exclude-raw`. */
  globalExcludeRaw: boolean;
  /** `--global-vault-auth-options=allow-default-globals`. */
  allowDefaultGlobals: boolean;
  /** Workers of the secret controllers (VSO: --max-concurrent-reconciles, default 100). */
  maxConcurrentReconciles: number;
  /** Health re-check period of VaultConnections (VSO never re-checks: #840). */
  connectionHealthPeriodMs: number;
  /** `--client-cache-persistence-model` (vso-api §11.4); default `none`. */
  clientCachePersistenceModel?: PersistenceModel;
  /** `--strict-destination-ownership`: Secrets Ferry did not create are written (`create: false`) or
   * taken over (`overwrite: true`) only with the ANNOTATION_ALLOW_SYNC opt-in. Default off, as VSO. */
  strictDestinationOwnership?: boolean;
  /** `--audit-stream-bind-address` and friends: the listener for a Vault socket audit device that
   * makes `syncConfig.instantUpdates` work on Vault CE and OpenBao (docs/instant-updates.md). */
  auditStream?: AuditStreamOptions;
  /** This pod's UID (env OPERATOR_POD_UID or /var/run/podinfo/uid), for status.lastRuntimePodUID. */
  operatorPodUID?: string;
  /** Retry backoff of the secret kinds after a Vault error (VSO's --backoff-*); VSO's defaults if unset. */
  sourceBackoff?: BackoffPolicy;
}

export interface ControllerContext {
  client: KubeClient;
  log: Logger;
  /** Normal Events queued, not awaited on the API (k8s/event-queue.ts); the harness records them
   * directly. */
  events: Pick<EventRecorder, 'normal' | 'warning' | 'refusedAsTerminating'>;
  clock: Clock;
  random: Random;
  options: OperatorOptions;
  vault: VaultAccessResolver;
  vaultClients: VaultClientCache;
  hmacKey: () => Promise<Buffer>;
  /** Background work (deferred revocations, debounced restarts): the Manager's task queue. */
  tasks: TaskScheduler;
  informers: {
    connections: Informer<VaultConnection>;
    auths: Informer<VaultAuth>;
    authGlobals: Informer<VaultAuthGlobal>;
    transformations: Informer<SecretTransformation>;
  };
}
