// The work of the chart's Helm hooks, run from the operator image by src/cli/chart-hook.ts:
// - upgrade-crds (pre-upgrade): Helm installs crds/ once and never upgrades them, so the hook
//   server-side applies the CRDs of this version (VSO's hooks.upgradeCRDs).
// - uninstall (pre-delete): with the operator gone nobody would remove Ferry's finalizers, and every
//   custom resource would be left undeletable; the hook removes them first
//   (VSO's --uninstall with --pre-delete-hook-timeout-seconds).
import { buildCrd } from '../api/crd.ts';
import { ALL_KINDS } from '../api/kinds.ts';
import { FINALIZERS } from '../consts/finalizers.ts';
import type { KubeClient } from '../k8s/client.ts';
import { isK8sApiError } from '../k8s/errors.ts';
import { CustomResourceDefinitions } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';

export const HOOK_FIELD_MANAGER = 'ferry-upgrade-crds';
const OURS: ReadonlySet<string> = new Set(Object.values(FINALIZERS));

/** Server-side applies every CRD; returns their names. */
export async function upgradeCrds(kube: KubeClient): Promise<string[]> {
  const names: string[] = [];
  for (const def of ALL_KINDS) {
    const crd = buildCrd(def);
    await kube.patch(CustomResourceDefinitions, crd.metadata.name, undefined, crd, 'apply', {
      fieldManager: HOOK_FIELD_MANAGER,
      force: true,
    });
    names.push(crd.metadata.name);
  }
  return names;
}

/** Removes Ferry's finalizers from every custom resource (of every namespace, or of `namespace`);
 * returns how many objects were changed. A kind whose CRD is absent is skipped; an object deleted
 * meanwhile too. */
export async function removeFinalizers(kube: KubeClient, namespace?: string): Promise<number> {
  let changed = 0;
  for (const def of ALL_KINDS) {
    let items: KubeObject[];
    try {
      const opts = { metadataOnly: true, ...(namespace ? { namespace } : {}) };
      items = (await kube.list<KubeObject>(def.resource, opts)).items;
    } catch (err) {
      if (isK8sApiError(err) && err.isNotFound()) continue;
      throw err;
    }
    for (const obj of items) {
      const current = obj.metadata.finalizers ?? [];
      const keep = current.filter((f) => !OURS.has(f));
      if (keep.length === current.length) continue;
      try {
        // Guarded by the list it replaces, so a concurrent change makes this fail, not clobber.
        await kube.patch(
          def.resource,
          obj.metadata.name ?? '',
          obj.metadata.namespace,
          [
            { op: 'test', path: '/metadata/finalizers', value: current },
            { op: 'replace', path: '/metadata/finalizers', value: keep },
          ],
          'json',
        );
        changed++;
      } catch (err) {
        if (isK8sApiError(err) && err.isNotFound()) continue;
        throw err;
      }
    }
  }
  return changed;
}
