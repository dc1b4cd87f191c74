// Rollout restarts of the workloads that consume a destination Secret, reported as Events and the
// RolloutRestart condition. A failed restart never fails the sync: the Secret is already written.
import type { RolloutRestartTarget } from '../../api/v1beta1/common.ts';
import { CONDITION_REASONS, CONDITION_TYPES } from '../../consts/conditions.ts';
import { REASONS } from '../../consts/reasons.ts';
import { errorMessage } from '../../errors.ts';
import type { KubeObject } from '../../k8s/types.ts';
import { type Condition, setCondition } from '../../runtime/conditions.ts';
import type { ControllerContext } from '../context.ts';
import { restartPatch } from './rollout.ts';

export async function restartTargets(
  ctx: ControllerContext,
  owner: KubeObject & { apiVersion: string; kind: string },
  namespace: string,
  targets: readonly RolloutRestartTarget[],
  conditions: Condition[],
): Promise<Condition[]> {
  const failures: string[] = [];
  for (const t of targets) {
    const patch = restartPatch(t.kind, new Date(ctx.clock.now()));
    try {
      await ctx.client.patch(patch.resource, t.name, namespace, patch.body, patch.type);
      await ctx.events.normal(
        owner,
        REASONS.RolloutRestartTriggered,
        `Rollout restart triggered for ${t.kind} ${t.name}`,
      );
    } catch (err) {
      const message = `Rollout restart of ${t.kind} ${t.name} failed: ${errorMessage(err)}`;
      failures.push(message);
      await ctx.events.warning(owner, REASONS.RolloutRestartFailed, message);
    }
  }
  const ok = failures.length === 0;
  return setCondition(
    conditions,
    {
      type: CONDITION_TYPES.RolloutRestart,
      status: ok ? 'True' : 'False',
      reason: ok
        ? CONDITION_REASONS.RolloutRestartTriggered
        : CONDITION_REASONS.RolloutRestartTriggeredFailed,
      message: ok ? `restarted ${targets.map((t) => `${t.kind}/${t.name}`).join(', ')}` : failures.join('; '),
    },
    { now: ctx.clock.now(), generation: owner.metadata.generation },
  );
}
