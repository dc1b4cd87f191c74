// Leader election against the real kube-apiserver: two electors on one Lease. Exactly one leads;
// after the leader stops (with release, and silently without), the other takes over in time; and
// at no sampled instant do both consider themselves leader.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KubeClient } from '../../src/k8s/client.ts';
import { loadKubeConnection } from '../../src/k8s/config.ts';
import { Namespaces } from '../../src/k8s/resources.ts';
import { LeaderElector } from '../../src/runtime/leader.ts';
import { uniqueName, useStack } from './harness.ts';

const TIMING = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

describe('leader election (real apiserver)', () => {
  let client: KubeClient;
  let ns: string;

  before(async () => {
    const env = await useStack();
    client = new KubeClient(loadKubeConnection({ kubeconfig: env.kubeconfig }), {
      userAgent: 'ferry-e2e-leader',
    });
    ns = uniqueName('leader');
    await client.create(Namespaces, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  });

  after(async () => {
    await client.delete(Namespaces, ns).catch(() => {});
    await client.close();
  });

  function elect(lease: string, identity: string, releaseOnCancel: boolean) {
    const stop = new AbortController();
    const el = new LeaderElector({
      ...TIMING,
      client,
      namespace: ns,
      name: lease,
      identity,
      releaseOnCancel,
      onStartedLeading: () => {},
    });
    return { el, stop, done: el.run(stop.signal) };
  }

  /** Polls until `cond` holds, asserting `never` is false at every sample. */
  async function until(cond: () => boolean, withinMs: number, never: () => boolean): Promise<number> {
    const start = Date.now();
    while (!cond()) {
      assert.ok(!never(), 'two leaders at once');
      assert.ok(Date.now() - start < withinMs, `condition not met within ${withinMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return Date.now() - start;
  }

  for (const release of [true, false]) {
    it(`the other candidate takes over after the leader stops (release=${release})`, async () => {
      const lease = uniqueName('lock');
      const a = elect(lease, 'a', release);
      const both = () => a.el.isLeader() && b.el.isLeader();
      // Let a create the lease first so the roles are deterministic.
      await until(
        () => a.el.isLeader(),
        10_000,
        () => false,
      );
      const b = elect(lease, 'b', release);
      await until(() => b.el.stateKnown(), 10_000, both);
      // b must stay a follower while a renews (observe a few renewals).
      const followerUntil = Date.now() + 3 * TIMING.retryPeriodMs;
      while (Date.now() < followerUntil) {
        assert.ok(!b.el.isLeader() && a.el.isLeader() && !both());
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(b.el.leader(), 'a');

      a.stop.abort();
      assert.equal(await a.done, false);
      // With release, b acquires at its next retry. Without, b must see the record unchanged for
      // leaseDuration on its own clock: it observes a's last renewal up to one jittered retry period
      // (2.2 × retryPeriod) late and notices expiry up to one more late.
      const bound = release
        ? TIMING.leaseDurationMs
        : TIMING.leaseDurationMs + 2 * 2.2 * TIMING.retryPeriodMs + 1000;
      const took = await until(() => b.el.isLeader(), bound, both);
      if (release) assert.ok(took < 2.2 * TIMING.retryPeriodMs + 1000, `released lease took ${took} ms`);
      else
        assert.ok(took > TIMING.leaseDurationMs - TIMING.retryPeriodMs - 1000, `took over early: ${took} ms`);
      b.stop.abort();
      await b.done;
    });
  }
});
