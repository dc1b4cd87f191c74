// Assembles the operator: one Manager, the shared informers, the Vault client cache and the
// controllers, wired so each change re-enqueues exactly the objects it affects.
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import {
  SecretTransformations,
  VaultAuthGlobals,
  VaultAuths,
  VaultConnections,
  VaultStaticSecrets,
} from './api/resources.ts';
import type { SecretTransformation } from './api/v1beta1/secrettransformation.ts';
import type { VaultAuth } from './api/v1beta1/vaultauth.ts';
import type { VaultAuthGlobal } from './api/v1beta1/vaultauthglobal.ts';
import type { VaultConnection } from './api/v1beta1/vaultconnection.ts';
import type { VaultStaticSecret } from './api/v1beta1/vaultstaticsecret.ts';
import { parseRef } from './api/validate.ts';
import { MANAGED_SECRET_SELECTOR } from './consts/labels.ts';
import type { ControllerContext, OperatorOptions } from './controllers/context.ts';
import { secretTransformationReconciler } from './controllers/secrettransformation.ts';
import { hmacKeyProvider } from './controllers/shared/hmac-key.ts';
import { OwnWrites } from './controllers/shared/own-writes.ts';
import { transformationRefKeys } from './controllers/shared/transformation.ts';
import { VaultAccessResolver } from './controllers/shared/vault-access.ts';
import { vaultAuthGlobalReconciler, vaultAuthReconciler } from './controllers/vaultauth.ts';
import { vaultConnectionReconciler } from './controllers/vaultconnection.ts';
import { vaultStaticSecretReconciler } from './controllers/vaultstaticsecret.ts';
import type { KubeClient } from './k8s/client.ts';
import { EventRecorder } from './k8s/events.ts';
import { Secrets } from './k8s/resources.ts';
import type { KubeObject } from './k8s/types.ts';
import { VSO_SOURCE_BACKOFF } from './runtime/backoff.ts';
import { type Clock, type Random, systemClock, systemRandom } from './runtime/clock.ts';
import type { ObjectKey } from './runtime/controller.ts';
import { Manager } from './runtime/manager.ts';
import {
  and,
  annotationsChanged,
  generationChanged,
  labelsChanged,
  or,
  type Predicate,
} from './runtime/predicates.ts';
import { VaultClientCache } from './vault/cache.ts';

export interface OperatorConfig extends OperatorOptions {
  client: KubeClient;
  logger: Logger;
  healthProbeAddress: string | null;
  metricsAddress: string | null;
  leaderElection: boolean;
  clientCacheSize: number;
  clock?: Clock;
  random?: Random;
}

const LEADER_ELECTION_ID = 'ferry.secrets.hashicorp.com';

/** VSO's syncableSecretPredicate, plus deletion: spec, label or annotation changes; never status. */
const specOrMetaChanged: Predicate<KubeObject> = or(
  generationChanged,
  labelsChanged,
  annotationsChanged,
  (ev) => ev.type === 'update' && ev.old.metadata.deletionTimestamp !== ev.obj.metadata.deletionTimestamp,
);

const keyOf = (ref: { namespace: string; name: string }): string => `${ref.namespace}/${ref.name}`;

export function buildOperator(cfg: OperatorConfig): Manager {
  const clock = cfg.clock ?? systemClock;
  const random = cfg.random ?? systemRandom;
  const log = cfg.logger;
  const opNs = cfg.operatorNamespace;
  const manager = new Manager({
    client: cfg.client,
    logger: log,
    healthProbeAddress: cfg.healthProbeAddress,
    metricsAddress: cfg.metricsAddress,
    clock,
    random,
    ...(cfg.leaderElection
      ? {
          leaderElection: {
            namespace: opNs,
            name: LEADER_ELECTION_ID,
            identity: `${hostname()}_${process.pid}_${random().toString(36).slice(2, 8)}`,
          },
        }
      : {}),
  });

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
                operatorNamespace: opNs,
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
  const transformations = manager.informer<SecretTransformation>(SecretTransformations);
  const vaultClients = new VaultClientCache({ maxSize: cfg.clientCacheSize });
  const vault = new VaultAccessResolver({
    client: cfg.client,
    operatorNamespace: opNs,
    auths: auths.store,
    authGlobals: authGlobals.store,
    connections: connections.store,
    cache: vaultClients,
    clock,
    allowDefaultGlobals: cfg.allowDefaultGlobals,
    onSessionEvent: (ev) => {
      if (ev.type === 'loginFailed' || ev.type === 'renewFailed')
        log.warn({ vaultSession: ev.type, err: ev.error }, 'vault session problem');
      else log.debug({ vaultSession: ev.type }, 'vault session');
    },
  });
  const events = new EventRecorder(cfg.client, {
    component: 'ferry',
    onError: (err) => log.warn({ err }, 'could not record event'),
  });
  const ctx: ControllerContext = {
    client: cfg.client,
    log,
    events,
    clock,
    random,
    options: cfg,
    vault,
    vaultClients,
    hmacKey: hmacKeyProvider(cfg.client, opNs),
    informers: { connections, auths, authGlobals, transformations },
  };

  // Cached Vault clients die with their VaultAuth or VaultConnection.
  auths.addHandler((ev) => {
    if (ev.type === 'delete' && ev.obj.metadata.uid)
      void vaultClients.pruneAuth(ev.obj.metadata.uid, { revoke: true });
  });
  connections.addHandler((ev) => {
    if (ev.type === 'delete' && ev.obj.metadata.uid)
      void vaultClients.pruneConnection(ev.obj.metadata.uid, { revoke: true });
    else if (
      ev.type === 'update' &&
      ev.obj.metadata.uid &&
      ev.old.metadata.generation !== ev.obj.metadata.generation
    ) {
      void vaultClients.pruneConnection(ev.obj.metadata.uid, {
        belowGeneration: ev.obj.metadata.generation ?? 0,
        revoke: true,
      });
    }
  });

  const authsOfConnection = (c: KubeObject): ObjectKey[] =>
    auths.store.byIndex('connection', `${c.metadata.namespace}/${c.metadata.name}`).map(objKey);

  manager
    .controller({ name: 'vaultconnection', reconcile: vaultConnectionReconciler(ctx) })
    .for(connections, { predicate: specOrMetaChanged });
  manager
    .controller({ name: 'vaultauth', reconcile: vaultAuthReconciler(ctx) })
    .for(auths, { predicate: specOrMetaChanged })
    .watches(connections, authsOfConnection, { predicate: (ev) => ev.type !== 'update' })
    .watches(authGlobals, (g) =>
      auths.store.byIndex('global', `${g.metadata.namespace}/${g.metadata.name}`).map(objKey),
    );
  manager
    .controller({ name: 'vaultauthglobal', reconcile: vaultAuthGlobalReconciler(ctx) })
    .for(authGlobals, { predicate: specOrMetaChanged });

  // VaultStaticSecret: its own changes, the destination Secrets it owns (deleted or edited by someone
  // else), and the VaultAuth/VaultConnection it depends on appearing or changing.
  const vss = manager.informer<VaultStaticSecret>(VaultStaticSecrets, {
    indexes: {
      auth: (o) => {
        try {
          return [
            vault.authRefOf({ namespace: o.metadata.namespace ?? '', vaultAuthRef: o.spec?.vaultAuthRef }),
          ];
        } catch {
          return [];
        }
      },
      transformation: (o) =>
        transformationRefKeys(o.metadata.namespace ?? '', o.spec?.destination.transformation),
    },
  });
  const ownWrites = new OwnWrites();
  const managedSecrets = manager.informer<KubeObject>(Secrets, {
    labelSelector: MANAGED_SECRET_SELECTOR,
    metadataOnly: true,
  });
  const consumersOfAuth = (a: KubeObject): ObjectKey[] =>
    vss.store.byIndex('auth', `${a.metadata.namespace}/${a.metadata.name}`).map(objKey);
  manager
    .controller({
      name: 'vaultstaticsecret',
      reconcile: vaultStaticSecretReconciler(ctx, vss.store, ownWrites),
      concurrency: cfg.maxConcurrentReconciles,
      backoff: VSO_SOURCE_BACKOFF,
    })
    .for(vss, { predicate: specOrMetaChanged })
    .owns(managedSecrets, {
      predicate: and(
        (ev) => ev.type !== 'create',
        (ev) =>
          ev.type === 'delete' ||
          !ownWrites.isOwn(ev.obj.metadata.namespace, ev.obj.metadata.name, ev.obj.metadata.resourceVersion),
      ),
    })
    .watches(auths, consumersOfAuth, { predicate: specOrMetaChanged })
    .watches(connections, (c) => authsOfConnection(c).flatMap((k) => consumersOfAuth({ metadata: k })), {
      predicate: specOrMetaChanged,
    })
    // A SecretTransformation's status flips when it is validated; its referrers re-render then.
    .watches(transformations, (t) =>
      vss.store.byIndex('transformation', `${t.metadata.namespace}/${t.metadata.name}`).map(objKey),
    );
  manager
    .controller({ name: 'secrettransformation', reconcile: secretTransformationReconciler(ctx) })
    .for(transformations, { predicate: specOrMetaChanged });
  return manager;
}

function objKey(o: KubeObject): ObjectKey {
  return o.metadata.namespace
    ? { namespace: o.metadata.namespace, name: o.metadata.name ?? '' }
    : { name: o.metadata.name ?? '' };
}
