// A publish grant as the publisher returns it, and the task queue the Node service runs on, for
// Node service tests with a fake publisher.
import pino from 'pino';
import type { SecretCollection } from '../../../src/api/v1beta1/csisecrets.ts';
import { type Clock, systemClock } from '../../../src/clock.ts';
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
