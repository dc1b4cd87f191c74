import { HCPAuths, HCPVaultSecretsApps } from '../../api/resources.ts';
import type { HCPAuth } from '../../api/v1beta1/hcpauth.ts';
import type { HCPVaultSecretsApp } from '../../api/v1beta1/hcpvaultsecretsapp.ts';
import { type KindSetup, specOrMetaChanged } from '../setup.ts';
import { hcpAuthReconciler, hcpVaultSecretsAppReconciler } from './reconcile.ts';

/** HCPAuth and HCPVaultSecretsApp: reported as not supported (see reconcile.ts). */
export const setupHCP: KindSetup = ({ manager, ctx }) => {
  const auths = manager.informer<HCPAuth>(HCPAuths);
  manager
    .controller({ name: 'hcpauth', reconcile: hcpAuthReconciler(ctx, auths.store) })
    .for(auths, { predicate: specOrMetaChanged });
  const apps = manager.informer<HCPVaultSecretsApp>(HCPVaultSecretsApps);
  manager
    .controller({ name: 'hcpvaultsecretsapp', reconcile: hcpVaultSecretsAppReconciler(ctx, apps.store) })
    .for(apps, { predicate: specOrMetaChanged });
};
