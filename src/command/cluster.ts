// Reads of the cluster the commands share: an object that may not exist, and the operator's leader
// Lease, which tells where the operator runs (its namespace) and whether it is alive.
import { LEADER_ELECTION_ID } from '../consts/labels.ts';
import type { KubeClient } from '../k8s/client.ts';
import { K8sApiError } from '../k8s/errors.ts';
import { Leases, type ResourceType } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';

/** The object, or undefined when the apiserver says 404. */
export async function getOptional<T extends KubeObject>(
  kube: Pick<KubeClient, 'get'>,
  rt: ResourceType,
  name: string,
  namespace?: string,
): Promise<T | undefined> {
  try {
    return await kube.get<T>(rt, name, namespace);
  } catch (err) {
    if (err instanceof K8sApiError && err.isNotFound()) return undefined;
    throw err;
  }
}

export interface Lease extends KubeObject {
  spec?: { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number };
}

/** The operator's leader-election Lease, in whichever namespace it runs. */
export async function operatorLease(kube: Pick<KubeClient, 'list'>): Promise<Lease | undefined> {
  const leases = await kube.list<Lease>(Leases, { fieldSelector: `metadata.name=${LEADER_ELECTION_ID}` });
  return leases.items[0];
}
