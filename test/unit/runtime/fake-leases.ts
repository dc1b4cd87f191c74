// An in-memory Lease API for the leader-election tests of the elector and the manager.
import { K8sApiError } from '../../../src/k8s/errors.ts';
import type { KubeObject, Lease } from '../../../src/k8s/types.ts';
import type { LeaseClient } from '../../../src/runtime/leader.ts';

/** An in-memory Lease API with apiserver optimistic concurrency: PUT must carry the current
 * resourceVersion. `down` makes every call fail (an unreachable apiserver); `stalled` holds every
 * call until it resolves (an API server waiting on etcd). */
export class FakeLeases {
  lease: Lease | undefined;
  rv = 0;
  down = false;
  stalled: Promise<void> | undefined;
  /** `link` partitions one candidate alone: its own `down` and `stalled` besides the shared ones. */
  client(link: { down?: boolean; stalled?: Promise<void> | undefined } = {}): LeaseClient {
    const check = async () => {
      await this.stalled;
      await link.stalled;
      if (this.down || link.down) throw new K8sApiError(503, 'ServiceUnavailable', 'down');
    };
    return {
      get: async <T extends KubeObject>() => {
        await check();
        if (!this.lease) throw new K8sApiError(404, 'NotFound', 'not found');
        return structuredClone(this.lease) as unknown as T;
      },
      create: async <T extends KubeObject>(_rt: unknown, obj: T) => {
        await check();
        if (this.lease) throw new K8sApiError(409, 'AlreadyExists', 'exists');
        this.lease = { ...(obj as Lease), metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
        return structuredClone(this.lease) as unknown as T;
      },
      replace: async <T extends KubeObject>(_rt: unknown, obj: T) => {
        await check();
        if (obj.metadata.resourceVersion !== this.lease?.metadata.resourceVersion) {
          throw new K8sApiError(409, 'Conflict', 'conflict');
        }
        this.lease = { ...(obj as Lease), metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
        return structuredClone(this.lease) as unknown as T;
      },
    } as LeaseClient;
  }
}
