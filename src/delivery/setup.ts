// The Vault access both delivery models run on (the sync operator and the CSI driver): the informers
// of VaultAuth, VaultAuthGlobal and VaultConnection, the session cache, and the resolver from a
// consumer to a session. Assembled here once, so the two processes cannot drift apart.
import type { Logger } from 'pino';
import { VaultAuthGlobals, VaultAuths, VaultConnections } from '../api/resources.ts';
import type { VaultAuth } from '../api/v1beta1/vaultauth.ts';
import type { VaultAuthGlobal } from '../api/v1beta1/vaultauthglobal.ts';
import type { VaultConnection } from '../api/v1beta1/vaultconnection.ts';
import { parseRef } from '../api/validate.ts';
import type { Clock } from '../clock.ts';
import type { KubeClient } from '../k8s/client.ts';
import { vaultMetrics } from '../metrics/vault.ts';
import type { Informer } from '../runtime/informer.ts';
import type { Manager } from '../runtime/manager.ts';
import type { VaultClientCache } from '../vault/cache.ts';
import type { PersistenceModel } from '../vault/persistence.ts';
import type { SessionEvent } from '../vault/session.ts';
import {
  type PersistenceEvent,
  type PodTokenSource,
  VaultAccessResolver,
  type Withheld,
} from './vault-access.ts';

export interface VaultAccessConfig {
  client: KubeClient;
  log: Logger;
  clock: Clock;
  operatorNamespace: string;
  /** VSO's `allow-default-globals` option. */
  allowDefaultGlobals: boolean;
  /** Bound of the session cache. */
  clientCacheSize: number;
  /** Sessions one namespace may hold in it; default a tenth of clientCacheSize. */
  clientCacheNamespaceQuota?: number;
  /** The process environment, for the AWS default credential chain (aws auth without secretRef or
   * irsaServiceAccount); unset, that chain is refused. */
  env?: Record<string, string | undefined>;
  /** Client-cache persistence (vso-api §11.4): the operator's; the CSI driver never persists. */
  persistence?: { model: PersistenceModel; hmacKey: () => Promise<Buffer> };
  /** The CSI driver: the pods' kubelet-issued tokens, and what it may not read (VaultAccessDeps). */
  podTokens?: PodTokenSource;
  withheld?: Withheld;
  /** Called after a session event is logged (the CSI driver re-checks its leases after a re-login). */
  onSessionEvent?: (event: SessionEvent) => void;
}

export interface VaultAccessLayer {
  resolver: VaultAccessResolver;
  cache: VaultClientCache;
  /** Indexed by `connection` and `global` (namespace/name of the referenced object). */
  auths: Informer<VaultAuth>;
  authGlobals: Informer<VaultAuthGlobal>;
  connections: Informer<VaultConnection>;
}

const keyOf = (ref: { namespace: string; name: string }): string => `${ref.namespace}/${ref.name}`;

export function createVaultAccess(
  manager: Pick<Manager, 'informer' | 'tasks' | 'metrics'>,
  cfg: VaultAccessConfig,
): VaultAccessLayer {
  const { log, operatorNamespace } = cfg;
  const connections = manager.informer<VaultConnection>(VaultConnections);
  const authGlobals = manager.informer<VaultAuthGlobal>(VaultAuthGlobals);
  const auths = manager.informer<VaultAuth>(VaultAuths, {
    indexes: {
      connection: (a) => {
        try {
          return [
            keyOf(
              parseRef(a.spec?.vaultConnectionRef, {
                namespace: a.metadata.namespace ?? '',
                operatorNamespace,
              }),
            ),
          ];
        } catch {
          return [];
        }
      },
      global: (a) => {
        const r = a.spec?.vaultAuthGlobalRef;
        return r?.name ? [`${r.namespace || a.metadata.namespace}/${r.name}`] : [];
      },
    },
  });
  const resolver = new VaultAccessResolver({
    client: cfg.client,
    operatorNamespace,
    auths: auths.store,
    authGlobals: authGlobals.store,
    connections: connections.store,
    cacheSize: cfg.clientCacheSize,
    ...(cfg.clientCacheNamespaceQuota ? { cacheNamespaceQuota: cfg.clientCacheNamespaceQuota } : {}),
    clock: cfg.clock,
    tasks: manager.tasks,
    allowDefaultGlobals: cfg.allowDefaultGlobals,
    metrics: vaultMetrics(manager.metrics),
    ...(cfg.env ? { env: cfg.env } : {}),
    ...(cfg.podTokens ? { podTokens: cfg.podTokens } : {}),
    ...(cfg.withheld ? { withheld: cfg.withheld } : {}),
    onSessionEvent: (ev) => {
      if (ev.type === 'loginFailed' || ev.type === 'renewFailed')
        log.warn({ vaultSession: ev.type, err: ev.error }, 'vault session problem');
      else log.debug({ vaultSession: ev.type }, 'vault session');
      cfg.onSessionEvent?.(ev);
    },
    ...(cfg.persistence
      ? { persistence: { ...cfg.persistence, onEvent: (ev) => logPersistence(log, ev) } }
      : {}),
  });

  const { cache } = resolver;
  // Cached sessions die with their VaultAuth or VaultConnection, and with a connection's old spec.
  // The handlers only schedule: pruning revokes tokens, which is work for the task queue.
  const prune = (what: string, uid: string, run: () => Promise<unknown>): void =>
    manager.tasks.schedule(`prune/${what}/${uid}`, async () => {
      await run();
    });
  auths.addHandler((ev) => {
    const uid = ev.obj.metadata.uid;
    if (ev.type === 'delete' && uid) prune('auth', uid, () => cache.pruneAuth(uid, { revoke: true }));
  });
  connections.addHandler((ev) => {
    const uid = ev.obj.metadata.uid;
    if (!uid) return;
    if (ev.type === 'delete') prune('connection', uid, () => cache.pruneConnection(uid, { revoke: true }));
    else if (ev.type === 'update' && ev.old.metadata.generation !== ev.obj.metadata.generation) {
      const belowGeneration = ev.obj.metadata.generation ?? 0;
      prune('connection', uid, () => cache.pruneConnection(uid, { belowGeneration, revoke: true }));
    }
  });
  return { resolver, cache: resolver.cache, auths, authGlobals, connections };
}

function logPersistence(log: Logger, ev: PersistenceEvent): void {
  const fields: Record<string, unknown> = { clientCachePersistence: ev.type };
  if ('cacheKey' in ev) fields.cacheKey = ev.cacheKey;
  if ('reason' in ev) fields.reason = ev.reason;
  if ('count' in ev) fields.count = ev.count;
  if ('error' in ev) {
    fields.err = ev.error;
    log.warn(fields, 'client cache persistence problem');
  } else if (ev.type === 'restoreSkipped') log.warn(fields, 'client cache persistence problem');
  else log.info(fields, 'client cache persistence');
}
