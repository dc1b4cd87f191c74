import { type KindSetup, specOrMetaChanged } from '../setup.ts';
import { secretTransformationReconciler } from './reconcile.ts';

export const setupSecretTransformation: KindSetup = ({ manager, ctx }) => {
  manager
    .controller({ name: 'secrettransformation', reconcile: secretTransformationReconciler(ctx) })
    .for(ctx.informers.transformations, { predicate: specOrMetaChanged });
};
