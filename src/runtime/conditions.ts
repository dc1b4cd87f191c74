import { formatTime } from '../clock.ts';
// Status conditions with metav1.Condition semantics: one entry per type, lastTransitionTime moves only
// when the status flips, observedGeneration records which spec the condition describes.

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  /** RFC 3339, second precision (metav1.Time). */
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

/**
 * Returns a new list with `input` set. Duplicate entries of the same type (which VSO's own code can
 * leave behind) collapse into one, at the position of the first.
 */
export function setCondition(
  list: readonly Condition[] | undefined,
  input: ConditionInput,
  opts: { now: Date | number; generation?: number | undefined },
): Condition[] {
  const previous = list?.find((c) => c.type === input.type);
  const lastTransitionTime =
    previous && previous.status === input.status ? previous.lastTransitionTime : formatTime(opts.now);
  const next: Condition = {
    type: input.type,
    status: input.status,
    reason: input.reason,
    message: input.message,
    lastTransitionTime,
    ...(opts.generation !== undefined ? { observedGeneration: opts.generation } : {}),
  };
  const out: Condition[] = [];
  let placed = false;
  for (const c of list ?? []) {
    if (c.type !== input.type) out.push(c);
    else if (!placed) {
      out.push(next);
      placed = true;
    }
  }
  if (!placed) out.push(next);
  return out;
}

/** Returns the list without a condition of `type` (apimachinery's meta.RemoveStatusCondition). */
export function removeCondition(
  list: readonly Condition[] | undefined,
  type: string,
): Condition[] | undefined {
  return list?.filter((c) => c.type !== type);
}

export function findCondition(list: readonly Condition[] | undefined, type: string): Condition | undefined {
  return list?.find((c) => c.type === type);
}
