// HCPAuth and HCPVaultSecretsApp are VSO kinds for HCP Vault Secrets, which reached end of life in
// July 2026. Ferry serves the API (the CRDs install, objects are accepted) but never syncs them; so
// that this is not silence, each object gets Ready=False with the stable reason KindNotSupported and
// one Warning Event per generation.
import { API_VERSION, HCPAuths, HCPVaultSecretsApps } from '../../api/resources.ts';
import type { HCPAuth, HCPAuthStatus } from '../../api/v1beta1/hcpauth.ts';
import type { HCPVaultSecretsApp, HCPVaultSecretsAppStatus } from '../../api/v1beta1/hcpvaultsecretsapp.ts';
import { CONDITION_REASONS, CONDITION_TYPES } from '../../consts/conditions.ts';
import { REASONS } from '../../consts/reasons.ts';
import type { ResourceType } from '../../k8s/resources.ts';
import { type Condition, setCondition } from '../../runtime/conditions.ts';
import { type Action, awaitChange, type ReconcileContext } from '../../runtime/controller.ts';
import type { Store } from '../../runtime/store.ts';
import type { ControllerContext } from '../context.ts';
import { writeStatus } from '../shared/status.ts';

export const notSupportedMessage = (kind: string): string =>
  `${kind} is not supported by Ferry: HCP Vault Secrets reached end of life in July 2026; ` +
  'nothing is synced for this object (use a VaultStaticSecret against Vault or OpenBao instead)';

/** The Ready condition both kinds carry, and whether this generation has been reported already. */
function notSupported(
  obj: HCPAuth | HCPVaultSecretsApp,
  kind: string,
  now: number,
): { conditions: Condition[]; reported: boolean } {
  const generation = obj.metadata.generation;
  const before = obj.status?.conditions?.find((c) => c.type === CONDITION_TYPES.Ready);
  const reported =
    before?.reason === CONDITION_REASONS.KindNotSupported && before.observedGeneration === generation;
  const conditions = setCondition(
    obj.status?.conditions ?? [],
    {
      type: CONDITION_TYPES.Ready,
      status: 'False',
      reason: CONDITION_REASONS.KindNotSupported,
      message: notSupportedMessage(kind),
    },
    { now, generation },
  );
  return { conditions, reported };
}

function reconciler<T extends HCPAuth | HCPVaultSecretsApp, S extends object>(
  ctx: ControllerContext,
  store: Store<T>,
  rt: ResourceType,
  status: (obj: T, conditions: Condition[]) => S,
) {
  return async ({ key }: ReconcileContext): Promise<Action> => {
    const obj = store.get(key.namespace, key.name);
    if (!obj || obj.metadata.deletionTimestamp) return awaitChange();
    const { conditions, reported } = notSupported(obj, rt.kind, ctx.clock.now());
    await writeStatus<S>(ctx, rt, obj as T & { status?: S }, status(obj, conditions));
    if (!reported) {
      const involved = { apiVersion: API_VERSION, kind: rt.kind, metadata: obj.metadata };
      await ctx.events.warning(involved, REASONS.KindNotSupported, notSupportedMessage(rt.kind));
    }
    return awaitChange();
  };
}

export const hcpAuthReconciler = (ctx: ControllerContext, store: Store<HCPAuth>) =>
  reconciler<HCPAuth, HCPAuthStatus>(ctx, store, HCPAuths, (_obj, conditions) => ({
    valid: false,
    error: notSupportedMessage('HCPAuth'),
    conditions,
  }));

export const hcpVaultSecretsAppReconciler = (ctx: ControllerContext, store: Store<HCPVaultSecretsApp>) =>
  reconciler<HCPVaultSecretsApp, HCPVaultSecretsAppStatus>(
    ctx,
    store,
    HCPVaultSecretsApps,
    (obj, conditions) => ({
      ...obj.status,
      lastGeneration: obj.metadata.generation ?? 0,
      conditions,
    }),
  );
