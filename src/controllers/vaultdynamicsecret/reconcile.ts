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
// - the destination carries a signed record of its lease (record.ts), written with the credentials:
//   an operator stopped before the status write adopts that lease when it starts again instead of
//   issuing new credentials, and revokes the replaced leases the record still lists;
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
import { ANNOTATION_LEASES } from '../../consts/labels.ts';
import { REASONS, type Reason } from '../../consts/reasons.ts';
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
import { isVaultError } from '../../vault/errors.ts';
import {
  isTruncated,
  lookupLease,
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
import type { DestinationWriter, WriteResult } from '../shared/destination-writer.ts';
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
import {
  adoptable,
  decodeRecord,
  encodeRecord,
  type LeaseRecord,
  leaseExpiry,
  mergePending,
  type PendingRevoke,
} from './record.ts';

const KIND = 'VaultDynamicSecret';

/** syncConfig.instantUpdates is reserved on this kind (VSO 1.4.1 has no such field): never silent. */
const INSTANT_UNAVAILABLE: ConditionInput = {
  type: CONDITION_TYPES.InstantUpdates,
  status: 'False',
  reason: CONDITION_REASONS.InstantUpdatesUnavailable,
  message:
    'instantUpdates is not supported on VaultDynamicSecret: credentials follow their lease (renewal, refreshAfter, rotation schedule)',
};

/** How soon a replaced lease that Vault refused to revoke is tried again (until it expires). */
const PENDING_REVOKE_RETRY_MS = 30_000;

export interface VaultDynamicSecretOptions {
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
  const cleanupLimits = options.cleanupLimits ?? DEFAULT_CLEANUP_LIMITS;
  /** The informer may lag our own status write, and acting on the stale copy would issue credentials
   * twice. */
  const memo = new StatusMemo<VaultDynamicSecretStatus>(ctx.clock);
  /** Precise start (ms) of each lease period this process began, keyed by lease id. */
  const leaseStarts = options.leaseStarts ?? new Map<string, number>();
  /** Replaced leases not yet revoked, by owner UID: what this process last wrote to, or read from,
   * the destination's record (so an untouched destination need not be read for them). */
  const pendingRevokes = new Map<string, PendingRevoke[]>();

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

  /**
   * Revokes the replaced leases still pending (never `inUse`; an expired one is dropped: Vault let it
   * go) and, when the destination's record lists some that are now settled, rewrites it without
   * them: one Secret write per rotation. `dest`: the Secret as this run read or wrote it, and its
   * data; else it is read when a rewrite is due. Returns whether nothing is left pending; a failed
   * revocation is tried again at the next reconcile until its lease expires.
   */
  const settle = async (
    obj: VaultDynamicSecret,
    access: VaultAccess,
    inUse: string,
    dest: Secret | undefined,
    data: Record<string, string> | undefined,
    signal: AbortSignal,
  ): Promise<boolean> => {
    const uid = obj.metadata.uid ?? '';
    const pending = mergePending([pendingRevokes.get(uid) ?? []], inUse, nowSeconds(ctx.clock.now()));
    if (pending.length === 0) {
      pendingRevokes.delete(uid);
      return true;
    }
    const ref = { namespace: obj.metadata.namespace, name: obj.metadata.name };
    const left: PendingRevoke[] = [];
    for (const p of pending) {
      try {
        await revokeLease(access.api, p.id, signal);
        ctx.log.info({ ...ref, leaseId: p.id }, 'revoked replaced lease');
      } catch (err) {
        // A token that may not revoke never will: the lease is left to its TTL, as nobody renews it.
        const refused = isVaultError(err) && err.isForbidden();
        if (!refused) left.push(p);
        await ctx.events.warning(
          involved(obj),
          REASONS.SecretLeaseRevoke,
          `could not revoke the replaced lease ${p.id} (${refused ? 'left to expire at its TTL' : 'retried until it expires'}): ${errorMessage(err)}`,
        );
      }
    }
    if (left.length > 0) pendingRevokes.set(uid, left);
    else pendingRevokes.delete(uid);
    if (left.length === pending.length) return false; // nothing settled, nothing to clear
    const kept = (p: PendingRevoke) => left.some((l) => l.id === p.id);
    const name = obj.spec?.destination.name ?? '';
    let existing = dest;
    try {
      existing ??= await ctx.client.getIfExists<Secret>(Secrets, name, obj.metadata.namespace);
      const key = await ctx.hmacKey();
      const secret = existing;
      const record = secret && decodeRecord(key, uid, secret.metadata.annotations?.[ANNOTATION_LEASES]);
      if (secret && record && !record.revoke.every(kept))
        await writeDestination(
          obj,
          data ?? secret.data ?? {},
          { existing: secret },
          encodeRecord(key, uid, { ...record, revoke: record.revoke.filter(kept) }),
        );
    } catch (err) {
      // The record still lists them: a restarted operator revokes them again (Vault accepts that).
      ctx.log.warn(
        { ...ref, err: redactError(err, data ?? existing?.data).message },
        'could not clear revoked leases from the destination record',
      );
    }
    return left.length === 0;
  };

  /** A reconcile that left a replaced lease unrevoked comes back for it soon. */
  const retrySettling = (action: Action, settled: boolean): Action => {
    if (settled) return action;
    return 'requeueAfterMs' in action && action.requeueAfterMs < PENDING_REVOKE_RETRY_MS
      ? action
      : requeueAfter(PENDING_REVOKE_RETRY_MS);
  };

  /**
   * Finishes a sync that an operator stop interrupted between the destination write and the status
   * write: the destination's record names the lease its credentials hold, the status still the one
   * they replaced. Takes that lease over (status, Event, rollout restart of a rotation) instead of
   * issuing new credentials, unless Vault says it is gone. Returns the status now current.
   */
  const adopt = async (
    obj: VaultDynamicSecret,
    current: VaultDynamicSecretStatus | undefined,
    adopted: VaultDynamicSecretStatus,
    access: VaultAccess,
    signal: AbortSignal,
  ): Promise<VaultDynamicSecretStatus | undefined> => {
    const ref = { namespace: obj.metadata.namespace, name: obj.metadata.name };
    const leaseId = adopted.secretLease.id;
    try {
      if (!(await lookupLease(access.api, leaseId, signal))) {
        ctx.log.info({ ...ref, leaseId }, 'the lease the destination names is gone: new credentials');
        return current;
      }
    } catch (err) {
      // A token without sys/leases/lookup cannot tell; its renewal will.
      ctx.log.debug({ ...ref, leaseId, err: errorMessage(err) }, 'could not look up the recorded lease');
    }
    const replaced = (current?.secretLease?.id ?? '') !== '';
    const status: VaultDynamicSecretStatus = {
      ...adopted,
      vaultClientMeta: { cacheKey: access.cacheKey, id: access.clientId },
      conditions: conditionsFor(obj, current?.conditions, true, 'Secret synced', {
        ok: true,
        reason: REASONS.SecretLeaseRenewal,
        message: 'lease taken over from the destination, written before the operator stopped',
      }),
    };
    memo.record(obj, status);
    ctx.log.info({ ...ref, leaseId }, 'adopted the lease the destination names');
    await delivered(
      obj,
      status,
      replaced
        ? {
            reason: REASONS.SecretRotated,
            message:
              'credentials replaced before the operator stopped; their lease is taken over from the destination',
          }
        : {
            reason: REASONS.SecretSynced,
            message:
              'Secret synced before the operator stopped; its lease is taken over from the destination',
          },
      replaced,
    );
    return status;
  };

  /** Credentials reached the destination: the Event, the rollout restart owed to workloads when
   * they replaced earlier ones (`restart`), then `status` is written. */
  const delivered = async (
    obj: VaultDynamicSecret,
    status: VaultDynamicSecretStatus,
    event: { reason: Reason; message: string } | undefined,
    restart: boolean,
  ): Promise<void> => {
    if (event) await ctx.events.normal(involved(obj), event.reason, event.message);
    const targets = obj.spec?.rolloutRestartTargets ?? [];
    if (restart && targets.length > 0)
      status.conditions = await restartTargets(
        ctx,
        involved(obj),
        obj.metadata.namespace ?? '',
        targets,
        status.conditions ?? [],
      );
    await patchStatus(obj, status);
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
   * Secret is as this process last left it. `record`: the lease record (undefined: none). */
  const writeDestination = async (
    obj: VaultDynamicSecret,
    data: Record<string, string>,
    read: Read,
    record: string | undefined,
  ): Promise<WriteResult> => {
    const spec = obj.spec;
    if (!spec) return { outcome: 'skipped' };
    // Not aborted with the reconcile: a failed write revokes the lease just issued, and an aborted
    // write may still have landed, which would leave revoked credentials in the Secret.
    return destinations.write(destinationOwner(KIND, obj), spec.destination, data, {
      ...(read ? { read } : {}),
      strict: ctx.options.strictDestinationOwnership,
      annotations: { [ANNOTATION_LEASES]: record },
    });
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
    const uid = obj.metadata.uid ?? '';
    const key = await ctx.hmacKey();
    // A forced sync writes: read the destination before Vault is asked, so that only the write lies
    // between the credentials' answer and the Secret that records their lease (docs/security.md).
    if (force && !read) {
      try {
        read = {
          existing: await ctx.client.getIfExists<Secret>(
            Secrets,
            spec.destination.name,
            obj.metadata.namespace,
          ),
        };
      } catch (err) {
        throw await fail(obj, current, 'destination', err);
      }
    }
    let fetched: Fetched;
    try {
      fetched = await fetch(obj, access.api, signal);
    } catch (err) {
      throw await fail(obj, current, 'vault', err);
    }
    const { res, data, isStatic, meta } = fetched;
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
    const issued = nowSeconds(ctx.clock.now());
    const replaced: PendingRevoke[] =
      credentialsReplaced && current && spec.revoke !== false
        ? [{ id: oldLeaseId, expires: leaseExpiry(current) }]
        : [];
    const revoke = mergePending([pendingRevokes.get(uid) ?? [], replaced], newLeaseId, issued);
    const record: LeaseRecord = { replaces: oldLeaseId, revoke };
    if (newLeaseId)
      record.lease = {
        id: newLeaseId,
        duration: res.lease_duration ?? 0,
        renewable: res.renewable ?? false,
        issued,
        generation: obj.metadata.generation ?? 0,
        mac: newMAC,
      };
    // Static and lease-less data is written only when it changed, unless a sync is forced (spec change).
    let written: WriteResult | undefined;
    try {
      if (force || !isStatic || !destMatches || reason === 'ResourceUpdated')
        written = await writeDestination(obj, data, read, encodeRecord(key, uid, record));
    } catch (err) {
      // The credentials just issued are not in use anywhere: revoke them rather than leave them live.
      if (newLeaseId && newLeaseId !== oldLeaseId) await revokeUndelivered(obj, access.api, newLeaseId);
      throw await fail(obj, current, 'destination', redactError(err, res.data));
    }
    if (revoke.length > 0) pendingRevokes.set(uid, revoke);
    else pendingRevokes.delete(uid);
    const wrote = written !== undefined && written.outcome !== 'unchanged' && written.outcome !== 'skipped';
    const now = ctx.clock.now();
    if (oldLeaseId && oldLeaseId !== newLeaseId) leaseStarts.delete(oldLeaseId);
    if (newLeaseId) leaseStarts.set(newLeaseId, now);
    const dataChanged = !macEqual(prevMAC, newMAC);
    // "Credentials changed" for workloads: a different lease, or (static/lease-less) different data.
    const rotated = isStatic || !newLeaseId ? prevMAC !== undefined && dataChanged : credentialsReplaced;

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
      conditions: conditionsFor(obj, current?.conditions, true, 'Secret synced', {
        ok: true,
        reason: REASONS.SecretLeaseRenewal,
        message: newLeaseId ? `new credentials issued (${reason})` : `credentials read (${reason})`,
      }),
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

    const first = reason === 'InitialSync';
    await delivered(
      obj,
      status,
      wrote || credentialsReplaced
        ? first
          ? { reason: REASONS.SecretSynced, message: 'Secret synced' }
          : {
              reason: REASONS.SecretRotated,
              message: `credentials replaced (${reason}); destination updated`,
            }
        : undefined,
      rotated && !first,
    );
    if (!newLeaseId && !isStatic && !spec.refreshAfter && (res.lease_duration ?? 0) === 0)
      ctx.log.debug(
        { namespace: obj.metadata.namespace, name: obj.metadata.name },
        'no lease and no refreshAfter: no periodic renewal',
      );
    const dest = written?.written ?? written?.existing ?? read?.existing;
    const settled = await settle(obj, access, newLeaseId, dest, written ? data : undefined, signal);
    return retrySettling(horizonAction(obj, status, isStatic), settled);
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
    const settled = await settle(obj, access, lease.id, read?.existing, undefined, signal);
    return retrySettling(horizonAction(obj, status, false), settled);
  };

  /** The destination's lease record, when it is signed for this owner; the replaced leases it lists
   * join those this process knows of. */
  const recordOf = async (obj: VaultDynamicSecret, existing: Secret): Promise<LeaseRecord | undefined> => {
    const uid = obj.metadata.uid ?? '';
    const record = decodeRecord(await ctx.hmacKey(), uid, existing.metadata.annotations?.[ANNOTATION_LEASES]);
    if (record) {
      const nowS = nowSeconds(ctx.clock.now());
      const pending = mergePending([pendingRevokes.get(uid) ?? [], record.revoke], '', nowS);
      if (pending.length > 0) pendingRevokes.set(uid, pending);
    }
    return record;
  };

  const apply = async (obj: VaultDynamicSecret, signal: AbortSignal): Promise<Action> => {
    const spec = obj.spec;
    let current = memo.current(obj);
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
    let access: VaultAccess | undefined;
    const vault = async (): Promise<VaultAccess> => {
      try {
        access ??= await getAccess(obj, signal);
        return access;
      } catch (err) {
        throw await fail(obj, current, 'access', err);
      }
    };
    const record = existing && (await recordOf(obj, existing));
    const adopted = record && adoptable(current, record);
    if (adopted) current = await adopt(obj, current, adopted, await vault(), signal);
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
    if (decision.action === 'wait' || decision.action === 'idle') {
      const action =
        decision.action === 'wait'
          ? requeueAfter(Math.max(0, decision.dueAt - ctx.clock.now()))
          : awaitChange();
      if (!pendingRevokes.has(obj.metadata.uid ?? '')) return action;
      const inUse = current?.secretLease?.id ?? '';
      return retrySettling(action, await settle(obj, await vault(), inUse, existing, undefined, signal));
    }
    const api = await vault();
    if (decision.action === 'renew' && current)
      return renew(obj, current, api, read, decision.plannedAt, signal);
    if (decision.action === 'poll')
      return sync(
        obj,
        current,
        api,
        read,
        decision.reason === 'SecretDataDrift' ? 'SecretDataDrift' : 'Refresh',
        decision.reason === 'SecretDataDrift',
        signal,
      );
    if (decision.action === 'sync') {
      ctx.log.info({ namespace, name: obj.metadata.name, reason: decision.reason }, 'syncing dynamic secret');
      return sync(obj, current, api, read, decision.reason, true, signal);
    }
    return awaitChange();
  };

  /** The leases a deletion revokes: the status's, the one the destination's record names when the
   * status is a step behind it, and the replaced ones not yet revoked. */
  const leasesToRevoke = async (
    obj: VaultDynamicSecret,
    current: VaultDynamicSecretStatus | undefined,
  ): Promise<string[]> => {
    const spec = obj.spec;
    const ids = [current?.secretLease?.id ?? ''];
    if (spec && !destinations.untouched(destinationOwner(KIND, obj), spec.destination.name)) {
      try {
        const existing = await ctx.client.getIfExists<Secret>(
          Secrets,
          spec.destination.name,
          obj.metadata.namespace,
        );
        const record = existing && (await recordOf(obj, existing));
        const adopted = record && adoptable(current, record);
        if (adopted) ids.push(adopted.secretLease.id);
      } catch (err) {
        // What the status names is still revoked.
        ctx.log.debug(
          { namespace: obj.metadata.namespace, name: obj.metadata.name, err: errorMessage(err) },
          'could not read the destination for its lease record',
        );
      }
    }
    const pending = mergePending(
      [pendingRevokes.get(obj.metadata.uid ?? '') ?? []],
      '',
      nowSeconds(ctx.clock.now()),
    );
    return [...new Set([...ids, ...pending.map((p) => p.id)])].filter((id) => id !== '');
  };

  const cleanup = async (obj: VaultDynamicSecret, signal: AbortSignal): Promise<Action> => {
    const uid = obj.metadata.uid ?? '';
    const current = memo.current(obj);
    memo.forget(obj);
    // Nothing renews this lease any more, whether or not it is revoked.
    leaseStarts.delete(current?.secretLease?.id ?? '');
    const leases = obj.spec?.revoke === false ? [] : await leasesToRevoke(obj, current);
    let leaseId = leases[0] ?? '';
    try {
      if (leases.length > 0) {
        const access = await getAccess(obj, signal);
        for (leaseId of leases) {
          await revokeLease(access.api, leaseId, signal);
          ctx.log.info(
            { namespace: obj.metadata.namespace, name: obj.metadata.name, leaseId },
            'revoked lease on deletion',
          );
        }
      }
      pendingRevokes.delete(uid);
      return awaitChange();
    } catch (err) {
      const outcome = classify(err, 'revokeLease', cleanupLimits);
      if (outcome.quiet) {
        pendingRevokes.delete(uid); // nothing left to revoke with
        return awaitChange();
      }
      if (givesUp(outcome, obj.metadata.deletionTimestamp, ctx.clock.now())) {
        pendingRevokes.delete(uid);
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
