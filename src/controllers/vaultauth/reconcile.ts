// VaultAuth and VaultAuthGlobal: validate the merged login configuration, report it in status, and
// drop cached Vault clients built from an older spec. Logging in happens per consumer identity.
import { createHash } from 'node:crypto';
import { VaultAuthGlobals, VaultAuths } from '../../api/resources.ts';
import type { VaultAuth, VaultAuthStatus } from '../../api/v1beta1/vaultauth.ts';
import type { VaultAuthGlobal } from '../../api/v1beta1/vaultauthglobal.ts';
import { CONDITION_REASONS, CONDITION_TYPES, healthyMessage } from '../../consts/conditions.ts';
import { FINALIZERS } from '../../consts/finalizers.ts';
import { REASONS } from '../../consts/reasons.ts';
import { goJson } from '../../delivery/gojson.ts';
import { connectionRefOf, resolveAuthConfig } from '../../delivery/vault-access.ts';
import { CODES, errorMessage, isFerryError } from '../../errors.ts';
import { type Condition, setCondition } from '../../runtime/conditions.ts';
import { type Action, awaitChange, type ReconcileContext } from '../../runtime/controller.ts';
import type { ControllerContext } from '../context.ts';
import { classifyFinding, type Finding, findingAction } from '../outcome.ts';
import { releaseFinalizer, writeStatus } from '../shared/status.ts';

function specHash(auth: VaultAuth): string {
  return createHash('sha256')
    .update(goJson(auth.spec ?? {}))
    .digest('hex');
}

type Problem = { finding: Finding; message: string };

function validate(ctx: ControllerContext, auth: VaultAuth): Problem | undefined {
  try {
    const deps = {
      authGlobals: ctx.informers.authGlobals.store,
      operatorNamespace: ctx.options.operatorNamespace,
      allowDefaultGlobals: ctx.options.allowDefaultGlobals,
    };
    const eff = resolveAuthConfig(auth, deps);
    const ref = connectionRefOf(auth, eff, ctx.options.operatorNamespace);
    if (!ctx.informers.connections.store.get(ref.namespace, ref.name)) {
      return { finding: 'reference', message: `VaultConnection ${ref.namespace}/${ref.name} not found` };
    }
    return undefined;
  } catch (err) {
    const finding = isFerryError(err) && err.code === CODES.INVALID_REF ? 'reference' : 'config';
    return { finding, message: errorMessage(err) };
  }
}

export function vaultAuthReconciler(ctx: ControllerContext) {
  const store = ctx.informers.auths.store;
  return async ({ key }: ReconcileContext): Promise<Action> => {
    const auth = store.get(key.namespace, key.name);
    if (!auth) return awaitChange();
    if (auth.metadata.deletionTimestamp) {
      await releaseFinalizer(ctx.client, VaultAuths, auth, FINALIZERS.VaultAuth);
      return awaitChange();
    }
    const uid = auth.metadata.uid ?? '';
    const hash = specHash(auth);
    // A spec change invalidates every client of this VaultAuth; a generation bump alone (e.g. a
    // no-op edit) only the older generations.
    if (auth.status?.specHash && auth.status.specHash !== hash)
      await ctx.vaultClients.pruneAuth(uid, { revoke: true });
    else
      await ctx.vaultClients.pruneAuth(uid, { belowGeneration: auth.metadata.generation ?? 0, revoke: true });

    const found = validate(ctx, auth);
    const problem = found?.message;
    const ok = found === undefined;
    const now = ctx.clock.now();
    const generation = auth.metadata.generation;
    let conditions: Condition[] = auth.status?.conditions ?? [];
    const set = (type: string, reason: string, message: string): void => {
      conditions = setCondition(
        conditions,
        { type, status: ok ? 'True' : 'False', reason, message },
        { now, generation },
      );
    };
    if (auth.spec?.vaultAuthGlobalRef)
      set(
        CONDITION_TYPES.Available,
        CONDITION_REASONS.VaultAuthGlobalRef,
        problem ?? 'VaultAuthGlobal resolved',
      );
    set(
      CONDITION_TYPES.Healthy,
      ok ? CONDITION_REASONS.Healthy : CONDITION_REASONS.Unhealthy,
      problem ?? healthyMessage('VaultAuth'),
    );
    set(CONDITION_TYPES.Ready, CONDITION_REASONS.Ready, problem ?? 'ready');
    const status: VaultAuthStatus = { valid: ok, error: problem ?? '', specHash: hash, conditions };
    const was = auth.status?.valid;
    await writeStatus(ctx, VaultAuths, auth, status);
    const involved = auth as Required<VaultAuth>;
    if (found === undefined) {
      if (was !== true) await ctx.events.normal(involved, REASONS.Accepted, 'VaultAuth accepted');
      return awaitChange();
    }
    const outcome = classifyFinding('VaultAuth', found.finding);
    if (was !== false || auth.status?.error !== problem)
      await ctx.events.warning(involved, outcome.reason, found.message);
    // References that appear later re-enqueue this object through the controller's watches.
    return findingAction(outcome, ctx.random);
  };
}

/** VSO never writes VaultAuthGlobal status (§21.4); Ferry reports that the object was read. */
export function vaultAuthGlobalReconciler(ctx: ControllerContext) {
  const store = ctx.informers.authGlobals.store;
  return async ({ key }: ReconcileContext): Promise<Action> => {
    const g: VaultAuthGlobal | undefined = store.get(key.namespace, key.name);
    if (!g || g.metadata.deletionTimestamp) return awaitChange();
    await writeStatus(ctx, VaultAuthGlobals, g, { valid: true, error: '' });
    return awaitChange();
  };
}
