// How a kind joins the operator: each `controllers/<kind>/setup.ts` exports a KindSetup that
// registers its controller(s) and watches on the Manager; operator.ts only lists them. The helpers
// here are the wiring more than one kind uses.
import type { Transformation } from '../api/v1beta1/common.ts';
import { VSO_SOURCE_BACKOFF } from '../backoff.ts';
import { MANAGED_SECRET_SELECTOR } from '../consts/labels.ts';
import { transformationRefKeys } from '../delivery/transformation.ts';
import { type ResourceType, Secrets } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';
import type { Controller, ObjectKey, Reconciler } from '../runtime/controller.ts';
import type { Informer } from '../runtime/informer.ts';
import type { Manager } from '../runtime/manager.ts';
import {
  and,
  annotationsChanged,
  generationChanged,
  labelsChanged,
  or,
  type Predicate,
} from '../runtime/predicates.ts';
import type { Store } from '../runtime/store.ts';
import type { ControllerContext } from './context.ts';
import { secretKindErrorPolicy } from './outcome.ts';
import type { DestinationWriter } from './shared/destination-writer.ts';

export interface SetupEnv {
  manager: Manager;
  ctx: ControllerContext;
  /** The destination write of the secret kinds, which also tells their own writes from change events. */
  destinations: DestinationWriter;
}

export type KindSetup = (env: SetupEnv) => void;

/** VSO's syncableSecretPredicate, plus deletion: spec, label or annotation changes; never status. */
export const specOrMetaChanged: Predicate<KubeObject> = or(
  generationChanged,
  labelsChanged,
  annotationsChanged,
  (ev) => ev.type === 'update' && ev.old.metadata.deletionTimestamp !== ev.obj.metadata.deletionTimestamp,
);

export function objKey(o: KubeObject): ObjectKey {
  return o.metadata.namespace
    ? { namespace: o.metadata.namespace, name: o.metadata.name ?? '' }
    : { name: o.metadata.name ?? '' };
}

const refOf = (o: KubeObject): string => `${o.metadata.namespace}/${o.metadata.name}`;

/** The VaultAuths that use a VaultConnection. */
export const authsOfConnection =
  (ctx: ControllerContext) =>
  (c: KubeObject): ObjectKey[] =>
    ctx.informers.auths.store.byIndex('connection', refOf(c)).map(objKey);

/** The VaultAuths that inherit from a VaultAuthGlobal. */
export const authsOfGlobal =
  (ctx: ControllerContext) =>
  (g: KubeObject): ObjectKey[] =>
    ctx.informers.auths.store.byIndex('global', refOf(g)).map(objKey);

/** What the wiring reads of every secret kind's spec. */
type SecretKindObject = KubeObject & {
  spec?:
    | { vaultAuthRef?: string | undefined; destination: { transformation?: Transformation | undefined } }
    | undefined;
};

export interface SecretKindSpec<T extends SecretKindObject> {
  name: string;
  resource: ResourceType;
  reconciler: (store: Store<T>) => Reconciler;
  /** Store indexes of this kind beyond the shared ones (auth, transformation). */
  indexes?: Record<string, (obj: T) => string[]>;
}

/**
 * A kind that syncs Vault data into a destination Secret (VaultStaticSecret, VaultDynamicSecret,
 * VaultPKISecret) reconciles on: its own spec/label/annotation changes; its destination Secret being
 * deleted or edited by someone else; its VaultAuth or VaultConnection appearing or changing; and a
 * referenced SecretTransformation changing.
 */
export function setupSecretKind<T extends SecretKindObject>(
  env: SetupEnv,
  spec: SecretKindSpec<T>,
): { informer: Informer<T>; controller: Controller } {
  const { manager, ctx, destinations } = env;
  const informer = manager.informer<T>(spec.resource, {
    indexes: {
      ...spec.indexes,
      auth: (o) => {
        try {
          return [
            ctx.vault.authRefOf({
              namespace: o.metadata.namespace ?? '',
              vaultAuthRef: o.spec?.vaultAuthRef,
            }),
          ];
        } catch {
          return [];
        }
      },
      transformation: (o) =>
        transformationRefKeys(o.metadata.namespace ?? '', o.spec?.destination.transformation),
    },
  });
  // Metadata of the Secrets Ferry created: one informer shared by every secret kind.
  const managedSecrets = manager.informer<KubeObject>(Secrets, {
    labelSelector: MANAGED_SECRET_SELECTOR,
    metadataOnly: true,
  });
  destinations.observe(managedSecrets.store);
  const consumersOfAuth = (a: KubeObject): ObjectKey[] =>
    informer.store.byIndex('auth', refOf(a)).map(objKey);
  const ofConnection = authsOfConnection(ctx);
  const controller = manager
    .controller({
      name: spec.name,
      reconcile: spec.reconciler(informer.store),
      concurrency: ctx.options.maxConcurrentReconciles,
      backoff: ctx.options.sourceBackoff ?? VSO_SOURCE_BACKOFF,
      errorPolicy: secretKindErrorPolicy(ctx.random),
    })
    .for(informer, { predicate: specOrMetaChanged })
    .owns(managedSecrets, {
      predicate: and(
        (ev) => ev.type !== 'create',
        (ev) =>
          ev.type === 'delete' ||
          !destinations.isOwn(
            ev.obj.metadata.namespace,
            ev.obj.metadata.name,
            ev.obj.metadata.resourceVersion,
            ev.type === 'update' ? ev.old.metadata.resourceVersion : undefined,
          ),
      ),
    })
    .watches(ctx.informers.auths, consumersOfAuth, { predicate: specOrMetaChanged })
    .watches(
      ctx.informers.connections,
      (c) => ofConnection(c).flatMap((k) => consumersOfAuth({ metadata: k })),
      {
        predicate: specOrMetaChanged,
      },
    )
    // A SecretTransformation's status flips when it is validated; its referrers re-render then.
    .watches(ctx.informers.transformations, (t) =>
      informer.store.byIndex('transformation', refOf(t)).map(objKey),
    );
  return { informer, controller };
}
