import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { workQueueMetrics } from '../../../src/metrics/controller.ts';
import { MetricsRegistry } from '../../../src/metrics/registry.ts';
import { WorkQueue } from '../../../src/runtime/queue.ts';
import { FakeClock, flush } from './fake-clock.ts';

function queue(clock = new FakeClock()) {
  return { clock, q: new WorkQueue<string>({ clock, random: () => 0 }) };
}

describe('WorkQueue', () => {
  it('dedupes pending keys', async () => {
    const { q } = queue();
    q.add('a');
    q.add('a');
    q.add('b');
    assert.equal(q.length, 2);
    assert.equal(await q.get(), 'a');
    assert.equal(await q.get(), 'b');
    assert.equal(q.length, 0);
  });

  it('holds a key re-added during processing until done()', async () => {
    const { q } = queue();
    q.add('a');
    assert.equal(await q.get(), 'a');
    q.add('a');
    assert.equal(q.length, 0, 'not ready while processing');
    q.done('a');
    assert.equal(q.length, 1);
    assert.equal(await q.get(), 'a');
  });

  it('a waiting get() receives the next add', async () => {
    const { q } = queue();
    const p = q.get();
    q.add('x');
    assert.equal(await p, 'x');
  });

  it('addAfter keeps the earliest ready time', async () => {
    const { q, clock } = queue();
    const t0 = clock.now();
    q.addAfter('a', 1000);
    q.addAfter('a', 5000);
    assert.equal(q.readyAt('a'), t0 + 1000);
    q.addAfter('a', 200);
    assert.equal(q.readyAt('a'), t0 + 200);
    clock.advance(199);
    assert.equal(q.length, 0);
    clock.advance(1);
    assert.equal(q.length, 1);
    assert.equal(await q.get(), 'a');
    clock.advance(10_000);
    assert.equal(q.length, 0, 'superseded timers do not fire');
  });

  it('add() makes a delayed key ready now', () => {
    const { q, clock } = queue();
    q.addAfter('a', 1000);
    q.add('a');
    assert.equal(q.length, 1);
    assert.equal(clock.pendingTimers, 0);
  });

  it('addRateLimited backs off per key; forget resets', () => {
    const { q, clock } = queue();
    const t0 = clock.now();
    q.addRateLimited('a');
    assert.equal(q.readyAt('a'), t0 + 5);
    clock.advance(5);
    q.add('b');
    assert.equal(q.numRequeues('a'), 1);
    q.addRateLimited('c');
    q.addRateLimited('c');
    assert.equal(q.numRequeues('c'), 2);
    q.forget('c');
    assert.equal(q.numRequeues('c'), 0);
  });

  it('shutdown resolves waiting and later get() with undefined and ignores adds', async () => {
    const { q, clock } = queue();
    const p = q.get();
    q.addAfter('a', 10);
    q.shutdown();
    assert.equal(await p, undefined);
    assert.equal(clock.pendingTimers, 0);
    q.add('b');
    assert.equal(await q.get(), undefined);
  });

  it('exports workqueue_* metrics with the name label', async () => {
    const clock = new FakeClock();
    const reg = new MetricsRegistry();
    const q = new WorkQueue<string>({ name: 'vss', clock, metrics: workQueueMetrics(reg) });
    q.add('a');
    q.add('b');
    clock.advance(1500);
    await q.get();
    q.addRateLimited('a');
    clock.advance(2000);
    const text = await reg.metrics();
    // a, b, and a again when its rate-limit timer fired (while still processing).
    assert.match(text, /workqueue_adds_total\{name="vss"\} 3/);
    assert.match(text, /workqueue_depth\{name="vss"\} 1/);
    assert.match(text, /workqueue_retries_total\{name="vss"\} 1/);
    assert.match(text, /workqueue_queue_duration_seconds_count\{name="vss"\} 1/);
    assert.match(text, /workqueue_longest_running_processor_seconds\{name="vss"\} 2/);
    assert.match(text, /workqueue_unfinished_work_seconds\{name="vss"\} 2/);
    q.done('a');
    assert.match(await reg.metrics(), /workqueue_work_duration_seconds_count\{name="vss"\} 1/);
  });
});

type Op =
  | { op: 'add'; key: string }
  | { op: 'addAfter'; key: string; ms: number }
  | { op: 'addRateLimited'; key: string }
  | { op: 'forget'; key: string }
  | { op: 'get' }
  | { op: 'done'; pick: number }
  | { op: 'advance'; ms: number };

const keyArb = fc.constantFrom('a', 'b', 'c', 'd');
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('add' as const), key: keyArb }),
  fc.record({ op: fc.constant('addAfter' as const), key: keyArb, ms: fc.integer({ min: -5, max: 5000 }) }),
  fc.record({ op: fc.constant('addRateLimited' as const), key: keyArb }),
  fc.record({ op: fc.constant('forget' as const), key: keyArb }),
  fc.record({ op: fc.constant('get' as const) }),
  fc.record({ op: fc.constant('done' as const), pick: fc.nat() }),
  fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 3000 }) }),
);

describe('WorkQueue (property)', () => {
  it('never hands a key to two workers, hands out only owed keys, and eventually processes every add', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { maxLength: 80 }),
        fc.integer({ min: 1, max: 4 }),
        async (ops, workers) => {
          const clock = new FakeClock();
          const q = new WorkQueue<string>({ clock, random: () => 0.999 });
          // Keys with an add not yet satisfied by a later get().
          const owed = new Set<string>();
          const inFlight: string[] = [];
          const take = async () => {
            const k = await q.get();
            assert.ok(k !== undefined);
            assert.ok(!inFlight.includes(k), `key ${k} handed out twice concurrently`);
            assert.ok(owed.has(k) || pendingTimerFor(k), `phantom key ${k}`);
            owed.delete(k);
            inFlight.push(k);
          };
          // Delayed adds become owed when their timer fires; model that lazily.
          const delayed = new Map<string, number>();
          const pendingTimerFor = (k: string) => {
            const at = delayed.get(k);
            if (at !== undefined && at <= clock.now()) {
              delayed.delete(k);
              return true;
            }
            return false;
          };
          for (const o of ops) {
            switch (o.op) {
              case 'add':
                q.add(o.key);
                owed.add(o.key);
                delayed.delete(o.key);
                break;
              case 'addAfter':
              case 'addRateLimited': {
                if (o.op === 'addAfter') q.addAfter(o.key, o.ms);
                else q.addRateLimited(o.key);
                const at = q.readyAt(o.key);
                // Pending keys are either due now (owed) or on one timer (delayed), never both.
                if (at === undefined) {
                  owed.add(o.key);
                  delayed.delete(o.key);
                } else delayed.set(o.key, at);
                break;
              }
              case 'forget':
                q.forget(o.key);
                break;
              case 'get':
                if (q.length > 0 && inFlight.length < workers) await take();
                break;
              case 'done': {
                if (inFlight.length === 0) break;
                const [k] = inFlight.splice(o.pick % inFlight.length, 1);
                q.done(k as string);
                break;
              }
              case 'advance':
                clock.advance(o.ms);
                for (const [k, at] of delayed)
                  if (at <= clock.now()) {
                    delayed.delete(k);
                    owed.add(k);
                  }
                break;
            }
            assert.ok(q.length <= 4, 'dedupe: never more ready entries than keys');
          }
          // Drain: finish in-flight work, let every timer fire, process until idle.
          for (const k of inFlight.splice(0)) q.done(k);
          for (let guard = 0; guard < 100; guard++) {
            while (q.length > 0) {
              const k = await q.get();
              assert.ok(k !== undefined);
              owed.delete(k);
              delayed.delete(k);
              q.done(k);
            }
            const next = clock.nextAt();
            if (next === undefined) break;
            clock.advance(next - clock.now());
          }
          assert.deepEqual([...owed], [], 'every added key was processed');
          assert.deepEqual([...delayed.keys()], [], 'every delayed key was processed');
          assert.equal(q.processing, 0);
          q.shutdown();
        },
      ),
      { numRuns: 300 },
    );
  });

  it('with concurrent async workers, a key is never processed twice at once', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(keyArb, fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 4 }),
        async (adds, workers) => {
          const q = new WorkQueue<string>({ clock: new FakeClock() });
          const active = new Set<string>();
          const processed = new Map<string, number>();
          const loops = Array.from({ length: workers }, async () => {
            for (;;) {
              const k = await q.get();
              if (k === undefined) return;
              assert.ok(!active.has(k), `concurrent ${k}`);
              active.add(k);
              await flush(1 + (k.charCodeAt(0) % 3));
              active.delete(k);
              processed.set(k, (processed.get(k) ?? 0) + 1);
              q.done(k);
            }
          });
          for (const [k, pause] of adds) {
            q.add(k);
            await flush(pause);
          }
          while (q.length > 0 || q.processing > 0) await flush(1);
          q.shutdown();
          await Promise.all(loops);
          for (const [k] of adds) assert.ok((processed.get(k) ?? 0) >= 1, `${k} never processed`);
        },
      ),
      { numRuns: 50 },
    );
  });

  it('delayed keys become ready exactly at their earliest requested time, under one timer', () => {
    const keys = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h');
    const op = fc.oneof(
      fc.record({ op: fc.constant('addAfter' as const), key: keys, ms: fc.integer({ min: 1, max: 5000 }) }),
      fc.record({ op: fc.constant('add' as const), key: keys }),
      fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 2000 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const clock = new FakeClock();
        const q = new WorkQueue<string>({ clock });
        // The model: each waiting key's due time, and the keys ready (never handed out here).
        const due = new Map<string, number>();
        const ready = new Set<string>();
        for (const o of ops) {
          if (o.op === 'addAfter') {
            q.addAfter(o.key, o.ms);
            const at = clock.now() + o.ms;
            if (!ready.has(o.key)) due.set(o.key, Math.min(at, due.get(o.key) ?? at));
          } else if (o.op === 'add') {
            q.add(o.key);
            due.delete(o.key);
            ready.add(o.key);
          } else {
            // Step to each due time in turn: a key is ready at its time, never a millisecond before.
            const end = clock.now() + o.ms;
            for (;;) {
              const next = Math.min(...due.values());
              if (!(next <= end)) break;
              clock.advance(next - 1 - clock.now());
              for (const [k, at] of due) assert.equal(q.readyAt(k), at, `${k} still waits`);
              clock.advance(1);
              for (const [k, at] of due)
                if (at === next) {
                  due.delete(k);
                  ready.add(k);
                  assert.equal(q.readyAt(k), undefined, `${k} ready at ${at}`);
                }
            }
            clock.advance(end - clock.now());
          }
          assert.ok(clock.pendingTimers <= 1, 'one timer for all delayed keys');
          assert.equal(clock.pendingTimers === 1, due.size > 0, 'a timer exactly while keys wait');
          assert.equal(q.length, ready.size);
          for (const [k, at] of due) assert.equal(q.readyAt(k), at);
        }
        q.shutdown();
        assert.equal(clock.pendingTimers, 0);
      }),
      { numRuns: 300 },
    );
  });
});
