// Assembles the operator: one Manager, the shared informers, the Vault client cache and the
// controllers, wired so each change re-enqueues exactly the objects it affects.
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import {
  CSISecretsResource,
  SecretTransformations,
  VaultDynamicSecrets,
  VaultPKISecrets,
  VaultStaticSecrets,
} from './api/resources.ts';
import type { Transformation } from './api/v1beta1/common.ts';
import type { CSISecrets } from './api/v1beta1/csisecrets.ts';
import type { SecretTransformation } from './api/v1beta1/secrettransformation.ts';
import type { VaultAuth } from './api/v1beta1/vaultauth.ts';
import type { VaultConnection } from './api/v1beta1/vaultconnection.ts';
import type { VaultDynamicSecret } from './api/v1beta1/vaultdynamicsecret.ts';
import type { VaultPKISecret } from './api/v1beta1/vaultpkisecret.ts';
import type { VaultStaticSecret } from './api/v1beta1/vaultstaticsecret.ts';
import { type Clock, type Random, systemClock, systemRandom } from './clock.ts';
import { MANAGED_SECRET_SELECTOR } from './consts/labels.ts';
import type { ControllerContext, OperatorOptions } from './controllers/context.ts';
import { csiSecretsReconciler, csiTransformationRefKeys } from './controllers/csisecrets.ts';
import { secretKindErrorPolicy } from './controllers/outcome.ts';
import { secretTransformationReconciler } from './controllers/secrettransformation.ts';
import { hmacKeyProvider } from './controllers/shared/hmac-key.ts';
import { OwnWrites } from './controllers/shared/own-writes.ts';
import { vaultAuthGlobalReconciler, vaultAuthReconciler } from './controllers/vaultauth.ts';
import { vaultConnectionReconciler } from './controllers/vaultconnection.ts';
import { vaultDynamicSecretReconciler } from './controllers/vaultdynamicsecret.ts';
import { vaultPKISecretReconciler } from './controllers/vaultpkisecret.ts';
import { vaultStaticSecretReconciler } from './controllers/vaultstaticsecret.ts';
import { createVaultAccess } from './delivery/setup.ts';
import { transformationRefKeys } from './delivery/transformation.ts';
import { csiSecretsConsumer } from './delivery/vault-access.ts';
import type { KubeClient } from './k8s/client.ts';
import { EventRecorder } from './k8s/events.ts';
import type { ResourceType } from './k8s/resources.ts';
import { Secrets } from './k8s/resources.ts';
import type { KubeObject } from './k8s/types.ts';
import { VSO_SOURCE_BACKOFF } from './runtime/backoff.ts';
import type { ErrorPolicy, ObjectKey, Reconciler } from './runtime/controller.ts';
import type { Informer } from './runtime/informer.ts';
import { Manager } from './runtime/manager.ts';
import {
  and,
  annotationsChanged,
  generationChanged,
  labelsChanged,
  or,
  type Predicate,
} from './runtime/predicates.ts';
import type { Store } from './runtime/store.ts';

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

  const hmacKey = hmacKeyProvider(cfg.client, opNs);
  const access = createVaultAccess(manager, {
    client: cfg.client,
    log,
    clock,
    operatorNamespace: opNs,
    allowDefaultGlobals: cfg.allowDefaultGlobals,
    clientCacheSize: cfg.clientCacheSize,
    persistence: { model: cfg.clientCachePersistenceModel ?? 'none', hmacKey },
  });
  const { auths, authGlobals, connections, resolver: vault, cache: vaultClients } = access;
  const transformations = manager.informer<SecretTransformation>(SecretTransformations);
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
    hmacKey,
    informers: { connections, auths, authGlobals, transformations },
  };

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
  if ((cfg.clientCachePersistenceModel ?? 'none') !== 'none') {
    // Persisted Vault tokens are restored as soon as this replica leads (vso-api §11.4), one
    // VaultAuth at a time, before anything needs them: an unrenewed token takes its leases with it.
    manager
      .controller({
        name: 'clientcache',
        reconcile: async ({ key, signal }) => {
          const auth = auths.store.get(key.namespace, key.name);
          if (auth && !auth.metadata.deletionTimestamp) await vault.restoreStored(auth, signal);
          return { awaitChange: true };
        },
      })
      .for(auths, { predicate: (ev) => ev.type === 'create' });
  }
  manager
    .controller({ name: 'vaultauthglobal', reconcile: vaultAuthGlobalReconciler(ctx) })
    .for(authGlobals, { predicate: specOrMetaChanged });

  const secretKinds: SecretKindWiring = {
    ownWrites: new OwnWrites(),
    managedSecrets: manager.informer<KubeObject>(Secrets, {
      labelSelector: MANAGED_SECRET_SELECTOR,
      metadataOnly: true,
    }),
    auths,
    connections,
    transformations,
    authsOfConnection,
    authRefOf: (namespace, vaultAuthRef) => vault.authRefOf({ namespace, vaultAuthRef }),
    errorPolicy: secretKindErrorPolicy(random),
  };
  registerSecretKind<VaultStaticSecret>(manager, secretKinds, {
    name: 'vaultstaticsecret',
    resource: VaultStaticSecrets,
    concurrency: cfg.maxConcurrentReconciles,
    reconciler: (store, ownWrites) => vaultStaticSecretReconciler(ctx, store, ownWrites),
  });
  registerSecretKind<VaultDynamicSecret>(manager, secretKinds, {
    name: 'vaultdynamicsecret',
    resource: VaultDynamicSecrets,
    concurrency: cfg.maxConcurrentReconciles,
    reconciler: (store, ownWrites) => vaultDynamicSecretReconciler(ctx, store, ownWrites),
  });
  registerSecretKind<VaultPKISecret>(manager, secretKinds, {
    name: 'vaultpkisecret',
    resource: VaultPKISecrets,
    concurrency: cfg.maxConcurrentReconciles,
    reconciler: (store, ownWrites) => vaultPKISecretReconciler(ctx, store, ownWrites),
  });
  manager
    .controller({ name: 'secrettransformation', reconcile: secretTransformationReconciler(ctx) })
    .for(transformations, { predicate: specOrMetaChanged });

  // CSISecrets: status only (the CSI driver serves the volumes). Re-checked when the VaultAuth, its
  // VaultAuthGlobal or VaultConnection, or a referenced SecretTransformation appears, changes or goes.
  const csiSecrets = manager.informer<CSISecrets>(CSISecretsResource, {
    indexes: {
      auth: (o) => {
        try {
          return [vault.authRefOf(csiSecretsConsumer(o.metadata.namespace ?? '', o.spec))];
        } catch {
          return [];
        }
      },
      transformation: (o) => csiTransformationRefKeys(o),
    },
  });
  const csiOfAuth = (a: KubeObject): ObjectKey[] =>
    csiSecrets.store.byIndex('auth', `${a.metadata.namespace}/${a.metadata.name}`).map(objKey);
  manager
    .controller({ name: 'csisecrets', reconcile: csiSecretsReconciler(ctx, csiSecrets.store) })
    .for(csiSecrets, { predicate: generationChanged })
    .watches(auths, csiOfAuth, { predicate: specOrMetaChanged })
    .watches(
      authGlobals,
      (g) =>
        auths.store
          .byIndex('global', `${g.metadata.namespace}/${g.metadata.name}`)
          .flatMap((a) => csiOfAuth(a)),
      { predicate: specOrMetaChanged },
    )
    .watches(connections, (c) => authsOfConnection(c).flatMap((k) => csiOfAuth({ metadata: k })), {
      predicate: specOrMetaChanged,
    })
    // SecretTransformation status flips (valid) matter too: no predicate.
    .watches(transformations, (t) =>
      csiSecrets.store.byIndex('transformation', `${t.metadata.namespace}/${t.metadata.name}`).map(objKey),
    );
  return manager;
}

interface SecretKindWiring {
  ownWrites: OwnWrites;
  /** Metadata of the Secrets Ferry created, shared by every secret kind. */
  managedSecrets: Informer<KubeObject>;
  auths: Informer<VaultAuth>;
  connections: Informer<VaultConnection>;
  transformations: Informer<SecretTransformation>;
  authsOfConnection: (c: KubeObject) => ObjectKey[];
  authRefOf: (namespace: string, vaultAuthRef: string | undefined) => string;
  errorPolicy: ErrorPolicy;
}

/** What the wiring reads of every secret kind's spec. */
type SecretKindObject = KubeObject & {
  spec?:
    | { vaultAuthRef?: string | undefined; destination: { transformation?: Transformation | undefined } }
    | undefined;
};

export interface SecretKindSpec<T extends SecretKindObject> {
  name: string;
  resource: ResourceType;
  concurrency: number;
  reconciler: (store: Store<T>, ownWrites: OwnWrites) => Reconciler;
}

/**
 * A kind that syncs Vault data into a destination Secret (VaultStaticSecret, VaultDynamicSecret,
 * VaultPKISecret) reconciles on: its own spec/label/annotation changes; its destination Secret being
 * deleted or edited by someone else; its VaultAuth or VaultConnection appearing or changing; and a
 * referenced SecretTransformation changing.
 */
function registerSecretKind<T extends SecretKindObject>(
  manager: Manager,
  w: SecretKindWiring,
  spec: SecretKindSpec<T>,
): void {
  const informer = manager.informer<T>(spec.resource, {
    indexes: {
      auth: (o) => {
        try {
          return [w.authRefOf(o.metadata.namespace ?? '', o.spec?.vaultAuthRef)];
        } catch {
          return [];
        }
      },
      transformation: (o) =>
        transformationRefKeys(o.metadata.namespace ?? '', o.spec?.destination.transformation),
    },
  });
  const consumersOfAuth = (a: KubeObject): ObjectKey[] =>
    informer.store.byIndex('auth', `${a.metadata.namespace}/${a.metadata.name}`).map(objKey);
  manager
    .controller({
      name: spec.name,
      reconcile: spec.reconciler(informer.store, w.ownWrites),
      concurrency: spec.concurrency,
      backoff: VSO_SOURCE_BACKOFF,
      errorPolicy: w.errorPolicy,
    })
    .for(informer, { predicate: specOrMetaChanged })
    .owns(w.managedSecrets, {
      predicate: and(
        (ev) => ev.type !== 'create',
        (ev) =>
          ev.type === 'delete' ||
          !w.ownWrites.isOwn(
            ev.obj.metadata.namespace,
            ev.obj.metadata.name,
            ev.obj.metadata.resourceVersion,
          ),
      ),
    })
    .watches(w.auths, consumersOfAuth, { predicate: specOrMetaChanged })
    .watches(w.connections, (c) => w.authsOfConnection(c).flatMap((k) => consumersOfAuth({ metadata: k })), {
      predicate: specOrMetaChanged,
    })
    // A SecretTransformation's status flips when it is validated; its referrers re-render then.
    .watches(w.transformations, (t) =>
      informer.store.byIndex('transformation', `${t.metadata.namespace}/${t.metadata.name}`).map(objKey),
    );
}

function objKey(o: KubeObject): ObjectKey {
  return o.metadata.namespace
    ? { namespace: o.metadata.namespace, name: o.metadata.name ?? '' }
    : { name: o.metadata.name ?? '' };
}
