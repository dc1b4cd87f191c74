// The node service's queue semantics, on the injected clock: work on one target never overlaps (a
// publish waits for a running upkeep of its target, up to maxWaitMs, then is ABORTED), different
// targets run at once up to the queue's bound, and a shutdown lets running work finish, refuses what
// waits and runs no more upkeep.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { CTX } from '../../../src/csi/access.ts';
import { CsiError } from '../../../src/csi/errors.ts';
import { DirMounter } from '../../../src/csi/mounter.ts';
import { NodeService } from '../../../src/csi/node.ts';
import type { NodePublishVolumeRequest } from '../../../src/csi/proto.ts';
import type { PublishSource } from '../../../src/csi/publish.ts';
import type { Grant } from '../../../src/csi/publisher.ts';
import type { Held, Item, ItemRef } from '../../../src/csi/secrets.ts';
import { FakeClock, flush } from '../runtime/fake-clock.ts';
import { runningTasks, testGrant } from './grant.ts';

const AUD = 'csi.vso.hashicorp.com';

/** Work that waits until the test opens it. */
class Gates {
  readonly #open: (() => void)[] = [];
  waiting = 0;
  enabled = false;
  async pass(): Promise<void> {
    if (!this.enabled) return;
    this.waiting++;
    await new Promise<void>((r) => this.#open.push(r));
  }
  openOne(): void {
    const open = this.#open.shift();
    if (!open) return;
    this.waiting--;
    open();
  }
}

class Source implements PublishSource {
  readonly log: string[] = [];
  readonly authorizeGate = new Gates();
  readonly renewGate = new Gates();
  inFlight = 0;
  maxInFlight = 0;
  generation = 1;
  readonly clock: FakeClock;
  constructor(clock: FakeClock) {
    this.clock = clock;
  }
  async authorize(input: { pod: { name: string } }): Promise<Grant> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    this.log.push(`authorize ${input.pod.name}`);
    const generation = this.generation;
    try {
      await this.authorizeGate.pass();
      return testGrant(generation, { vaultDynamicSecrets: [{ mount: 'db', path: 'creds/app' }] });
    } finally {
      this.inFlight--;
      this.log.push(`authorized ${input.pod.name}`);
    }
  }
  async fetch(_g: Grant, _who: string, refs: ItemRef[] = []): Promise<Item[]> {
    return refs.map((ref) => ({
      ref,
      files: [{ name: 'dynamic_0_password', data: Buffer.from('pw') }],
      held: {
        kind: 'lease',
        leaseId: `lease-${this.log.length}`,
        clientId: 'c',
        durationS: 100,
        renewable: true,
        startedAtMs: this.clock.now(),
        revoke: false,
      },
    }));
  }
  async renew(_g: Grant, _who: string, held: Held): Promise<Held | undefined> {
    this.log.push('renew');
    await this.renewGate.pass();
    this.log.push('renewed');
    return { ...held, startedAtMs: this.clock.now() } as Held;
  }
  async release(): Promise<void> {}
  cachedSource() {
    return { uid: 'u1', generation: this.generation };
  }
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (ok()) return;
    await flush(2);
    await new Promise((r) => setTimeout(r, 2));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('CSI node service queue', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-csi-queue-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  let run = 0;
  function setup(concurrency = 4, maxWaitMs = 30_000) {
    run++;
    const clock = new FakeClock();
    const queue = runningTasks(clock, concurrency);
    const source = new Source(clock);
    const node = new NodeService({
      nodeId: 'n1',
      audience: AUD,
      mounter: new DirMounter(),
      publisher: source,
      targetRoot: join(dir, `pods-${run}`),
      stagingDir: join(dir, `staging-${run}`),
      refreshIntervalMs: 0,
      maxWaitMs,
      log: pino({ level: 'silent' }),
      tasks: queue.tasks,
      clock,
      random: () => 0.5,
    });
    const req = (pod: string): NodePublishVolumeRequest => ({
      volume_id: `vol-${pod}`,
      target_path: join(dir, `pods-${run}`, pod, 'mount'),
      volume_capability: { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } },
      readonly: true,
      volume_context: {
        [CTX.podName]: pod,
        [CTX.podNamespace]: 'team-a',
        [CTX.podUid]: `uid-${pod}`,
        [CTX.serviceAccount]: 'web',
        [CTX.tokens]: JSON.stringify({ [AUD]: { token: 't' } }),
        csiSecretsName: 'db',
      },
    });
    return { clock, queue, source, node, req };
  }
  const outcome = (p: Promise<unknown>) =>
    p.then(
      () => 'OK',
      (err: unknown) => (err instanceof CsiError ? err.code : String(err)),
    );

  it('runs work on one target one at a time, in arrival order', async () => {
    const { source, node, req, queue } = setup();
    source.authorizeGate.enabled = true;
    const first = node.publish(req('a'));
    await until('the first publish authorising', () => source.authorizeGate.waiting === 1);
    source.generation = 2; // the second is a real republish, not a no-op
    const second = node.publish(req('a'));
    const unpublish = node.unpublish({ volume_id: 'vol-a', target_path: req('a').target_path });
    await flush();
    assert.equal(source.authorizeGate.waiting, 1, 'the second waits for the first');
    source.authorizeGate.openOne();
    await until('the second publish authorising', () => source.authorizeGate.waiting === 1);
    source.authorizeGate.openOne();
    assert.deepEqual(await Promise.all([outcome(first), outcome(second), outcome(unpublish)]), [
      'OK',
      'OK',
      'OK',
    ]);
    assert.deepEqual(source.log, ['authorize a', 'authorized a', 'authorize a', 'authorized a']);
    await queue.stop();
  });

  it('runs different targets at once up to the queue bound', async () => {
    const { source, node, req, queue } = setup(2);
    source.authorizeGate.enabled = true;
    const all = ['p', 'q', 'r', 's', 't'].map((p) => outcome(node.publish(req(p))));
    await until('two publishes authorising', () => source.authorizeGate.waiting === 2);
    await flush();
    assert.equal(source.inFlight, 2, 'the bound holds');
    for (let i = 0; i < 5; i++) {
      await until('a publish waiting', () => source.authorizeGate.waiting > 0);
      source.authorizeGate.openOne();
    }
    assert.deepEqual(await Promise.all(all), ['OK', 'OK', 'OK', 'OK', 'OK']);
    assert.equal(source.maxInFlight, 2);
    await queue.stop();
  });

  it('a publish waits for the running upkeep of its target', async () => {
    const { clock, source, node, req, queue } = setup();
    await node.publish(req('u'));
    source.renewGate.enabled = true;
    await clock.advanceAsync(80_000); // the lease's renewal horizon
    await until('the renewal running', () => source.renewGate.waiting === 1);
    source.generation = 2;
    const republish = outcome(node.publish(req('u')));
    await flush();
    assert.ok(!source.log.slice(1).includes('authorize u'), 'not while the renewal runs');
    source.renewGate.openOne();
    assert.equal(await republish, 'OK');
    assert.deepEqual(source.log.slice(2), ['renew', 'renewed', 'authorize u', 'authorized u']);
    await queue.stop();
  });

  it('a publish waiting longer than maxWaitMs is ABORTED; the target works again afterwards', async () => {
    const { clock, source, node, req, queue } = setup(4, 10_000);
    await node.publish(req('w'));
    source.renewGate.enabled = true;
    await clock.advanceAsync(80_000);
    await until('the renewal running', () => source.renewGate.waiting === 1);
    const stuck = outcome(node.publish(req('w')));
    await clock.advanceAsync(9_999);
    await flush();
    await clock.advanceAsync(1);
    assert.equal(await stuck, 'ABORTED');
    source.renewGate.enabled = false;
    source.renewGate.openOne();
    assert.equal(await outcome(node.publish(req('w'))), 'OK');
    await queue.stop();
  });

  it('a shutdown lets running work finish, refuses waiting work and runs no more upkeep', async () => {
    const { clock, source, node, req, queue } = setup();
    source.authorizeGate.enabled = true;
    const running = outcome(node.publish(req('d')));
    await until('the publish authorising', () => source.authorizeGate.waiting === 1);
    const waiting = outcome(node.publish(req('d')));
    await flush();
    const stopped = queue.stop();
    source.authorizeGate.openOne();
    await stopped;
    assert.equal(await running, 'OK', 'drained');
    assert.match(await waiting, /shutting down/);
    const renewals = source.log.filter((l) => l === 'renew').length;
    await clock.advanceAsync(200_000);
    assert.equal(source.log.filter((l) => l === 'renew').length, renewals, 'no upkeep after shutdown');
    assert.match(await outcome(node.publish(req('e'))), /shutting down/);
  });
});
