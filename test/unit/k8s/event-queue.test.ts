// EventQueue: a reconcile's Normal Event is queued, never waited for; a bounded number are written at
// once, in order; beyond the bound they are dropped and counted once the burst is over; close drops
// the rest. A Warning is written at once and awaited.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { REASONS } from '../../../src/consts/reasons.ts';
import { EventQueue } from '../../../src/k8s/event-queue.ts';

const obj = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'app' } };

/** A recorder whose writes finish only when released. */
function slowRecorder() {
  const written: string[] = [];
  const waiting: (() => void)[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const write = (message: string) =>
    new Promise<void>((resolve) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      waiting.push(() => {
        inFlight--;
        written.push(message);
        resolve();
      });
    });
  return {
    recorder: {
      normal: (_o: unknown, _r: unknown, m: string) => write(m),
      warning: (_o: unknown, _r: unknown, m: string) => write(`warning ${m}`),
      refusedAsTerminating: () => false,
    },
    written,
    release: async () => {
      while (waiting.length > 0) {
        for (const w of waiting.splice(0)) w();
        await new Promise((r) => setImmediate(r));
      }
    },
    maxInFlight: () => maxInFlight,
  };
}

describe('EventQueue', () => {
  it('returns before the Event is written, writes at most `writers` at once, in order', async () => {
    const r = slowRecorder();
    const q = new EventQueue(r.recorder, { writers: 2 });
    for (let i = 0; i < 5; i++) await q.normal(obj, REASONS.SecretSynced, `m${i}`);
    assert.deepEqual(r.written, [], 'nothing written yet, and nobody waited');
    await r.release();
    await q.flush();
    assert.deepEqual(r.written, ['m0', 'm1', 'm2', 'm3', 'm4']);
    assert.equal(r.maxInFlight(), 2);
  });

  it('drops Events beyond its capacity and reports them once the burst is written', async () => {
    const r = slowRecorder();
    const dropped: number[] = [];
    const q = new EventQueue(r.recorder, { writers: 1, capacity: 3, onDropped: (n) => dropped.push(n) });
    // One is taken by the writer at once, three wait, the rest are dropped.
    for (let i = 0; i < 10; i++) await q.normal(obj, REASONS.SecretSynced, `m${i}`);
    await r.release();
    await q.flush();
    assert.deepEqual(r.written, ['m0', 'm1', 'm2', 'm3']);
    assert.deepEqual(dropped, [6]);
  });

  it('close drops what waits, waits for what is being written, and takes no more', async () => {
    const r = slowRecorder();
    const dropped: number[] = [];
    const q = new EventQueue(r.recorder, { writers: 1, onDropped: (n) => dropped.push(n) });
    for (let i = 0; i < 3; i++) await q.normal(obj, REASONS.SecretSynced, `m${i}`);
    const closed = q.close();
    await q.normal(obj, REASONS.SecretSynced, 'late');
    await r.release();
    await closed;
    assert.deepEqual(r.written, ['m0']);
    assert.deepEqual(dropped, [3]);
  });

  it('a failing write does not stop the queue', async () => {
    const written: string[] = [];
    const q = new EventQueue({
      normal: async (_o, _r, m) => {
        if (m === 'bad') throw new Error('boom');
        written.push(m);
      },
      warning: async () => {},
      refusedAsTerminating: () => false,
    });
    await q.normal(obj, REASONS.SecretSynced, 'bad');
    await q.normal(obj, REASONS.SecretSynced, 'good');
    await q.flush();
    assert.deepEqual(written, ['good']);
  });

  it('writes a Warning at once and waits for it; asks the recorder whether the namespace refused Events', async () => {
    const r = slowRecorder();
    const q = new EventQueue({ ...r.recorder, refusedAsTerminating: () => true });
    let done = false;
    const w = q.warning(obj, REASONS.SecretSyncError, 'bad').then(() => {
      done = true;
    });
    await new Promise((res) => setImmediate(res));
    assert.equal(done, false, 'the caller waits for the Warning');
    await r.release();
    await w;
    assert.deepEqual(r.written, ['warning bad']);
    assert.equal(q.refusedAsTerminating(obj), true);
  });
});
