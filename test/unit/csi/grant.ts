// A publish grant as the publisher returns it, for Node service tests with a fake publisher.
import type { SecretCollection } from '../../../src/api/v1beta1/csisecrets.ts';
import type { Grant } from '../../../src/csi/publisher.ts';

export function testGrant(generation: number, secrets: SecretCollection): Grant {
  return {
    csiSecrets: { namespace: 'team-a', name: 'db', uid: 'u1', generation },
    consumer: { namespace: 'team-a' },
    snapshot: {
      namespace: 'team-a',
      annotations: {},
      labels: {},
      spec: { accessControl: { serviceAccountPattern: 'web' }, secrets },
    },
    ownership: { fileMode: 0o400, dirMode: 0o700 },
  };
}
