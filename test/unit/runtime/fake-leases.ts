// An in-memory Lease API for the leader-election tests of the elector and the manager.
import { K8sApiError } from '../../../src/k8s/errors.ts';
import type { KubeObject, Lease } from '../../../src/k8s/types.ts';
import type { LeaseClient } from '../../../src/runtime/leader.ts';

/** An in-memory Lease API with apiserver optimistic concurrency: PUT must carry the current
 * resourceVersion. `down` makes every call fail (an unreachable apiserver). */
export class FakeLeases {
  lease: Lease | undefined;
  rv = 0;
  down = false;
  client(): LeaseClient {
    const check = () => {
      if (this.down) throw new K8sApiError(503, 'ServiceUnavailable', 'down');
    };
    return {
      get: async <T extends KubeObject>() => {
        check();
        if (!this.lease) throw new K8sApiError(404, 'NotFound', 'not found');
        return structuredClone(this.lease) as unknown as T;
      },
      create: async <T extends KubeObject>(_rt: unknown, obj: T) => {
        check();
        if (this.lease) throw new K8sApiError(409, 'AlreadyExists', 'exists');
        this.lease = { ...(obj as Lease), metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
        return structuredClone(this.lease) as unknown as T;
      },
      replace: async <T extends KubeObject>(_rt: unknown, obj: T) => {
        check();
        if (obj.metadata.resourceVersion !== this.lease?.metadata.resourceVersion) {
          throw new K8sApiError(409, 'Conflict', 'conflict');
        }
        this.lease = { ...(obj as Lease), metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
        return structuredClone(this.lease) as unknown as T;
      },
    } as LeaseClient;
  }
}
