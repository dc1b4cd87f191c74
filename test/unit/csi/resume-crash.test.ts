// A driver killed at any point of its resume loses no revocation: the state directory is copied as
// it is after every write and removal resume() makes (each one atomic, so these are all the states a
// crash can leave), and a new driver started on each copy revokes every lease exactly once — the
// ones the previous process had recorded, and the ones of the volumes whose files are gone.
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, mock } from 'node:test';
import pino from 'pino';
import { systemClock } from '../../../src/clock.ts';
import { DirMounter } from '../../../src/csi/mounter.ts';
import { NodeService } from '../../../src/csi/node.ts';
import type { PublishSource } from '../../../src/csi/publish.ts';
import type { Held } from '../../../src/csi/secrets.ts';
import { StateStore, type VolumeRecord } from '../../../src/csi/state.ts';
import { TaskQueue } from '../../../src/runtime/tasks.ts';
import { runningTasks, testGrant } from './grant.ts';

const log = pino({ level: 'silent' });
const lease = (id: string): Held => ({
  kind: 'lease',
  leaseId: id,
  clientId: 'c',
  durationS: 600,
  renewable: true,
  renewalPercent: 67,
  startedAtMs: 0,
  revoke: true,
});

/** Only release is called: nothing is published here. */
function vault(released: string[]): PublishSource {
  const never = () => Promise.reject(new Error('not in this test'));
  return {
    authorize: never,
    fetch: never,
    renew: never,
    cachedSource: () => undefined,
    async release(_g, _who, held) {
      for (const h of held) released.push(h.kind === 'lease' ? h.leaseId : h.serial);
    },
  };
}

describe('resume after a crash at any point', () => {
  let dir: string;
  const root = () => join(dir, 'pods');
  const target = (pod: string) => join(root(), pod, 'volumes', 'kubernetes.io~csi', 'secrets', 'mount');
  const volume = (pod: string, leaseId: string): VolumeRecord => ({
    volumeId: `vol-${pod}`,
    targetPath: target(pod),
    fingerprint: 'fp',
    who: `pod team-a/${pod}`,
    podUid: `uid-${pod}`,
    grant: testGrant(1, {}),
    fetchedAt: 1,
    items: [
      { ref: { kind: 'dynamic', index: 0 }, names: ['dynamic_secret_0_password'], held: lease(leaseId) },
    ],
  });
  const node = (stateDir: string, publisher: PublishSource, tasks: TaskQueue) =>
    new NodeService({
      nodeId: 'n1',
      audience: 'csi.vso.hashicorp.com',
      mounter: new DirMounter(),
      publisher,
      targetRoot: root(),
      stateDir,
      refreshIntervalMs: 60_000,
      log,
      tasks,
    });
  const ALL = ['l-b', 'l-c', 'l-old-1', 'l-old-2'];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-csi-resume-crash-'));
    // What the previous process left: two revocations it had not made yet, and two volumes whose
    // files are gone (the node rebooted their tmpfs away, or kubelet removed the targets).
    const state = new StateStore(join(dir, 'state'));
    await state.saveOrphans([
      {
        targetPath: target('gone'),
        who: 'pod team-a/gone',
        grant: testGrant(1, {}),
        held: [lease('l-old-1')],
      },
      { who: 'pod team-a/older', grant: testGrant(1, {}), held: [lease('l-old-2')] },
    ]);
    await state.saveVolume(volume('b', 'l-b'));
    await state.saveVolume(volume('c', 'l-c'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('every state a crash can leave still revokes every lease, and each once', async () => {
    // The first resume, with its queue stopped (the crash comes before any revocation runs): the
    // state directory is copied before it starts and after every write or removal it makes.
    const snapshots: string[] = [];
    const snapshot = async () => {
      const to = join(dir, `crash-${snapshots.length}`);
      await cp(join(dir, 'state'), to, { recursive: true });
      snapshots.push(to);
    };
    await snapshot();
    for (const method of ['saveOrphans', 'saveVolume', 'removeVolume'] as const) {
      const original = StateStore.prototype[method] as (this: StateStore, a: never) => Promise<void>;
      mock.method(StateStore.prototype, method, async function (this: StateStore, a: never) {
        await original.call(this, a);
        await snapshot();
      });
    }
    const stopped = new TaskQueue({ name: 'csi', logger: log, clock: systemClock, random: () => 0.5 });
    const first = node(join(dir, 'state'), vault([]), stopped);
    try {
      assert.deepEqual(await first.resume(), { volumes: 0, orphans: 4 });
    } finally {
      first.stop();
      mock.restoreAll();
    }
    assert.ok(snapshots.length >= 5, `a state after each step (${snapshots.length})`);

    for (const [i, stateDir] of snapshots.entries()) {
      const released: string[] = [];
      const { tasks, stop } = runningTasks();
      const next = node(stateDir, vault(released), tasks);
      try {
        const resumed = await next.resume();
        assert.equal(resumed.orphans, 4, `crash state ${i}: every lease recorded once`);
        for (let t = 0; t < 200 && released.length < ALL.length; t++)
          await new Promise((r) => setTimeout(r, 5));
        await new Promise((r) => setTimeout(r, 20)); // nothing more comes
        assert.deepEqual(released.sort(), ALL, `crash state ${i}: each lease revoked exactly once`);
      } finally {
        next.stop();
        await stop();
      }
    }
  });
});
