// Normal Events off the reconcile path, as client-go's broadcaster keeps them: a reconcile hands its
// Normal Event to a bounded queue and goes on, and a few writers record the queued Events in order
// through the EventRecorder (which folds repeats). Without it every first sync waited for its
// SecretSynced create: at N = 5,000 one API round trip of four per resource, at the API server's
// slowest (issue 12). Beyond the bound an Event is dropped, counted and logged once per burst rather
// than held or waited for (client-go: a queue of 1,000 that drops when full); Events are for people,
// the status is the record. Warnings are written at once and awaited: they are rare (a failure), and
// their refusal is how a reconcile learns that its namespace is being deleted (outcome.ts).
import type { Reason } from '../consts/reasons.ts';
import type { EventRecorder } from './events.ts';

type Recorder = Pick<EventRecorder, 'normal' | 'warning' | 'refusedAsTerminating'>;
type Involved = Parameters<Recorder['normal']>[0];

export interface EventQueueOptions {
  /** Events waiting to be written; beyond it new ones are dropped. Default 1,000, as client-go. */
  capacity?: number;
  /** Events written at once. Default 4: a burst drains in seconds without crowding out the syncs. */
  writers?: number;
  /** Called when the queue runs empty after dropping Events, with how many. */
  onDropped?: (count: number) => void;
}

export class EventQueue implements Recorder {
  readonly #recorder: Recorder;
  readonly #capacity: number;
  readonly #writers: number;
  readonly #onDropped: ((count: number) => void) | undefined;
  readonly #queue: (() => Promise<void>)[] = [];
  readonly #running = new Set<Promise<void>>();
  #dropped = 0;
  #closed = false;

  constructor(recorder: Recorder, opts: EventQueueOptions = {}) {
    this.#recorder = recorder;
    this.#capacity = opts.capacity ?? 1000;
    this.#writers = opts.writers ?? 4;
    this.#onDropped = opts.onDropped;
  }

  normal(obj: Involved, reason: Reason, message: string): Promise<void> {
    this.#push(() => this.#recorder.normal(obj, reason, message));
    return Promise.resolve();
  }

  warning(obj: Involved, reason: Reason, message: string): Promise<void> {
    return this.#recorder.warning(obj, reason, message);
  }

  refusedAsTerminating(obj: Involved): boolean {
    return this.#recorder.refusedAsTerminating(obj);
  }

  /** Resolves once every Event queued so far has been written (or failed: the recorder never throws). */
  async flush(): Promise<void> {
    while (this.#running.size > 0) await Promise.all(this.#running);
  }

  /** Stops taking Events, drops the queued ones and waits for those being written (shutdown). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#dropped += this.#queue.length;
    this.#queue.length = 0;
    await this.flush();
  }

  #push(write: () => Promise<void>): void {
    if (this.#closed || this.#queue.length >= this.#capacity) {
      this.#dropped++;
      return;
    }
    this.#queue.push(write);
    if (this.#running.size < this.#writers) {
      const w = this.#drain().finally(() => this.#running.delete(w));
      this.#running.add(w);
    }
  }

  async #drain(): Promise<void> {
    for (let next = this.#queue.shift(); next; next = this.#queue.shift()) {
      await next().catch(() => {}); // EventRecorder reports its own failures
    }
    if (this.#dropped > 0 && this.#running.size === 1) {
      const count = this.#dropped;
      this.#dropped = 0;
      this.#onDropped?.(count);
    }
  }
}
