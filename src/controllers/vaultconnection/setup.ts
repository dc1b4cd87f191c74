import { type KindSetup, specOrMetaChanged } from '../setup.ts';
import { vaultConnectionReconciler } from './reconcile.ts';

export const setupVaultConnection: KindSetup = ({ manager, ctx }) => {
  manager
    .controller({ name: 'vaultconnection', reconcile: vaultConnectionReconciler(ctx) })
    .for(ctx.informers.connections, { predicate: specOrMetaChanged });
};
