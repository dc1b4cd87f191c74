// CSISecrets: upstream has no controller for this kind (vso-api.md §3.10), so a broken CSISecrets only
// shows when a pod fails to mount it. Ferry checks what can be checked without Vault (the spec's RE2
// patterns, the VaultAuth and its VaultAuthGlobal and VaultConnection, referenced
// SecretTransformations) and reports the result in a Ready condition, with a Warning Event when it
// becomes invalid. Status only: no finalizer (the CSI driver, not the operator, serves the volumes) and
// no Vault login. Referenced objects appearing, changing or vanishing re-enqueue through the reference
// indexes registered in operator.ts.
import { API_VERSION, CSISecretsResource } from '../../api/resources.ts';
import type { Transformation } from '../../api/v1beta1/common.ts';
import type { CSISecrets, CSISecretsStatus } from '../../api/v1beta1/csisecrets.ts';
import type { SecretTransformation } from '../../api/v1beta1/secrettransformation.ts';
import type { VaultAuth } from '../../api/v1beta1/vaultauth.ts';
import type { VaultAuthGlobal } from '../../api/v1beta1/vaultauthglobal.ts';
import type { VaultConnection } from '../../api/v1beta1/vaultconnection.ts';
import { parseRef, validateCSISecrets, validateVaultConnection } from '../../api/validate.ts';
import { CONDITION_TYPES } from '../../consts/conditions.ts';
import { REASONS, type Reason } from '../../consts/reasons.ts';
import { isAllowedNamespace } from '../../delivery/auth-config.ts';
import { transformationRefKeys } from '../../delivery/transformation.ts';
import { connectionRefOf, csiSecretsConsumer, resolveAuthConfig } from '../../delivery/vault-access.ts';
import { errorMessage } from '../../errors.ts';
import type { KubeObject } from '../../k8s/types.ts';
import { findCondition, setCondition } from '../../runtime/conditions.ts';
import { type Action, awaitChange, type ReconcileContext } from '../../runtime/controller.ts';
import type { Store } from '../../runtime/store.ts';
import type { ControllerContext } from '../context.ts';
import { type CheckedKind, classifyFinding, findingAction } from '../outcome.ts';
import { StatusMemo, writeStatus } from '../shared/status.ts';

const KIND = 'CSISecrets' satisfies CheckedKind;

/** What the decision reads: the informer stores of the referenced kinds and two operator options. */
export interface CSISecretsRefs {
  operatorNamespace: string;
  allowDefaultGlobals: boolean;
  auths: Pick<Store<VaultAuth>, 'get'>;
  authGlobals: Store<VaultAuthGlobal>;
  connections: Pick<Store<VaultConnection>, 'get'>;
  transformations: Pick<Store<SecretTransformation>, 'get'>;
}

export type CSISecretsVerdict =
  | { ready: true; message: string }
  | {
      ready: false;
      /** The spec itself, or what it refers to: outcome.ts turns it into the reason and timing. */
      finding: 'config' | 'reference';
      message: string;
    };

/** "ns/name" of every SecretTransformation the CSISecrets refers to: in spec.secrets.transformation
 * and in the transformation of any item of any list in spec.secrets (KV, AppRole, dynamic, PKI...). */
export function csiTransformationRefKeys(obj: CSISecrets): string[] {
  const ns = obj.metadata.namespace ?? '';
  const s = obj.spec?.secrets;
  const lists: unknown[] = Object.values(s ?? {}).filter((v) => Array.isArray(v));
  const items = lists.flat() as ({ transformation?: Transformation } | undefined)[];
  const all = [s?.transformation, ...items.map((x) => x?.transformation)];
  return [...new Set(all.flatMap((t) => transformationRefKeys(ns, t)))];
}

const refProblem = (message: string): CSISecretsVerdict => ({ ready: false, finding: 'reference', message });

/**
 * Whether the CSI driver could serve this CSISecrets, as far as that is known without Vault.
 * Messages name fields, patterns and objects; a CSISecrets holds no secret values.
 */
export function checkCSISecrets(obj: CSISecrets, refs: CSISecretsRefs): CSISecretsVerdict {
  const spec = obj.spec;
  if (!spec) return { ready: false, finding: 'config', message: 'spec is missing' };
  const problems = validateCSISecrets(spec);
  if (problems.length > 0) {
    return {
      ready: false,
      finding: 'config',
      message: `invalid CSISecrets: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`,
    };
  }
  const namespace = obj.metadata.namespace ?? '';
  // The same resolution as VaultAccessResolver.get, up to (not including) the login.
  let ref: { namespace: string; name: string };
  try {
    ref = parseRef(csiSecretsConsumer(namespace, spec).vaultAuthRef, {
      namespace,
      operatorNamespace: refs.operatorNamespace,
    });
  } catch (err) {
    return refProblem(`spec.vaultAuthRef: ${errorMessage(err)}`);
  }
  const authName = `VaultAuth ${ref.namespace}/${ref.name}`;
  const auth = refs.auths.get(ref.namespace, ref.name);
  if (!auth) return refProblem(`${authName} not found`);
  if (!isAllowedNamespace(ref, namespace, auth.spec?.allowedNamespaces, refs.operatorNamespace))
    return refProblem(`${authName} does not allow namespace ${namespace}`);
  let connRef: { namespace: string; name: string };
  try {
    // Its VaultAuthGlobal must exist and allow it, its merged login configuration be complete.
    connRef = connectionRefOf(auth, resolveAuthConfig(auth, refs), refs.operatorNamespace);
  } catch (err) {
    return refProblem(`${authName} cannot be used: ${errorMessage(err)}`);
  }
  const connName = `VaultConnection ${connRef.namespace}/${connRef.name}`;
  const conn = refs.connections.get(connRef.namespace, connRef.name);
  if (!conn) return refProblem(`${connName} not found`);
  const connProblems = conn.spec ? validateVaultConnection(conn.spec) : [];
  if (connProblems.length > 0)
    return refProblem(
      `${connName} is invalid: ${connProblems.map((p) => `${p.field}: ${p.message}`).join('; ')}`,
    );

  const missing: string[] = [];
  for (const key of csiTransformationRefKeys(obj)) {
    const [ns = '', name = ''] = key.split('/');
    const t = refs.transformations.get(ns, name);
    if (!t) missing.push(`SecretTransformation ${key} not found`);
    // Rendering refuses a SecretTransformation its own controller found invalid.
    else if (t.status?.valid === false) missing.push(`SecretTransformation ${key} is not valid`);
  }
  if (missing.length > 0) return refProblem(missing.join('; '));
  return { ready: true, message: `accepted: ${authName}, ${connName}` };
}

export interface CSISecretsStatusUpdate {
  status: CSISecretsStatus;
  /** The Event to record, only when the verdict changed (not on every reconcile). */
  event?: { type: 'Warning' | 'Normal'; reason: Reason; message: string };
}

/** The status for a verdict, built on the previous one, and the Event the change deserves. */
export function csiSecretsStatus(
  previous: CSISecretsStatus | undefined,
  verdict: CSISecretsVerdict,
  at: { now: number; generation: number | undefined },
): CSISecretsStatusUpdate {
  const before = findCondition(previous?.conditions, CONDITION_TYPES.Ready);
  const reason = verdict.ready ? REASONS.Accepted : classifyFinding(KIND, verdict.finding).reason;
  const conditions = setCondition(
    previous?.conditions,
    {
      type: CONDITION_TYPES.Ready,
      status: verdict.ready ? 'True' : 'False',
      reason,
      message: verdict.message,
    },
    at,
  );
  const status: CSISecretsStatus = { ...previous, conditions };
  if (!verdict.ready) {
    const same = before?.status === 'False' && before.reason === reason && before.message === verdict.message;
    return same ? { status } : { status, event: { type: 'Warning', reason, message: verdict.message } };
  }
  // Recovery is worth a Normal Event; a CSISecrets valid from the start needs none.
  if (before?.status === 'False')
    return { status, event: { type: 'Normal', reason, message: verdict.message } };
  return { status };
}

function involved(obj: CSISecrets): KubeObject & { apiVersion: string; kind: string } {
  return { ...obj, apiVersion: API_VERSION, kind: KIND };
}

export function csiSecretsReconciler(ctx: ControllerContext, store: Store<CSISecrets>) {
  const memo = new StatusMemo<CSISecretsStatus>(ctx.clock);
  const refs: CSISecretsRefs = {
    operatorNamespace: ctx.options.operatorNamespace,
    allowDefaultGlobals: ctx.options.allowDefaultGlobals,
    auths: ctx.informers.auths.store,
    authGlobals: ctx.informers.authGlobals.store,
    connections: ctx.informers.connections.store,
    transformations: ctx.informers.transformations.store,
  };
  return async ({ key }: ReconcileContext): Promise<Action> => {
    const obj = store.get(key.namespace, key.name);
    if (!obj || obj.metadata.deletionTimestamp) {
      if (obj) memo.forget(obj);
      return awaitChange();
    }
    const verdict = checkCSISecrets(obj, refs);
    const { status, event } = csiSecretsStatus(memo.current(obj), verdict, {
      now: ctx.clock.now(),
      generation: obj.metadata.generation,
    });
    try {
      await writeStatus(ctx, CSISecretsResource, obj, status, memo);
    } catch (err) {
      // Rebuild from the cache on retry, so the Event of this change is not lost.
      memo.forget(obj);
      throw err;
    }
    if (event?.type === 'Warning') await ctx.events.warning(involved(obj), event.reason, event.message);
    else if (event) await ctx.events.normal(involved(obj), event.reason, event.message);
    // Level-triggered: the watches on VaultAuth, VaultAuthGlobal, VaultConnection and
    // SecretTransformation bring every change that could alter the verdict.
    return verdict.ready ? awaitChange() : findingAction(classifyFinding(KIND, verdict.finding), ctx.random);
  };
}
