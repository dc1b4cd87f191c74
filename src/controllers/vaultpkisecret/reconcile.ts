// VaultPKISecret: issue a certificate from a PKI engine into a destination Secret and issue a new one
// before it expires (vso-api.md §3.6, §6, §8). Level-triggered: every run decides from the object,
// its status and the destination as they are now whether a certificate must be issued (plan.ts);
// otherwise it comes back at the horizon. Every sync issues a new certificate.
// On deletion (finalizer): revoke the current certificate (`revoke`), clear a Secret Ferry did not
// create (`clear`), and never hold the object longer than the outcome policy allows (outcome.ts).
// The private key never reaches logs, Events, status or error messages.

import { createHash } from 'node:crypto';
import { API_VERSION, VaultPKISecrets } from '../../api/resources.ts';
import type { VaultPKISecret, VaultPKISecretStatus } from '../../api/v1beta1/vaultpkisecret.ts';
import { FINALIZERS } from '../../consts/finalizers.ts';
import { REASONS } from '../../consts/reasons.ts';
import { goJson } from '../../delivery/gojson.ts';
import { expiryOffsetMs, pkiSecretData } from '../../delivery/pki-data.ts';
import { transformationRefKeys } from '../../delivery/transformation.ts';
import { CODES, errorMessage, FerryError, isFerryError } from '../../errors.ts';
import { isK8sApiError } from '../../k8s/errors.ts';
import { Secrets } from '../../k8s/resources.ts';
import type { Secret } from '../../k8s/types.ts';
import type { Condition } from '../../runtime/conditions.ts';
import { type Action, awaitChange, type ReconcileContext, requeueAfter } from '../../runtime/controller.ts';
import { reconcileWithFinalizer } from '../../runtime/finalizer.ts';
import { issueCertificate, type PKICertificate, renewalWindow, revokeCertificate } from '../../vault/pki.ts';
import type { ControllerContext } from '../context.ts';
import {
  type CleanupLimits,
  classify,
  DEFAULT_CLEANUP_LIMITS,
  errorFor,
  givesUp,
  type Outcome,
  type Phase,
  reportFailure,
} from '../outcome.ts';
import { destinationMissing, destinationOwner, syncDestination } from '../shared/destination.ts';
import type { DestinationWriter } from '../shared/destination-writer.ts';
import { macEqual, secretMAC } from '../shared/hmac.ts';
import { redactError } from '../shared/redact.ts';
import { restartTargets } from '../shared/restart.ts';
import { shapeFor } from '../shared/shaping.ts';
import { StatusMemo, syncConditions, writeStatus } from '../shared/status.ts';
import { decideIssue } from './plan.ts';

const KIND = 'VaultPKISecret';

/** Without a VaultAuth or VaultConnection (e.g. the namespace is deleted with them) no revocation
 * can ever succeed: give up at once rather than after the default grace. */
const PKI_CLEANUP_LIMITS: CleanupLimits = Object.freeze({ ...DEFAULT_CLEANUP_LIMITS, giveUpNoAuthMs: 0 });

type Involved = VaultPKISecret & { apiVersion: string; kind: string };

export interface VaultPKISecretReconcilerOptions {
  /** How long a failing cleanup holds a deleted object (outcome.ts); PKI_CLEANUP_LIMITS. */
  cleanupLimits?: CleanupLimits;
}

export function vaultPKISecretReconciler(
  ctx: ControllerContext,
  store: { get(ns: string | undefined, name: string): VaultPKISecret | undefined },
  destinations: DestinationWriter,
  opts: VaultPKISecretReconcilerOptions = {},
) {
  const cleanupLimits = opts.cleanupLimits ?? PKI_CLEANUP_LIMITS;
  /** Status this process wrote after its last issue, by uid: the informer may not have delivered it
   * yet when the next reconcile runs (e.g. triggered by the destination write), and a stale status
   * would look like drift and issue a second certificate. */
  const memo = new StatusMemo<VaultPKISecretStatus>(ctx.clock);
  /** Fingerprint of the template inputs that are not part of the spec, at the last issue (by uid). */
  const fingerprints = new Map<string, string>();

  const conditionsFor = (obj: VaultPKISecret, ok: boolean, message: string): Condition[] =>
    syncConditions(obj.status?.conditions, KIND, ok, message, {
      now: ctx.clock.now(),
      generation: obj.metadata.generation,
    });

  const baseStatus = (obj: VaultPKISecret): VaultPKISecretStatus => ({
    ...obj.status,
    lastGeneration: obj.status?.lastGeneration ?? 0,
    lastRotation: obj.status?.lastRotation ?? 0,
    valid: obj.status?.valid ?? false,
    error: obj.status?.error ?? '',
  });

  /** Reports a failure in status and as a Warning Event. lastGeneration, serial and MAC stay as they
   * were, so the next run still sees why it must sync; the destination is left untouched. */
  const fail = async (obj: VaultPKISecret, phase: Phase, err: unknown): Promise<unknown> => {
    const outcome = await reportFailure(ctx.events, involved(obj), phase, err);
    const message = errorMessage(err);
    const status: VaultPKISecretStatus = {
      ...baseStatus(obj),
      valid: false,
      error: message,
      conditions: conditionsFor(obj, false, message),
    };
    await writeStatus(ctx, VaultPKISecrets, obj, status);
    return errorFor(err, outcome);
  };

  /** The object with the freshest status this process knows of. */
  const withOwnStatus = (obj: VaultPKISecret): VaultPKISecret => {
    const status = memo.current(obj);
    return status === obj.status ? obj : { ...obj, ...(status ? { status } : {}) };
  };

  /** Inputs of the destination data that are not in the spec: the referenced SecretTransformations
   * and, when templates are configured, the labels and annotations they can read. */
  const fingerprint = (obj: VaultPKISecret): string => {
    const ns = obj.metadata.namespace ?? '';
    const t = obj.spec?.destination.transformation;
    const refs = transformationRefKeys(ns, t).map((k) => {
      const i = k.indexOf('/');
      const st = ctx.informers.transformations.store.get(k.slice(0, i), k.slice(i + 1));
      return [k, st?.metadata.uid ?? '', st?.metadata.generation ?? 0, st?.status?.valid ?? null];
    });
    const templated = refs.length > 0 || Object.keys(t?.templates ?? {}).length > 0;
    const input = templated
      ? { refs, labels: obj.metadata.labels ?? {}, annotations: obj.metadata.annotations ?? {} }
      : { refs };
    return createHash('sha256').update(goJson(input)).digest('base64');
  };

  const apply = async (obj: VaultPKISecret, rc: ReconcileContext): Promise<Action> => {
    const spec = obj.spec;
    if (!spec) {
      throw await fail(obj, 'spec', new FerryError(CODES.INVALID_CONFIG, 'spec is missing'));
    }
    const namespace = obj.metadata.namespace ?? '';
    const uid = obj.metadata.uid ?? '';
    const dest = spec.destination;
    const status = obj.status;
    const offsetMs = expiryOffsetMs(spec.expiryOffset);

    let existing: Secret | undefined;
    try {
      existing = await ctx.client.getIfExists<Secret>(Secrets, dest.name, namespace);
    } catch (err) {
      throw await fail(obj, 'spec', err);
    }
    if (!existing && !dest.create) {
      throw await fail(obj, 'destination', destinationMissing(namespace, dest.name));
    }

    const fp = fingerprint(obj);
    // After an operator restart there is no record: take the current inputs as the synced ones
    // rather than issuing a certificate for every object.
    if (!fingerprints.has(uid) && status?.serialNumber) fingerprints.set(uid, fp);
    const { reason, window } = await decideIssue({
      status,
      generation: obj.metadata.generation ?? 0,
      fingerprintChanged: fingerprints.get(uid) !== fp,
      destinationExists: existing !== undefined,
      drifted: async () => !macEqual(secretMAC(await ctx.hmacKey(), existing?.data ?? {}), status?.secretMAC),
      window: () =>
        renewalWindow(
          {
            nowMs: ctx.clock.now(),
            expiration: status?.expiration ?? 0,
            expiryOffsetMs: offsetMs,
            lastRotation: status?.lastRotation,
          },
          ctx.random,
        ),
    });

    if (reason === undefined) {
      // Nothing to issue; make sure an earlier failure is no longer reported.
      const next: VaultPKISecretStatus = {
        ...baseStatus(obj),
        valid: true,
        error: '',
        conditions: conditionsFor(obj, true, 'Secret synced'),
      };
      await writeStatus(ctx, VaultPKISecrets, obj, next);
      return requeueAfter(window?.horizonMs ?? 1_000);
    }

    rc.log.info({ reason }, 'issuing a certificate');
    let access: Awaited<ReturnType<typeof ctx.vault.get>>;
    try {
      access = await ctx.vault.get(
        { namespace, vaultAuthRef: spec.vaultAuthRef, vaultNamespace: spec.namespace },
        rc.signal,
      );
    } catch (err) {
      throw await fail(obj, 'access', err);
    }
    // Shape before issuing, so a broken transformation does not cost a certificate.
    try {
      shapeFor(ctx, obj, dest.transformation, {});
    } catch (err) {
      if (isFerryError(err) && (err.code === CODES.INVALID_REF || err.code === CODES.SECRET_DATA)) {
        throw await fail(obj, 'transformation', err);
      }
      // Template execution errors against empty data are expected; the real render below decides.
    }

    let cert: PKICertificate;
    try {
      cert = await issueCertificate(access.api, spec, rc.signal);
    } catch (err) {
      throw await fail(obj, 'vault', err);
    }
    const prevSerial = status?.serialNumber;
    let data: Record<string, string>;
    try {
      const shaping = shapeFor(ctx, obj, dest.transformation, cert.data);
      data = pkiSecretData(cert, shaping, dest.type);
    } catch (err) {
      await revokeQuietly(access.api, spec.mount, cert.serialNumber, rc.signal);
      throw await fail(obj, 'shape', redactError(err, cert.data));
    }

    try {
      await destinations.write(destinationOwner(KIND, obj), dest, data, {
        read: { existing },
        signal: rc.signal,
        strict: ctx.options.strictDestinationOwnership,
      });
    } catch (err) {
      // The new certificate never reached anyone: revoke it rather than leave it valid and unknown.
      await revokeQuietly(access.api, spec.mount, cert.serialNumber, rc.signal);
      throw await fail(obj, 'destination', redactError(err, cert.data));
    }
    fingerprints.set(uid, fp);

    let conditions = conditionsFor(obj, true, 'Secret synced');
    const targets = spec.rolloutRestartTargets ?? [];
    // Workloads restart when their certificate was replaced, never on the first issue.
    if (prevSerial && targets.length > 0)
      conditions = await restartTargets(ctx, involved(obj), namespace, targets, conditions);

    if (spec.revoke && prevSerial && prevSerial !== cert.serialNumber) {
      try {
        await revokeCertificate(access.api, spec.mount, prevSerial, rc.signal);
      } catch (err) {
        await ctx.events.warning(
          involved(obj),
          REASONS.CertificateRevocationError,
          `could not revoke the previous certificate ${prevSerial}: ${errorMessage(err)}`,
        );
      }
    }

    const nowMs = ctx.clock.now();
    const next: VaultPKISecretStatus = {
      serialNumber: cert.serialNumber,
      expiration: cert.expiration,
      lastGeneration: obj.metadata.generation ?? 0,
      lastRotation: Math.floor(nowMs / 1000),
      secretMAC: secretMAC(await ctx.hmacKey(), data),
      valid: true,
      error: '',
      conditions,
    };
    await writeStatus(ctx, VaultPKISecrets, obj, next, memo);

    const w = renewalWindow(
      { nowMs, expiration: next.expiration ?? 0, expiryOffsetMs: offsetMs, lastRotation: next.lastRotation },
      ctx.random,
    );
    const horizon = `horizon=${(w.horizonMs / 1000).toFixed(1)}s`;
    await ctx.events.normal(
      involved(obj),
      prevSerial ? REASONS.SecretRotated : REASONS.SecretSynced,
      `Secret synced with certificate ${cert.serialNumber} (reason ${reason}), ${horizon}`,
    );
    if (w.offsetClamped) {
      await ctx.events.warning(
        involved(obj),
        REASONS.InvalidConfiguration,
        `expiryOffset ${spec.expiryOffset} is not shorter than the certificate lifetime; renewing at two thirds of the lifetime instead`,
      );
    }
    return requeueAfter(w.horizonMs);
  };

  /** Best effort: a certificate that could not be delivered is revoked; failure is only logged. */
  const revokeQuietly = async (
    api: Parameters<typeof revokeCertificate>[0],
    mount: string,
    serial: string,
    signal: AbortSignal,
  ): Promise<void> => {
    try {
      await revokeCertificate(api, mount, serial, signal);
    } catch (err) {
      ctx.log.warn(
        { serialNumber: serial, err: errorMessage(err) },
        'could not revoke an undelivered certificate',
      );
    }
  };

  const cleanup = async (obj: VaultPKISecret, rc: ReconcileContext): Promise<Action> => {
    const spec = obj.spec;
    const uid = obj.metadata.uid ?? '';
    memo.forget(obj);
    fingerprints.delete(uid);
    if (!spec) return awaitChange();
    const namespace = obj.metadata.namespace ?? '';
    const problems: string[] = [];
    const outcomes: Outcome[] = [];
    const serial = obj.status?.serialNumber;
    if (spec.revoke && serial) {
      try {
        const access = await ctx.vault.get(
          { namespace, vaultAuthRef: spec.vaultAuthRef, vaultNamespace: spec.namespace },
          rc.signal,
        );
        await revokeCertificate(access.api, spec.mount, serial, rc.signal);
        await ctx.events.normal(involved(obj), REASONS.SecretLeaseRevoke, `certificate ${serial} revoked`);
      } catch (err) {
        problems.push(`could not revoke certificate ${serial}: ${errorMessage(err)}`);
        outcomes.push(classify(err, 'revokeCertificate', cleanupLimits));
      }
    }
    if (spec.clear && !spec.destination.create) {
      try {
        const existing = await ctx.client.getIfExists<Secret>(Secrets, spec.destination.name, namespace);
        if (existing && Object.keys(existing.data ?? {}).length > 0)
          await syncDestination(ctx.client, destinationOwner(KIND, obj), spec.destination, {}, existing, {
            strict: ctx.options.strictDestinationOwnership,
          });
      } catch (err) {
        problems.push(`could not clear Secret ${namespace}/${spec.destination.name}: ${errorMessage(err)}`);
        outcomes.push(classify(err, 'clearDestination', cleanupLimits));
      }
    }
    if (problems.length === 0) return awaitChange();
    const now = ctx.clock.now();
    if (outcomes.every((o) => givesUp(o, obj.metadata.deletionTimestamp, now))) {
      await ctx.events.warning(
        involved(obj),
        REASONS.CertificateRevocationError,
        `giving up cleanup and releasing the finalizer: ${problems.join('; ')}`,
      );
      return awaitChange();
    }
    const err = new FerryError(CODES.VAULT_API, problems.join('; '));
    await ctx.events.warning(involved(obj), REASONS.CertificateRevocationError, `${err.message}; retrying`);
    throw err;
  };

  return async (rc: ReconcileContext): Promise<Action> => {
    const found = store.get(rc.key.namespace, rc.key.name);
    if (!found) return awaitChange();
    const obj = withOwnStatus(found);
    return reconcileWithFinalizer(
      obj,
      FINALIZERS.VaultPKISecret,
      async (ops) => {
        try {
          return await ctx.client.patch<VaultPKISecret>(
            VaultPKISecrets,
            obj.metadata.name ?? '',
            obj.metadata.namespace,
            ops,
            'json',
          );
        } catch (err) {
          // Gone while we worked: there is nothing left to hold.
          if (isK8sApiError(err) && err.isNotFound()) return obj;
          throw err;
        }
      },
      {
        // The patch returns the object as stored; keep the freshest status we know of.
        apply: (o) => apply(o === obj || !obj.status ? o : { ...o, status: obj.status }, rc),
        cleanup: (o) => cleanup(o, rc),
      },
    );
  };
}

function involved(obj: VaultPKISecret): Involved {
  return { ...obj, apiVersion: API_VERSION, kind: KIND };
}
