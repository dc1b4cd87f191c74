// Leader election on a coordination.k8s.io/v1 Lease, following client-go's leaderelection package:
// - a candidate takes the lease only when it is free, or when its record has not changed for
//   leaseDuration as measured on the candidate's OWN clock since it last saw a change (never by
//   comparing renewTime with local time, so clock skew between nodes does not matter);
// - the leader renews every retryPeriod and gives up leadership if it could not renew within
//   renewDeadline (< leaseDuration), so it stops before anyone else can start;
// - every write is a PUT carrying the read resourceVersion, so racing candidates get 409 Conflict;
// - on graceful shutdown the leader releases the lease (empty holder) so a successor starts at once.
import type { Logger } from 'pino';
import { jitterUp } from '../backoff.ts';
import type { Clock, Random } from '../clock.ts';
import { sleep, systemClock, systemRandom } from '../clock.ts';
import { CODES, FerryError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { isK8sApiError } from '../k8s/errors.ts';
import { Leases } from '../k8s/resources.ts';
import type { Lease, LeaseSpec } from '../k8s/types.ts';

export type LeaseClient = Pick<KubeClient, 'get' | 'create' | 'replace'>;

export interface LeaderElectionOptions {
  client: LeaseClient;
  namespace: string;
  /** Lease name (the election ID). */
  name: string;
  /** Unique per candidate, e.g. `<pod name>_<random>`. */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Release the lease when run()'s signal aborts. Default true. */
  releaseOnCancel?: boolean;
  /** Called once leadership is acquired. `signal` aborts when leadership ends for any reason. */
  onStartedLeading: (signal: AbortSignal) => void;
  /** Called once leadership ends (lost, or released on shutdown). */
  onStoppedLeading?: () => void;
  /** Called when a different holder is observed (including ourselves). */
  onNewLeader?: (identity: string) => void;
  clock?: Clock;
  random?: Random;
  logger?: Logger;
}

// client-go's JitterFactor for the acquire loop.
const ACQUIRE_JITTER = 1.2;

/** metav1.MicroTime: RFC 3339 with microseconds. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

function statusOf(err: unknown): number | undefined {
  return isK8sApiError(err) ? err.status : undefined;
}

function sameRecord(a: LeaseSpec, b: LeaseSpec): boolean {
  return (
    a.holderIdentity === b.holderIdentity &&
    a.renewTime === b.renewTime &&
    a.acquireTime === b.acquireTime &&
    a.leaseTransitions === b.leaseTransitions &&
    a.leaseDurationSeconds === b.leaseDurationSeconds
  );
}

export class LeaderElector {
  readonly identity: string;
  readonly #o: LeaderElectionOptions;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #leaseDurationMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  #observed: LeaseSpec | undefined;
  #observedAt = 0;
  /** When the last successful acquire or renew began (this process's clock). */
  #renewedAt = 0;
  /** The last lease object we wrote, kept for its resourceVersion when releasing. */
  #ours: Lease | undefined;
  #leading = false;
  #stateKnown = false;
  #lastLeader: string | undefined;

  constructor(opts: LeaderElectionOptions) {
    this.#o = opts;
    this.identity = opts.identity;
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? systemRandom;
    this.#leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.#renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.#retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    if (this.#leaseDurationMs <= this.#renewDeadlineMs) {
      throw new FerryError(CODES.LEADER_ELECTION, 'leaseDuration must be greater than renewDeadline');
    }
    if (this.#renewDeadlineMs <= ACQUIRE_JITTER * this.#retryPeriodMs) {
      throw new FerryError(CODES.LEADER_ELECTION, 'renewDeadline must be greater than retryPeriod × 1.2');
    }
    if (!opts.identity) throw new FerryError(CODES.LEADER_ELECTION, 'leader election identity is empty');
  }

  isLeader(): boolean {
    return this.#leading;
  }

  /** The holder last observed, if any. */
  leader(): string | undefined {
    return this.#lastLeader;
  }

  /** True once the first attempt has completed (we lead, or we know who does). */
  stateKnown(): boolean {
    return this.#stateKnown;
  }

  /**
   * Campaign until leading, lead until leadership is lost or `signal` aborts, then stop. Resolves
   * `true` if it stopped because leadership was lost, `false` on abort. Never rejects.
   */
  async run(signal: AbortSignal): Promise<boolean> {
    while (!signal.aborted && !(await this.#tryAcquireOrRenew())) {
      await sleep(this.#clock, jitterUp(this.#retryPeriodMs, ACQUIRE_JITTER, this.#random), signal);
    }
    if (signal.aborted) return false;

    this.#leading = true;
    this.#o.logger?.info({ lease: this.#o.name, identity: this.identity }, 'acquired leadership');
    const leading = new AbortController();
    try {
      this.#o.onStartedLeading(leading.signal);
    } catch (err) {
      this.#o.logger?.error({ err }, 'onStartedLeading threw');
    }

    // The watchdog ends leadership on this process's own clock once the last renewal is older than
    // a renewal attempt may take, synchronously from a timer: a process that was frozen (SIGSTOP, a
    // VM pause) while a successor took over stops its reconciles in the first turn of the event loop
    // after it wakes, before they send another write, instead of finishing a renewal attempt first.
    // It counts from when the last successful attempt began: the record could not be older.
    const expired = new AbortController();
    const arm = () =>
      this.#clock.setTimeout(
        () => expired.abort(),
        this.#renewedAt + this.#retryPeriodMs + this.#renewDeadlineMs - this.#clock.now(),
      );
    let watchdog = arm();
    const expire = () => {
      this.#leading = false;
      leading.abort(new FerryError(CODES.LEADER_ELECTION, 'leadership lost'));
    };
    expired.signal.addEventListener('abort', expire, { once: true });
    const running = AbortSignal.any([signal, expired.signal]);
    while (!running.aborted) {
      // Renew every retryPeriod counted from when the last successful renewal began, as the
      // watchdog counts: after a renewal that hung for seconds (the API server waiting on etcd) the
      // next one starts at once, so a short outage right after it does not end leadership.
      await sleep(
        this.#clock,
        Math.max(0, this.#renewedAt + this.#retryPeriodMs - this.#clock.now()),
        running,
      );
      if (running.aborted) break;
      if (!(await this.#renew(running))) break;
      watchdog.cancel();
      watchdog = arm();
    }
    watchdog.cancel();
    const lost = !signal.aborted;

    this.#leading = false;
    leading.abort(
      new FerryError(CODES.LEADER_ELECTION, lost ? 'leadership lost' : 'leader election stopped'),
    );
    if (lost) this.#o.logger?.error({ lease: this.#o.name }, 'failed to renew the lease; leadership lost');
    else if (this.#o.releaseOnCancel ?? true) await this.#release();
    try {
      this.#o.onStoppedLeading?.();
    } catch (err) {
      this.#o.logger?.error({ err }, 'onStoppedLeading threw');
    }
    return lost;
  }

  /** Retry every retryPeriod until a renewal succeeds or renewDeadline passes. A request still
   * hanging at the deadline does not count, whatever it returns later. */
  async #renew(signal: AbortSignal): Promise<boolean> {
    const deadline = this.#clock.now() + this.#renewDeadlineMs;
    for (;;) {
      const left = deadline - this.#clock.now();
      if (left <= 0 || signal.aborted) return false;
      const ok = await this.#withTimeout(this.#tryAcquireOrRenew(), left);
      if (ok) return true;
      // Someone else holds the lease now: retrying until the deadline would only let this process
      // go on reconciling beside the new leader.
      if (this.#heldByOther()) return false;
      const wait = Math.min(this.#retryPeriodMs, deadline - this.#clock.now());
      if (wait <= 0) return false;
      await sleep(this.#clock, wait, signal);
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { client, namespace, name } = this.#o;
    const now = this.#clock.now();
    const mine: LeaseSpec = {
      holderIdentity: this.identity,
      leaseDurationSeconds: Math.ceil(this.#leaseDurationMs / 1000),
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: 0,
    };
    let lease: Lease;
    try {
      lease = await client.get<Lease>(Leases, name, namespace);
    } catch (err) {
      if (statusOf(err) !== 404) return this.#failed(err, 'get');
      try {
        const created = await client.create<Lease>(Leases, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: mine,
        });
        return this.#wrote(created, mine, now);
      } catch (createErr) {
        return this.#failed(createErr, 'create');
      }
    }

    const current = lease.spec ?? {};
    if (!this.#observed || !sameRecord(this.#observed, current)) {
      this.#observed = current;
      // When the answer came, not when the request left: a read held up for seconds (an API
      // server waiting on etcd) must not make a record look older than it is, or this candidate
      // would take over while the holder still renews within its own deadline.
      this.#observedAt = this.#clock.now();
    }
    const holder = current.holderIdentity ?? '';
    this.#noteLeader(holder);
    const durationMs = (current.leaseDurationSeconds ?? mine.leaseDurationSeconds ?? 0) * 1000;
    if (holder !== '' && holder !== this.identity && this.#observedAt + durationMs > now) {
      return false; // held by someone else and not expired
    }
    if (holder === this.identity) {
      mine.acquireTime = current.acquireTime ?? microTime(now);
      mine.leaseTransitions = current.leaseTransitions ?? 0;
    } else {
      mine.leaseTransitions = (current.leaseTransitions ?? 0) + 1;
    }
    try {
      const updated = await client.replace<Lease>(Leases, { ...lease, spec: mine });
      return this.#wrote(updated, mine, now);
    } catch (err) {
      return this.#failed(err, 'update');
    }
  }

  /** The last record read names another holder whose lease has not expired. */
  #heldByOther(): boolean {
    const o = this.#observed;
    const holder = o?.holderIdentity ?? '';
    return (
      holder !== '' &&
      holder !== this.identity &&
      this.#observedAt + (o?.leaseDurationSeconds ?? 0) * 1000 > this.#clock.now()
    );
  }

  #wrote(lease: Lease, spec: LeaseSpec, now: number): boolean {
    this.#renewedAt = now;
    this.#ours = lease;
    this.#observed = lease.spec ?? spec;
    this.#observedAt = now;
    this.#noteLeader(this.identity);
    return true;
  }

  #failed(err: unknown, op: string): boolean {
    // 409 is the normal outcome of a race with another candidate.
    const level = statusOf(err) === 409 ? 'debug' : 'warn';
    this.#o.logger?.[level]({ err, op, lease: this.#o.name }, 'lease operation failed');
    return false;
  }

  #noteLeader(holder: string): void {
    this.#stateKnown = true;
    if (holder === '' || holder === this.#lastLeader) return;
    this.#lastLeader = holder;
    try {
      this.#o.onNewLeader?.(holder);
    } catch (err) {
      this.#o.logger?.error({ err }, 'onNewLeader threw');
    }
  }

  /** Hand the lease back so a successor need not wait out leaseDuration (client-go release()). */
  async #release(): Promise<void> {
    const ours = this.#ours;
    if (!ours) return;
    const now = microTime(this.#clock.now());
    const spec: LeaseSpec = {
      holderIdentity: '',
      leaseDurationSeconds: 1,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: ours.spec?.leaseTransitions ?? 0,
    };
    try {
      await this.#o.client.replace<Lease>(Leases, { ...ours, spec });
      this.#o.logger?.info({ lease: this.#o.name }, 'released leadership');
    } catch (err) {
      this.#failed(err, 'release');
    }
  }

  #withTimeout(p: Promise<boolean>, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = this.#clock.setTimeout(() => resolve(false), ms);
      void p.then((ok) => {
        timer.cancel();
        resolve(ok);
      });
    });
  }
}
