// VaultStaticSecret: read a KV secret, shape it, converge the destination Secret, restart workloads
// when the data changed, and come back after refreshAfter. Level-triggered: every run reads Vault
// afresh and converges the destination; nothing is written when both already agree, and the Secret
// is not even read when the watch shows it as Ferry last left it (destination-writer.ts).

import { API_VERSION, VaultStaticSecrets } from '../../api/resources.ts';
import type { VaultStaticSecret, VaultStaticSecretStatus } from '../../api/v1beta1/vaultstaticsecret.ts';
import { refreshPeriodMs } from '../../api/validate.ts';
import { jitterUp } from '../../backoff.ts';
import { CONDITION_REASONS, CONDITION_TYPES } from '../../consts/conditions.ts';
import { FINALIZERS } from '../../consts/finalizers.ts';
import { REASONS } from '../../consts/reasons.ts';
import { makeSecretData } from '../../delivery/secret-data.ts';
import { CODES, errorMessage, FerryError } from '../../errors.ts';
import {
  type Condition,
  type ConditionInput,
  findCondition,
  removeCondition,
} from '../../runtime/conditions.ts';
import { type Action, awaitChange, type ReconcileContext, requeueAfter } from '../../runtime/controller.ts';
import { readKV } from '../../vault/kv.ts';
import type { ControllerContext } from '../context.ts';
import { errorFor, type Phase, reportFailure } from '../outcome.ts';
import { destinationOwner } from '../shared/destination.ts';
import type { DestinationWriter } from '../shared/destination-writer.ts';
import { macEqual, secretMAC } from '../shared/hmac.ts';
import { redactError } from '../shared/redact.ts';
import { restartTargets } from '../shared/restart.ts';
import { shapeFor } from '../shared/shaping.ts';
import { releaseFinalizer, StatusMemo, syncConditions, writeStatus } from '../shared/status.ts';
import type { ReadNamespaces } from './instant.ts';

const KIND = 'VaultStaticSecret';
const DEFAULT_REFRESH_MS = 60_000; // VSO's poll when hmacSecretData is on and refreshAfter unset

type Involved = VaultStaticSecret & { apiVersion: string; kind: string };

export function vaultStaticSecretReconciler(
  ctx: ControllerContext,
  store: { get(ns: string | undefined, name: string): VaultStaticSecret | undefined },
  destinations: DestinationWriter,
  /** Where instant updates learn each resource's Vault namespace (instant.ts). */
  namespaces?: ReadNamespaces,
) {
  const memo = new StatusMemo<VaultStaticSecretStatus>(ctx.clock);
  /** The conditions to build on: InstantUpdates goes once the user turns instantUpdates off. */
  const baseConditions = (obj: VaultStaticSecret): Condition[] | undefined => {
    const c = memo.current(obj)?.conditions;
    return obj.spec?.syncConfig?.instantUpdates ? c : removeCondition(c, CONDITION_TYPES.InstantUpdates);
  };
  const conditionsFor = (obj: VaultStaticSecret, ok: boolean, message: string): Condition[] =>
    syncConditions(baseConditions(obj), KIND, ok, message, {
      now: ctx.clock.now(),
      generation: obj.metadata.generation,
    });

  /**
   * Reports a failure in status and as a Warning Event (the destination is left untouched) and
   * returns the error to throw. Errors raised after the secret data was read come through redactError.
   */
  const fail = async (obj: VaultStaticSecret, phase: Phase, err: unknown): Promise<unknown> => {
    const outcome = await reportFailure(ctx.events, involved(obj), phase, err);
    const message = errorMessage(err);
    const previous = memo.current(obj);
    const status: VaultStaticSecretStatus = {
      ...previous,
      lastGeneration: previous?.lastGeneration ?? 0,
      conditions: conditionsFor(obj, false, message),
    };
    await writeStatus(ctx, VaultStaticSecrets, obj, status, memo);
    return errorFor(err, outcome);
  };

  return async ({ key, signal }: ReconcileContext): Promise<Action> => {
    const obj = store.get(key.namespace, key.name);
    if (!obj) {
      namespaces?.forget(key);
      return awaitChange();
    }
    if (obj.metadata.deletionTimestamp) {
      // Garbage collection removes the destination through its ownerReference.
      await releaseFinalizer(ctx.client, VaultStaticSecrets, obj, FINALIZERS.VaultStaticSecret);
      return awaitChange();
    }
    const spec = obj.spec;
    const namespace = obj.metadata.namespace ?? '';
    if (!spec) {
      throw await fail(obj, 'spec', new FerryError(CODES.INVALID_CONFIG, 'spec is missing'));
    }

    let access: Awaited<ReturnType<typeof ctx.vault.get>>;
    let source: Awaited<ReturnType<typeof readKV>>;
    try {
      access = await ctx.vault.get(
        { namespace, vaultAuthRef: spec.vaultAuthRef, vaultNamespace: spec.namespace },
        signal,
      );
    } catch (err) {
      throw await fail(obj, 'access', err);
    }
    namespaces?.record(key, access.vaultNamespace);
    try {
      source = await readKV(access.api, {
        mount: spec.mount,
        path: spec.path,
        type: spec.type,
        ...(spec.version ? { version: spec.version } : {}),
        signal,
      });
    } catch (err) {
      throw await fail(obj, 'vault', err);
    }

    const dest = spec.destination;
    let data: Record<string, string>;
    try {
      const shaping = shapeFor(ctx, obj, dest.transformation, source.data, source.metadata ?? {});
      data = makeSecretData(source.data, source.raw, shaping);
    } catch (err) {
      // Retried with backoff: a change in Vault or in a SecretTransformation can fix it too.
      throw await fail(obj, 'shape', redactError(err, source.data));
    }

    const hmac = spec.hmacSecretData ?? true;
    let newMAC: string;
    let dataChanged: boolean;
    let existed: boolean;
    try {
      const key = await ctx.hmacKey();
      newMAC = secretMAC(key, data);
      const result = await destinations.write(destinationOwner(KIND, obj), dest, data, {
        signal,
        strict: ctx.options.strictDestinationOwnership,
      });
      // Skipped: the Secret is what Ferry last wrote or verified, and that is what is desired now.
      const { existing } = result;
      existed = result.outcome === 'skipped' || existing !== undefined;
      dataChanged =
        result.outcome !== 'skipped' && (!existing || !macEqual(secretMAC(key, existing.data ?? {}), newMAC));
    } catch (err) {
      throw await fail(obj, 'destination', redactError(err, source.data));
    }
    const prevMAC = memo.current(obj)?.secretMAC;

    const instant = instantCondition(obj, ctx.options.auditStream !== undefined);
    let conditions = syncConditions(
      baseConditions(obj),
      KIND,
      true,
      'Secret synced',
      { now: ctx.clock.now(), generation: obj.metadata.generation },
      instant ? [instant] : [],
    );
    // Said once: when the condition first becomes Unavailable, not on every refresh.
    const before = findCondition(memo.current(obj)?.conditions, CONDITION_TYPES.InstantUpdates);
    if (instant?.status === 'False' && before?.reason !== instant.reason)
      await ctx.events.warning(involved(obj), REASONS.InstantUpdatesUnavailable, instant.message);
    if (dataChanged) {
      if (!existed || !prevMAC) await ctx.events.normal(involved(obj), REASONS.SecretSynced, 'Secret synced');
      else if (macEqual(prevMAC, newMAC))
        await ctx.events.normal(
          involved(obj),
          REASONS.SecretDataDrift,
          'destination Secret drifted from Vault; restored',
        );
      else
        await ctx.events.normal(
          involved(obj),
          REASONS.SecretRotated,
          'Secret data changed in Vault; destination updated',
        );
    }
    // Workloads restart when the data they read changed, never on the first sync (no previous MAC).
    const targets = spec.rolloutRestartTargets ?? [];
    if (dataChanged && prevMAC && targets.length > 0) {
      if (!hmac)
        ctx.log.warn(
          { namespace, name: obj.metadata.name },
          'rolloutRestartTargets ignored: hmacSecretData is false',
        );
      else conditions = await restartTargets(ctx, involved(obj), namespace, targets, conditions);
    }

    const status: VaultStaticSecretStatus = {
      lastGeneration: obj.metadata.generation ?? 0,
      ...(hmac ? { secretMAC: newMAC } : {}),
      vaultClientMeta: { cacheKey: access.cacheKey, id: access.clientId },
      conditions,
    };
    await writeStatus(ctx, VaultStaticSecrets, obj, status, memo);

    const refresh = refreshPeriodMs(spec.refreshAfter);
    if (!hmac && refresh === undefined) return awaitChange();
    const period = refresh ?? DEFAULT_REFRESH_MS;
    // KV data never expires, so nothing is gained by reading early (VSO reads at 0.8–0.9×, i.e. ~1.2
    // reads per period); at [1, 1.05)× it is one read per refreshAfter, spread to avoid bursts.
    return requeueAfter(jitterUp(period, 0.05, ctx.random));
  };
}

/** The InstantUpdates condition of a resource that asks for instant updates; none otherwise. */
function instantCondition(obj: VaultStaticSecret, streamConfigured: boolean): ConditionInput | undefined {
  if (!obj.spec?.syncConfig?.instantUpdates) return undefined;
  return streamConfigured
    ? {
        type: CONDITION_TYPES.InstantUpdates,
        status: 'True',
        reason: CONDITION_REASONS.AuditStream,
        message: 'changes in Vault arrive through the audit stream',
      }
    : {
        type: CONDITION_TYPES.InstantUpdates,
        status: 'False',
        reason: CONDITION_REASONS.InstantUpdatesUnavailable,
        message:
          'no change stream is configured on the operator (--audit-stream-bind-address); the secret is refreshed every refreshAfter',
      };
}

function involved(obj: VaultStaticSecret): Involved {
  return { ...obj, apiVersion: API_VERSION, kind: KIND };
}
