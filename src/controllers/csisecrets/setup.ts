import { CSISecretsResource } from '../../api/resources.ts';
import type { CSISecrets } from '../../api/v1beta1/csisecrets.ts';
import { csiSecretsConsumer } from '../../delivery/vault-access.ts';
import type { KubeObject } from '../../k8s/types.ts';
import type { ObjectKey } from '../../runtime/controller.ts';
import { generationChanged } from '../../runtime/predicates.ts';
import { authsOfConnection, authsOfGlobal, type KindSetup, objKey, specOrMetaChanged } from '../setup.ts';
import { csiSecretsReconciler, csiTransformationRefKeys } from './reconcile.ts';

/** CSISecrets: status only (the CSI driver serves the volumes). Re-checked when the VaultAuth, its
 * VaultAuthGlobal or VaultConnection, or a referenced SecretTransformation appears, changes or goes. */
export const setupCSISecrets: KindSetup = ({ manager, ctx }) => {
  const { auths, authGlobals, connections, transformations } = ctx.informers;
  const csiSecrets = manager.informer<CSISecrets>(CSISecretsResource, {
    indexes: {
      auth: (o) => {
        try {
          return [ctx.vault.authRefOf(csiSecretsConsumer(o.metadata.namespace ?? '', o.spec))];
        } catch {
          return [];
        }
      },
      transformation: (o) => csiTransformationRefKeys(o),
    },
  });
  const csiOfAuth = (a: KubeObject): ObjectKey[] =>
    csiSecrets.store.byIndex('auth', `${a.metadata.namespace}/${a.metadata.name}`).map(objKey);
  const ofGlobal = authsOfGlobal(ctx);
  const ofConnection = authsOfConnection(ctx);
  manager
    .controller({ name: 'csisecrets', reconcile: csiSecretsReconciler(ctx, csiSecrets.store) })
    .for(csiSecrets, { predicate: generationChanged })
    .watches(auths, csiOfAuth, { predicate: specOrMetaChanged })
    .watches(authGlobals, (g) => ofGlobal(g).flatMap((k) => csiOfAuth({ metadata: k })), {
      predicate: specOrMetaChanged,
    })
    .watches(connections, (c) => ofConnection(c).flatMap((k) => csiOfAuth({ metadata: k })), {
      predicate: specOrMetaChanged,
    })
    // SecretTransformation status flips (valid) matter too: no predicate.
    .watches(transformations, (t) =>
      csiSecrets.store.byIndex('transformation', `${t.metadata.namespace}/${t.metadata.name}`).map(objKey),
    );
};
