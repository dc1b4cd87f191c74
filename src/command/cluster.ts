// The operator's leader Lease, which tells the commands where the operator runs (its namespace) and
// whether it is alive.
import { LEADER_ELECTION_ID } from '../consts/labels.ts';
import type { KubeClient } from '../k8s/client.ts';
import { Leases } from '../k8s/resources.ts';
import type { Lease } from '../k8s/types.ts';

/** The operator's leader-election Lease, in whichever namespace it runs. */
export async function operatorLease(kube: Pick<KubeClient, 'list'>): Promise<Lease | undefined> {
  const leases = await kube.list<Lease>(Leases, { fieldSelector: `metadata.name=${LEADER_ELECTION_ID}` });
  return leases.items[0];
}
