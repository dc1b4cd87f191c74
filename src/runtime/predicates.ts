// Composable event filters, as controller-runtime's pkg/predicate. Predicates see the old and the new
// object of an update; create and delete events pass the "changed" predicates, because a new or
// vanished object is always a change.
import type { KubeObject } from '../k8s/types.ts';

export type ObjectEvent<T> =
  | { type: 'create'; obj: T }
  | { type: 'update'; old: T; obj: T }
  | { type: 'delete'; obj: T };

export type Predicate<T> = (ev: ObjectEvent<T>) => boolean;

function onUpdate<T>(changed: (old: T, obj: T) => boolean): Predicate<T> {
  return (ev) => ev.type !== 'update' || changed(ev.old, ev.obj);
}

function sameRecord(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const ak = Object.keys(a ?? {});
  if (ak.length !== Object.keys(b ?? {}).length) return false;
  return ak.every((k) => a?.[k] === b?.[k]);
}

/** metadata.generation changed: a spec change (status and metadata writes do not bump it). */
export const generationChanged: Predicate<KubeObject> = onUpdate(
  (old, obj) => old.metadata.generation !== obj.metadata.generation,
);

export const labelsChanged: Predicate<KubeObject> = onUpdate(
  (old, obj) => !sameRecord(old.metadata.labels, obj.metadata.labels),
);

export const annotationsChanged: Predicate<KubeObject> = onUpdate(
  (old, obj) => !sameRecord(old.metadata.annotations, obj.metadata.annotations),
);

export function and<T>(...ps: Predicate<T>[]): Predicate<T> {
  return (ev) => ps.every((p) => p(ev));
}

export function or<T>(...ps: Predicate<T>[]): Predicate<T> {
  return (ev) => ps.some((p) => p(ev));
}

export function not<T>(p: Predicate<T>): Predicate<T> {
  return (ev) => !p(ev);
}
