// VaultConnection: validates the spec, checks the server with sys/seal-status, and keeps checking
// periodically, so a sealed or unreachable Vault shows in status and recovers without a restart
// (VSO checks only on spec changes, #840).

import { VaultConnections } from '../../api/resources.ts';
import type { VaultConnection, VaultConnectionStatus } from '../../api/v1beta1/vaultconnection.ts';
import { jitterDown } from '../../backoff.ts';
import { CONDITION_REASONS, CONDITION_TYPES, healthyMessage } from '../../consts/conditions.ts';
import { FINALIZERS } from '../../consts/finalizers.ts';
import { REASONS } from '../../consts/reasons.ts';
import { connectionOptions } from '../../delivery/vault-access.ts';
import { CODES, errorMessage, isFerryError } from '../../errors.ts';
import { type Condition, setCondition } from '../../runtime/conditions.ts';
import { type Action, awaitChange, type ReconcileContext, requeueAfter } from '../../runtime/controller.ts';
import { VaultClient } from '../../vault/client.ts';
import type { ControllerContext } from '../context.ts';
import { classifyFinding, findingAction } from '../outcome.ts';
import { releaseFinalizer, writeStatus } from '../shared/status.ts';

type Check =
  | { ok: true; message: string }
  | { ok: false; type: string; message: string; finding: 'config' | 'address' | 'unreachable' };

async function check(ctx: ControllerContext, conn: VaultConnection, signal: AbortSignal): Promise<Check> {
  let client: VaultClient;
  try {
    client = new VaultClient(await connectionOptions(conn, ctx.client, undefined));
  } catch (err) {
    const refused = isFerryError(err) && err.code === CODES.VAULT_ADDRESS_NOT_ALLOWED;
    return {
      ok: false,
      type: CONDITION_TYPES.VaultClient,
      message: errorMessage(err),
      finding: refused ? 'address' : 'config',
    };
  }
  try {
    const s = await client.sealStatus({ signal });
    if (s.sealed)
      return {
        ok: false,
        type: CONDITION_TYPES.VaultPing,
        message: 'Vault is sealed',
        finding: 'unreachable',
      };
    return { ok: true, message: `Vault ${s.version ?? ''} is unsealed`.replace('  ', ' ') };
  } catch (err) {
    return { ok: false, type: CONDITION_TYPES.VaultPing, message: errorMessage(err), finding: 'unreachable' };
  } finally {
    await client.close();
  }
}

export function vaultConnectionReconciler(ctx: ControllerContext) {
  const store = ctx.informers.connections.store;
  return async ({ key, signal }: ReconcileContext): Promise<Action> => {
    const conn = store.get(key.namespace, key.name);
    if (!conn) return awaitChange();
    if (conn.metadata.deletionTimestamp) {
      await releaseFinalizer(ctx.client, VaultConnections, conn, FINALIZERS.VaultConnection);
      return awaitChange();
    }
    const result = await check(ctx, conn, signal);
    const period = ctx.options.connectionHealthPeriodMs;
    // Config errors (and a refused address) wait for a spec change; reachability problems are re-checked.
    const outcome = result.ok ? undefined : classifyFinding('VaultConnection', result.finding, period);
    const now = ctx.clock.now();
    const generation = conn.metadata.generation;
    let conditions: Condition[] = conn.status?.conditions ?? [];
    const set = (type: string, ok: boolean, reason: string, message: string): void => {
      conditions = setCondition(
        conditions,
        { type, status: ok ? 'True' : 'False', reason, message },
        { now, generation },
      );
    };
    if (result.ok) {
      set(CONDITION_TYPES.VaultClient, true, 'VaultClientCreated', 'client configured');
      set(CONDITION_TYPES.VaultPing, true, 'VaultPingSucceeded', result.message);
    } else {
      set(
        result.type,
        false,
        result.finding === 'unreachable'
          ? 'VaultPingFailed'
          : (outcome?.reason ?? REASONS.VaultClientConfigError),
        result.message,
      );
    }
    set(
      CONDITION_TYPES.Healthy,
      result.ok,
      result.ok ? CONDITION_REASONS.Healthy : CONDITION_REASONS.Unhealthy,
      result.ok ? healthyMessage('VaultConnection') : result.message,
    );
    set(CONDITION_TYPES.Ready, result.ok, CONDITION_REASONS.Ready, result.ok ? 'ready' : result.message);
    const status: VaultConnectionStatus = { valid: result.ok, conditions };
    const wasValid = conn.status?.valid;
    await writeStatus(ctx, VaultConnections, conn, status);
    if (!outcome) {
      if (wasValid !== true)
        await ctx.events.normal(
          conn as Required<VaultConnection>,
          REASONS.Accepted,
          'VaultConnection accepted',
        );
      // Healthy servers are re-checked too, so that a seal or an outage shows in status.
      return requeueAfter(jitterDown(period, ctx.random));
    }
    if (wasValid !== false)
      await ctx.events.warning(conn as Required<VaultConnection>, outcome.reason, result.message);
    return findingAction(outcome, ctx.random);
  };
}
