// A publish grant as the publisher returns it, and the task queue the Node service runs on, for
// Node service tests with a fake publisher.
import pino from 'pino';
import type { SecretCollection } from '../../../src/api/v1beta1/csisecrets.ts';
import { type Clock, systemClock } from '../../../src/clock.ts';
import { CTX } from '../../../src/csi/access.ts';
import type { Grant } from '../../../src/csi/publisher.ts';
import { TaskQueue } from '../../../src/runtime/tasks.ts';

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

/** A running task queue (the Manager's, in the driver) for a Node service under test. */
export function runningTasks(
  clock: Clock = systemClock,
  concurrency = 4,
): { tasks: TaskQueue; stop: () => Promise<void> } {
  const tasks = new TaskQueue({
    name: 'csi',
    logger: pino({ level: 'silent' }),
    clock,
    random: () => 0.5,
    concurrency,
  });
  const ac = new AbortController();
  const run = tasks.run(ac.signal);
  return {
    tasks,
    stop: () => {
      ac.abort();
      return run;
    },
  };
}

/** A NodePublishVolume request for pod team-a/p1 (ServiceAccount web) and the CSISecrets `db`. */
export function publishRequest(targetPath: string, audience = 'csi.vso.hashicorp.com') {
  return {
    volume_id: 'vol-1',
    target_path: targetPath,
    volume_capability: { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' as const } },
    readonly: true,
    volume_context: {
      [CTX.podName]: 'p1',
      [CTX.podNamespace]: 'team-a',
      [CTX.podUid]: 'uid-1',
      [CTX.serviceAccount]: 'web',
      [CTX.tokens]: JSON.stringify({ [audience]: { token: 't' } }),
      csiSecretsName: 'db',
    },
  };
}
