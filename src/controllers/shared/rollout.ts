// Rollout restarts as VSO performs them: a pod-template annotation for apps/v1 workloads
// (strategic merge) and `spec.restartAt` for Argo Rollouts (JSON merge).
import { ANNOTATION_RESTARTED_AT } from '../../consts/labels.ts';
import { type ResourceType, ROLLOUT_RESOURCES, type RolloutKind } from '../../k8s/resources.ts';

export interface RestartPatch {
  resource: ResourceType;
  type: 'strategic' | 'merge';
  body: unknown;
}

export function restartPatch(kind: RolloutKind, now: Date): RestartPatch {
  const at = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const resource = ROLLOUT_RESOURCES[kind];
  if (kind === 'argo.Rollout') return { resource, type: 'merge', body: { spec: { restartAt: at } } };
  return {
    resource,
    type: 'strategic',
    body: { spec: { template: { metadata: { annotations: { [ANNOTATION_RESTARTED_AT]: at } } } } },
  };
}
