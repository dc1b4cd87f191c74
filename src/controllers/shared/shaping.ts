// The shaping of a sync kind's Vault data by its destination's transformation, as all three secret
// kinds call it: the SecretTransformations from the informer, --global-transformation-options, and
// the object's own annotations and labels as template input (vso-api.md §5).
import type { Transformation } from '../../api/v1beta1/common.ts';
import type { DataShaping } from '../../delivery/secret-data.ts';
import { shapeData } from '../../delivery/transformation.ts';
import type { KubeObject } from '../../k8s/types.ts';
import type { ControllerContext } from '../context.ts';

/** shapeData for `obj`'s destination: `secrets` (and `metadata`, KV only) are what the templates see. */
export function shapeFor(
  ctx: ControllerContext,
  obj: KubeObject,
  transformation: Transformation | undefined,
  secrets: Record<string, unknown>,
  metadata: Record<string, unknown> = {},
): DataShaping {
  return shapeData(
    { transformations: ctx.informers.transformations.store, globalExcludeRaw: ctx.options.globalExcludeRaw },
    obj.metadata.namespace ?? '',
    transformation,
    {
      secrets,
      metadata,
      annotations: obj.metadata.annotations ?? {},
      labels: obj.metadata.labels ?? {},
    },
  );
}
