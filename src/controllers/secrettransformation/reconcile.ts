// SecretTransformation: parses every template and source template as one set (so `define`s in
// sourceTemplates resolve) and compiles the include/exclude patterns, then reports the result in
// status.valid/status.error and the Healthy/Ready conditions (VSO controllers/validators.go).
// Referrers re-sync through the reference index built from transformationRefKeys.
import { RE2JS } from 're2js';
import { SecretTransformations } from '../../api/resources.ts';
import type {
  SecretTransformation,
  SecretTransformationStatus,
} from '../../api/v1beta1/secrettransformation.ts';
import { CONDITION_REASONS, CONDITION_TYPES, healthyMessage } from '../../consts/conditions.ts';
import { errorMessage } from '../../errors.ts';
import { type Condition, setCondition } from '../../runtime/conditions.ts';
import { type Action, awaitChange, type ReconcileContext } from '../../runtime/controller.ts';
import { compileTemplates, type TemplateSource } from '../../template/index.ts';
import type { ControllerContext } from '../context.ts';
import { classifyFinding, findingAction } from '../outcome.ts';
import { writeStatus } from '../shared/status.ts';

/** Why the spec is invalid, or undefined. Messages name templates and patterns, never data. */
export function validateSecretTransformation(obj: SecretTransformation): string | undefined {
  const spec = obj.spec ?? {};
  const sources: TemplateSource[] = [
    ...(spec.sourceTemplates ?? []).map((s, i) => ({ name: s.name || `sourceTemplates/${i}`, text: s.text })),
    ...Object.entries(spec.templates ?? {}).map(([key, t]) => ({ name: key, text: t.text })),
  ];
  const problems: string[] = [];
  try {
    compileTemplates(sources);
  } catch (err) {
    problems.push(errorMessage(err));
  }
  for (const [field, patterns] of [
    ['includes', spec.includes],
    ['excludes', spec.excludes],
  ] as const) {
    for (const p of patterns ?? []) {
      try {
        RE2JS.compile(p);
      } catch {
        problems.push(`invalid ${field} pattern ${JSON.stringify(p)}`);
      }
    }
  }
  return problems.length > 0 ? problems.join('; ') : undefined;
}

export function secretTransformationReconciler(ctx: ControllerContext) {
  const store = ctx.informers.transformations.store;
  return async ({ key }: ReconcileContext): Promise<Action> => {
    const obj = store.get(key.namespace, key.name);
    if (!obj || obj.metadata.deletionTimestamp) return awaitChange();
    const problem = validateSecretTransformation(obj);
    const ok = problem === undefined;
    const now = ctx.clock.now();
    const generation = obj.metadata.generation;
    let conditions: Condition[] = obj.status?.conditions ?? [];
    conditions = setCondition(
      conditions,
      {
        type: CONDITION_TYPES.Healthy,
        status: ok ? 'True' : 'False',
        reason: ok ? CONDITION_REASONS.Healthy : CONDITION_REASONS.Unhealthy,
        message: ok ? healthyMessage('SecretTransformation') : problem,
      },
      { now, generation },
    );
    conditions = setCondition(
      conditions,
      {
        type: CONDITION_TYPES.Ready,
        status: ok ? 'True' : 'False',
        reason: CONDITION_REASONS.Ready,
        message: ok ? 'ready' : problem,
      },
      { now, generation },
    );
    const status: SecretTransformationStatus = { valid: ok, error: problem ?? '', conditions };
    const previous = obj.status;
    await writeStatus(ctx, SecretTransformations, obj, status);
    if (ok) return awaitChange();
    const outcome = classifyFinding('SecretTransformation', 'transformation');
    if (previous?.valid !== false || previous.error !== problem)
      await ctx.events.warning(obj as Required<SecretTransformation>, outcome.reason, problem);
    return findingAction(outcome, ctx.random);
  };
}
