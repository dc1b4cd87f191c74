// What the command tests share: an apiserver that only lists and gets canned objects, and Events.
import type { KubeClient, ListOptions } from '../../../src/k8s/client.ts';
import type { ResourceType } from '../../../src/k8s/resources.ts';

export type FakeKube = Pick<KubeClient, 'getIfExists' | 'list' | 'create'> & { asked: string[] };

type Meta = { metadata: { name?: string; namespace?: string } };

/**
 * `objects` by kind. list filters by namespace, and Events by `involvedObject.kind=` in the field
 * selector; get answers those objects, the CRDs named in `crds` (served v1beta1), and nothing otherwise.
 */
export function fakeKube(
  objects: Record<string, unknown[]>,
  crds: string[] = [],
  /** SubjectAccessReviews answer allowed unless `verb resource[/subresource]` is listed here. */
  denied: string[] = [],
): FakeKube {
  const asked: string[] = [];
  return {
    asked,
    create: (async (_rt: ResourceType, obj: { spec: { resourceAttributes: Record<string, string> } }) => {
      const a = obj.spec.resourceAttributes;
      const what = `${a.verb} ${a.resource}${a.subresource ? `/${a.subresource}` : ''}`;
      return { ...obj, status: { allowed: !denied.includes(what) } };
    }) as unknown as FakeKube['create'],
    getIfExists: (async (rt: ResourceType, name: string, namespace?: string) => {
      const found = (objects[rt.kind] ?? []).find(
        (o) =>
          (o as Meta).metadata.name === name && (!namespace || (o as Meta).metadata.namespace === namespace),
      );
      if (found) return found;
      if (!crds.includes(name)) return undefined;
      return { metadata: { name }, spec: { versions: [{ name: 'v1beta1', served: true }] } };
    }) as FakeKube['getIfExists'],
    list: (async (rt: ResourceType, opts?: ListOptions) => {
      asked.push(`${rt.kind} ${opts?.namespace ?? '*'} ${opts?.fieldSelector ?? ''}`.trim());
      const kind = /involvedObject\.kind=(\w+)/.exec(opts?.fieldSelector ?? '')?.[1];
      const items = (objects[rt.kind] ?? []).filter(
        (o) =>
          (!opts?.namespace || (o as Meta).metadata.namespace === opts.namespace) &&
          (rt.kind !== 'Event' ||
            !kind ||
            (o as { involvedObject: { kind: string } }).involvedObject.kind === kind),
      );
      return { metadata: {}, items };
    }) as FakeKube['list'],
  };
}

/** An Event about `kind` `namespace/name`. */
export function event(
  about: { kind: string; namespace: string; name: string },
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
  lastTimestamp: string,
) {
  return {
    metadata: { name: `${about.name}.${reason}`, namespace: about.namespace },
    involvedObject: about,
    type,
    reason,
    message,
    lastTimestamp,
  };
}
