// VaultDynamicSecret: request leased credentials from a secrets engine, write them to the destination
// Secret, keep the lease renewed, and replace the credentials only when they must change.
//
// Level-triggered: every run reads the object's status (the lease) and the destination afresh and
// decides (decideSync in plan.ts) between new credentials, a renewal, a poll (static or
// lease-less credentials) or waiting for the renewal horizon. Unlike VSO:
// - a new Vault token (operator restart, re-login) is not a reason for new credentials: the lease is
//   renewed with whatever token the client has now, and only a renewal that Vault refuses (403, lease
//   gone) leads to new credentials (§21.9);
// - the lease of replaced credentials is revoked once the new Secret is written (§21.2), and on
//   deletion only when there is a lease and `spec.revoke` is not explicitly false (§21.1);
// - the renewal horizon never reaches the lease's expiry (§21.14);
// - workloads restart only when credentials changed after a previous sync, never on the first sync
//   (§21.13), debounced per workload (§21.8).

import { API_VERSION, VaultDynamicSecrets } from '../../api/resources.ts';
import type {
  VaultDynamicSecret,
  VaultDynamicSecretStatus,
  VaultStaticCredsMetaData,
} from '../../api/v1beta1/vaultdynamicsecret.ts';
import { refreshPeriodMs } from '../../api/validate.ts';
import { CONDITION_REASONS, CONDITION_TYPES } from '../../consts/conditions.ts';
import { FINALIZERS } from '../../consts/finalizers.ts';
import { REASONS } from '../../consts/reasons.ts';
import { makeSecretData } from '../../delivery/secret-data.ts';
import type { VaultAccess } from '../../delivery/vault-access.ts';
import { CODES, errorMessage, FerryError } from '../../errors.ts';
import { Secrets } from '../../k8s/resources.ts';
import type { Secret } from '../../k8s/types.ts';
import {
  type Condition,
  type ConditionInput,
  findCondition,
  removeCondition,
} from '../../runtime/conditions.ts';
import { type Action, awaitChange, type ReconcileContext, requeueAfter } from '../../runtime/controller.ts';
import { type JsonPatchOp, reconcileWithFinalizer } from '../../runtime/finalizer.ts';
import type { VaultApi, VaultResponse } from '../../vault/client.ts';
import { requestCredentials } from '../../vault/dynamic.ts';
import {
  isTruncated,
  type RenewedLease,
  renewalNeedsNewCredentials,
  renewLease,
  revokeLease,
  type StaticCredsMeta,
  staticCredsMeta,
} from '../../vault/leases.ts';
import type { ControllerContext } from '../context.ts';
import {
  type CleanupLimits,
  classify,
  DEFAULT_CLEANUP_LIMITS,
  errorFor,
  givesUp,
  type Phase,
  reportFailure,
} from '../outcome.ts';
import { destinationMissing, destinationOwner } from '../shared/destination.ts';
import type { DestinationWriter } from '../shared/destination-writer.ts';
import { macEqual, secretMAC } from '../shared/hmac.ts';
import { redactError } from '../shared/redact.ts';
import { restartTargets } from '../shared/restart.ts';
import { shapeFor } from '../shared/shaping.ts';
import { StatusMemo, syncConditions, writeStatus } from '../shared/status.ts';
import {
  decideSync,
  isLeased,
  macData,
  refreshDueAt,
  renewalDueAt,
  type SyncReason,
  staticPollDueAt,
} from './plan.ts';

const KIND = 'VaultDynamicSecret';

/** syncConfig.instantUpdates is reserved on this kind (VSO 1.4.1 has no such field): never silent. */
const INSTANT_UNAVAILABLE: ConditionInput = {
  type: CONDITION_TYPES.InstantUpdates,
  status: 'False',
  reason: CONDITION_REASONS.InstantUpdatesUnavailable,
  message:
    'instantUpdates is not supported on VaultDynamicSecret: credentials follow their lease (renewal, refreshAfter, rotation schedule)',
};

export interface VaultDynamicSecretOptions {
  /** Delay between writing new credentials and revoking the replaced lease. 0 (the default) revokes
   * right after the new Secret is written. A revocation still pending when the operator stops is not
   * lost for long: nobody renews that lease any more, so Vault expires it at its TTL. */
  revokeGraceMs?: number;
  /** How long a failing revocation holds a deleted object (outcome.ts); DEFAULT_CLEANUP_LIMITS. */
  cleanupLimits?: CleanupLimits;
  /** Where the precise start of each lease period is kept; a new map unless given (tests look in). */
  leaseStarts?: Map<string, number>;
}

type Involved = VaultDynamicSecret & { apiVersion: string; kind: string };

function involved(obj: VaultDynamicSecret): Involved {
  return { ...obj, apiVersion: API_VERSION, kind: KIND };
}

const nowSeconds = (ms: number): number => Math.floor(ms / 1000);

/** The destination as this run read it; undefined when the read was skipped (DestinationWriter). */
type Read = { existing: Secret | undefined } | undefined;

interface Fetched {
  res: VaultResponse;
  data: Record<string, string>;
  isStatic: boolean;
  meta?: StaticCredsMeta;
}

export function vaultDynamicSecretReconciler(
  ctx: ControllerContext,
  store: { get(ns: string | undefined, name: string): VaultDynamicSecret | undefined },
  destinations: DestinationWriter,
  options: VaultDynamicSecretOptions = {},
) {
  const revokeGraceMs = options.revokeGraceMs ?? 0;
  const cleanupLimits = options.cleanupLimits ?? DEFAULT_CLEANUP_LIMITS;
  /** The informer may lag our own status write, and acting on the stale copy would issue credentials
   * twice. */
  const memo = new StatusMemo<VaultDynamicSecretStatus>(ctx.clock);
  /** Precise start (ms) of each lease period this process began, keyed by lease id. */
  const leaseStarts = options.leaseStarts ?? new Map<string, number>();

  const conditionsFor = (
    obj: VaultDynamicSecret,
    base: Condition[] | undefined,
    ok: boolean,
    message: string,
    lease?: { ok: boolean; reason: string; message: string },
  ): Condition[] =>
    syncConditions(
      // InstantUpdates goes once the user turns instantUpdates off.
      obj.spec?.syncConfig?.instantUpdates ? base : removeCondition(base, CONDITION_TYPES.InstantUpdates),
      KIND,
      ok,
      message,
      { now: ctx.clock.now(), generation: obj.metadata.generation },
      [
        ...(lease
          ? [
              {
                type: CONDITION_TYPES.LeaseRenewal,
                status: lease.ok ? ('True' as const) : ('False' as const),
                reason: lease.reason,
                message: lease.message,
              },
            ]
          : []),
        ...(obj.spec?.syncConfig?.instantUpdates ? [INSTANT_UNAVAILABLE] : []),
      ],
    );

  /** Merge-patches `.status` (absent optional fields are cleared) and remembers what was written. */
  const patchStatus = async (obj: VaultDynamicSecret, status: VaultDynamicSecretStatus): Promise<void> => {
    if (ctx.options.operatorPodUID) status.lastRuntimePodUID = ctx.options.operatorPodUID; // §7.4
    await writeStatus(ctx, VaultDynamicSecrets, obj, status, memo, ['staticCredsMetaData', 'secretMAC']);
  };

  /** Reports a failure in status and as a Warning Event, and returns what to throw. The destination
   * is left untouched. */
  const fail = async (
    obj: VaultDynamicSecret,
    current: VaultDynamicSecretStatus | undefined,
    phase: Phase,
    err: unknown,
  ): Promise<unknown> => {
    const outcome = await reportFailure(ctx.events, involved(obj), phase, err);
    const message = errorMessage(err);
    const lease = phase === 'renew' ? { reason: outcome.reason } : undefined;
    const status: VaultDynamicSecretStatus = {
      ...(current ?? {
        lastRenewalTime: 0,
        lastGeneration: 0,
        secretLease: { id: '', duration: 0, renewable: false, requestID: '' },
      }),
      conditions: conditionsFor(
        obj,
        current?.conditions,
        false,
        message,
        lease ? { ok: false, reason: lease.reason, message } : undefined,
      ),
    };
    try {
      await patchStatus(obj, status);
    } catch (e) {
      ctx.log.warn(
        { err: e, namespace: obj.metadata.namespace, name: obj.metadata.name },
        'status write failed',
      );
    }
    return errorFor(err, outcome);
  };

  const getAccess = async (obj: VaultDynamicSecret, signal: AbortSignal): Promise<VaultAccess> => {
    const spec = obj.spec;
    return ctx.vault.get(
      {
        namespace: obj.metadata.namespace ?? '',
        vaultAuthRef: spec?.vaultAuthRef,
        vaultNamespace: spec?.namespace,
      },
      signal,
    );
  };

  const revokeLater = (obj: VaultDynamicSecret, api: VaultApi, leaseId: string): void => {
    const run = async (): Promise<void> => {
      try {
        await revokeLease(api, leaseId);
        leaseStarts.delete(leaseId);
        ctx.log.info(
          { namespace: obj.metadata.namespace, name: obj.metadata.name, leaseId },
          'revoked replaced lease',
        );
      } catch (err) {
        // Not renewed any more, the lease runs out at its TTL.
        await ctx.events.warning(
          involved(obj),
          REASONS.SecretLeaseRevoke,
          `could not revoke the replaced lease ${leaseId}: ${errorMessage(err)}`,
        );
      }
    };
    ctx.tasks.schedule(`revoke-lease/${leaseId}`, run, revokeGraceMs);
  };

  /** Best effort, not aborted with the reconcile: a lease whose credentials reached no Secret. */
  const revokeUndelivered = async (
    obj: VaultDynamicSecret,
    api: VaultApi,
    leaseId: string,
  ): Promise<void> => {
    try {
      await revokeLease(api, leaseId);
    } catch (err) {
      ctx.log.warn(
        { namespace: obj.metadata.namespace, name: obj.metadata.name, leaseId, err: errorMessage(err) },
        'could not revoke the lease of undelivered credentials; it expires at its TTL',
      );
    }
  };

  /** Requests credentials (or reads static ones) and shapes them into Secret data. */
  const fetch = async (obj: VaultDynamicSecret, api: VaultApi, signal: AbortSignal): Promise<Fetched> => {
    const spec = obj.spec;
    if (!spec) throw new FerryError(CODES.INVALID_CONFIG, 'spec is missing');
    const res = await requestCredentials(api, spec, signal);
    const isStatic = spec.allowStaticCreds === true && !res.lease_id;
    const source: Record<string, unknown> = { ...res.data };
    let meta: StaticCredsMeta | undefined;
    if (isStatic) {
      meta = staticCredsMeta(res.data);
      for (const k of ['last_vault_rotation', 'rotation_period', 'rotation_schedule', 'ttl'])
        if (!Object.hasOwn(source, k)) source[k] = k === 'rotation_schedule' ? '' : 0;
    }
    let data: Record<string, string>;
    try {
      const shaping = shapeFor(ctx, obj, spec.destination.transformation, source);
      data = makeSecretData(source, res.data, shaping);
    } catch (err) {
      // The credentials just issued cannot be delivered: revoke them rather than leave them live.
      if (res.lease_id) await revokeUndelivered(obj, api, res.lease_id);
      throw redactError(err, source);
    }
    return meta ? { res, data, isStatic, meta } : { res, data, isStatic };
  };

  /** `read`: the destination as apply read it; undefined when apply skipped the read because the
   * Secret is as this process last left it. */
  const writeDestination = async (
    obj: VaultDynamicSecret,
    data: Record<string, string>,
    read: Read,
  ): Promise<boolean> => {
    const spec = obj.spec;
    if (!spec) return false;
    // Not aborted with the reconcile: a failed write revokes the lease just issued, and an aborted
    // write may still have landed, which would leave revoked credentials in the Secret.
    const result = await destinations.write(destinationOwner(KIND, obj), spec.destination, data, {
      ...(read ? { read } : {}),
      strict: ctx.options.strictDestinationOwnership,
    });
    return result.outcome !== 'unchanged' && result.outcome !== 'skipped';
  };

  const horizonAction = (
    obj: VaultDynamicSecret,
    status: VaultDynamicSecretStatus,
    isStatic: boolean,
  ): Action => {
    const spec = obj.spec;
    const now = ctx.clock.now();
    if (isLeased(status.secretLease)) {
      const dueAt = renewalDueAt(status, spec?.renewalPercent, leaseStarts.get(status.secretLease.id));
      return requeueAfter(Math.max(0, dueAt - now));
    }
    if (isStatic) return requeueAfter(Math.max(0, staticPollDueAt(status) - now));
    const refresh = refreshPeriodMs(spec?.refreshAfter);
    if (refresh !== undefined) return requeueAfter(Math.max(0, refreshDueAt(status, refresh) - now));
    return awaitChange();
  };

  /** New credentials (or, for static credentials, a forced read): write, revoke the old lease,
   * restart workloads when credentials replaced earlier ones, record the lease. */
  const sync = async (
    obj: VaultDynamicSecret,
    current: VaultDynamicSecretStatus | undefined,
    access: VaultAccess,
    read: Read,
    reason: SyncReason | 'Refresh',
    force: boolean,
    signal: AbortSignal,
  ): Promise<Action> => {
    const spec = obj.spec;
    if (!spec) throw new FerryError(CODES.INVALID_CONFIG, 'spec is missing');
    let fetched: Fetched;
    try {
      fetched = await fetch(obj, access.api, signal);
    } catch (err) {
      throw await fail(obj, current, 'vault', err);
    }
    const { res, data, isStatic, meta } = fetched;
    const key = await ctx.hmacKey();
    const newMAC = secretMAC(key, macData(data, isStatic));
    const prevMAC = current?.secretMAC;
    const oldLeaseId = current?.secretLease?.id ?? '';
    const newLeaseId = res.lease_id ?? '';
    const credentialsReplaced = oldLeaseId !== '' && oldLeaseId !== newLeaseId;
    // An unread destination is as this process last wrote it, which status.secretMAC describes.
    const destMAC = read
      ? read.existing && secretMAC(key, macData(read.existing.data ?? {}, isStatic))
      : current?.secretMAC;
    const destMatches = macEqual(destMAC, newMAC);
    // Static and lease-less data is written only when it changed, unless a sync is forced (spec change).
    let wrote = false;
    try {
      if (force || !isStatic || !destMatches || reason === 'ResourceUpdated')
        wrote = await writeDestination(obj, data, read);
    } catch (err) {
      // The credentials just issued are not in use anywhere: revoke them rather than leave them live.
      if (newLeaseId && newLeaseId !== oldLeaseId) await revokeUndelivered(obj, access.api, newLeaseId);
      throw await fail(obj, current, 'destination', redactError(err, res.data));
    }
    const now = ctx.clock.now();
    if (oldLeaseId && oldLeaseId !== newLeaseId) leaseStarts.delete(oldLeaseId);
    if (newLeaseId) leaseStarts.set(newLeaseId, now);
    const dataChanged = !macEqual(prevMAC, newMAC);
    // "Credentials changed" for workloads: a different lease, or (static/lease-less) different data.
    const rotated = isStatic || !newLeaseId ? prevMAC !== undefined && dataChanged : credentialsReplaced;

    let conditions = conditionsFor(obj, current?.conditions, true, 'Secret synced', {
      ok: true,
      reason: REASONS.SecretLeaseRenewal,
      message: newLeaseId ? `new credentials issued (${reason})` : `credentials read (${reason})`,
    });
    const status: VaultDynamicSecretStatus = {
      lastRenewalTime: nowSeconds(now),
      lastGeneration: obj.metadata.generation ?? 0,
      secretLease: {
        id: newLeaseId,
        duration: res.lease_duration ?? 0,
        renewable: res.renewable ?? false,
        requestID: res.request_id ?? '',
      },
      secretMAC: newMAC,
      vaultClientMeta: { cacheKey: access.cacheKey, id: access.clientId },
      conditions,
    };
    if (current?.lastRuntimePodUID) status.lastRuntimePodUID = current.lastRuntimePodUID;
    if (meta) {
      const m: VaultStaticCredsMetaData = {
        lastVaultRotation: meta.lastVaultRotation,
        rotationPeriod: meta.rotationPeriod,
        ttl: meta.ttl,
      };
      if (meta.rotationSchedule) m.rotationSchedule = meta.rotationSchedule;
      status.staticCredsMetaData = m;
    }
    // Remember the new lease before anything else can fail, so a retry does not issue again.
    memo.record(obj, status);

    if (credentialsReplaced && spec.revoke !== false) revokeLater(obj, access.api, oldLeaseId);

    if (wrote || credentialsReplaced) {
      const message =
        reason === 'InitialSync' ? 'Secret synced' : `credentials replaced (${reason}); destination updated`;
      await ctx.events.normal(
        involved(obj),
        reason === 'InitialSync' ? REASONS.SecretSynced : REASONS.SecretRotated,
        message,
      );
    }
    const targets = spec.rolloutRestartTargets ?? [];
    if (rotated && reason !== 'InitialSync' && targets.length > 0) {
      conditions = await restartTargets(
        ctx,
        involved(obj),
        obj.metadata.namespace ?? '',
        targets,
        conditions,
      );
      status.conditions = conditions;
    }
    await patchStatus(obj, status);
    if (!newLeaseId && !isStatic && !spec.refreshAfter && (res.lease_duration ?? 0) === 0)
      ctx.log.debug(
        { namespace: obj.metadata.namespace, name: obj.metadata.name },
        'no lease and no refreshAfter: no periodic renewal',
      );
    return horizonAction(obj, status, isStatic);
  };

  const renew = async (
    obj: VaultDynamicSecret,
    current: VaultDynamicSecretStatus,
    access: VaultAccess,
    read: Read,
    plannedAt: number,
    signal: AbortSignal,
  ): Promise<Action> => {
    const lease = current.secretLease;
    let renewed: RenewedLease;
    try {
      renewed = await renewLease(access.api, lease.id, lease.duration, signal);
    } catch (err) {
      if (renewalNeedsNewCredentials(err)) {
        await ctx.events.normal(
          involved(obj),
          REASONS.SecretLeaseRenewal,
          `lease can no longer be renewed (${errorMessage(err)}); requesting new credentials`,
        );
        return sync(obj, current, access, read, 'LeaseRenewalRefused', true, signal);
      }
      throw await fail(obj, current, 'renew', err);
    }
    const now = ctx.clock.now();
    ctx.log.info(
      {
        namespace: obj.metadata.namespace,
        name: obj.metadata.name,
        leaseId: lease.id,
        plannedAt: new Date(plannedAt).toISOString(),
        lateMs: now - plannedAt,
        ttl: renewed.durationS,
      },
      'lease renewed',
    );
    if (isTruncated(renewed)) {
      await ctx.events.normal(
        involved(obj),
        REASONS.SecretLeaseRenewal,
        `lease renewal truncated by the max TTL (${renewed.durationS}s < ${renewed.requestedS}s); requesting new credentials`,
      );
      return sync(obj, current, access, read, 'LeaseTruncated', true, signal);
    }
    leaseStarts.set(lease.id, now);
    const status: VaultDynamicSecretStatus = {
      ...current,
      lastRenewalTime: nowSeconds(now),
      secretLease: {
        id: lease.id,
        duration: renewed.durationS,
        renewable: renewed.renewable,
        requestID: renewed.requestId || lease.requestID,
      },
      vaultClientMeta: { cacheKey: access.cacheKey, id: access.clientId },
      conditions: conditionsFor(obj, current.conditions, true, 'Secret synced', {
        ok: true,
        reason: REASONS.SecretLeaseRenewal,
        message: `lease renewed for ${renewed.durationS}s`,
      }),
    };
    await patchStatus(obj, status);
    return horizonAction(obj, status, false);
  };

  const apply = async (obj: VaultDynamicSecret, signal: AbortSignal): Promise<Action> => {
    const spec = obj.spec;
    const current = memo.current(obj);
    if (!spec) {
      throw await fail(obj, current, 'spec', new FerryError(CODES.INVALID_CONFIG, 'spec is missing'));
    }
    // Said once: the condition is in every status this kind writes from then on.
    if (
      spec.syncConfig?.instantUpdates &&
      findCondition(current?.conditions, CONDITION_TYPES.InstantUpdates)?.reason !==
        INSTANT_UNAVAILABLE.reason
    )
      await ctx.events.warning(involved(obj), REASONS.InstantUpdatesUnavailable, INSTANT_UNAVAILABLE.message);
    const namespace = obj.metadata.namespace ?? '';
    let read: Read;
    let refreshAfterMs: number | undefined;
    try {
      refreshAfterMs = refreshPeriodMs(spec.refreshAfter);
      // Nobody touched a Secret the watch shows as this process last left it: no drift, no read.
      read = destinations.untouched(destinationOwner(KIND, obj), spec.destination.name)
        ? undefined
        : { existing: await ctx.client.getIfExists<Secret>(Secrets, spec.destination.name, namespace) };
    } catch (err) {
      throw await fail(obj, current, 'spec', err);
    }
    const existing = read?.existing;
    if (read && !existing && !spec.destination.create) {
      // Do not issue credentials that could not be written anywhere.
      throw await fail(obj, current, 'destination', destinationMissing(namespace, spec.destination.name));
    }
    const isStatic = spec.allowStaticCreds === true && current?.staticCredsMetaData !== undefined;
    let drifted = false;
    if (existing && current?.secretMAC) {
      const key = await ctx.hmacKey();
      drifted = !macEqual(secretMAC(key, macData(existing.data ?? {}, isStatic)), current.secretMAC);
    }
    const decision = decideSync({
      generation: obj.metadata.generation ?? 0,
      status: current,
      destinationExists: !read || existing !== undefined,
      destinationDrifted: drifted,
      allowStaticCreds: spec.allowStaticCreds === true,
      renewalPercent: spec.renewalPercent,
      refreshAfterMs,
      nowMs: ctx.clock.now(),
      leaseStartMs: current?.secretLease?.id ? leaseStarts.get(current.secretLease.id) : undefined,
    });
    if (decision.action === 'wait') return requeueAfter(Math.max(0, decision.dueAt - ctx.clock.now()));
    if (decision.action === 'idle') return awaitChange();

    let access: VaultAccess;
    try {
      access = await getAccess(obj, signal);
    } catch (err) {
      throw await fail(obj, current, 'access', err);
    }
    if (decision.action === 'renew' && current)
      return renew(obj, current, access, read, decision.plannedAt, signal);
    if (decision.action === 'poll')
      return sync(
        obj,
        current,
        access,
        read,
        decision.reason === 'SecretDataDrift' ? 'SecretDataDrift' : 'Refresh',
        decision.reason === 'SecretDataDrift',
        signal,
      );
    if (decision.action === 'sync') {
      ctx.log.info({ namespace, name: obj.metadata.name, reason: decision.reason }, 'syncing dynamic secret');
      return sync(obj, current, access, read, decision.reason, true, signal);
    }
    return awaitChange();
  };

  const cleanup = async (obj: VaultDynamicSecret, signal: AbortSignal): Promise<Action> => {
    const current = memo.current(obj);
    memo.forget(obj);
    const leaseId = current?.secretLease?.id ?? '';
    // Nothing renews this lease any more, whether or not it is revoked.
    leaseStarts.delete(leaseId);
    if (!leaseId || obj.spec?.revoke === false) return awaitChange();
    try {
      const access = await getAccess(obj, signal);
      await revokeLease(access.api, leaseId, signal);
      ctx.log.info(
        { namespace: obj.metadata.namespace, name: obj.metadata.name, leaseId },
        'revoked lease on deletion',
      );
      return awaitChange();
    } catch (err) {
      const outcome = classify(err, 'revokeLease', cleanupLimits);
      if (outcome.quiet) return awaitChange(); // nothing left to revoke with
      if (givesUp(outcome, obj.metadata.deletionTimestamp, ctx.clock.now())) {
        const since = ctx.clock.now() - Date.parse(obj.metadata.deletionTimestamp ?? '');
        await ctx.events.warning(
          involved(obj),
          outcome.reason,
          `gave up revoking lease ${leaseId} ${Math.round(since / 1000)}s after deletion: ${errorMessage(err)}; it expires at its TTL`,
        );
        return awaitChange();
      }
      await ctx.events.warning(
        involved(obj),
        outcome.reason,
        `could not revoke lease ${leaseId} (will retry): ${errorMessage(err)}`,
      );
      throw err;
    }
  };

  return async ({ key, signal }: ReconcileContext): Promise<Action> => {
    const obj = store.get(key.namespace, key.name);
    if (!obj) return awaitChange();
    const patcher = (ops: JsonPatchOp[]): Promise<VaultDynamicSecret> =>
      ctx.client.patch<VaultDynamicSecret>(
        VaultDynamicSecrets,
        obj.metadata.name ?? '',
        obj.metadata.namespace,
        ops,
        'json',
      );
    return reconcileWithFinalizer(obj, FINALIZERS.VaultDynamicSecret, patcher, {
      apply: (o) => apply(o, signal),
      cleanup: (o) => cleanup(o, signal),
    });
  };
}
