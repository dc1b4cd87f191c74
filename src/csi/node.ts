// The Node service: requests validated (validate.ts), then every piece of work on a volume —
// NodePublishVolume and NodeUnpublishVolume (publish.ts), its upkeep (upkeep.ts) and the revocation
// of what it held (revocations.ts) — runs on the task queue (runtime/tasks.ts) under the volume's
// target path. So two pieces of work on one target never overlap, different targets run
// concurrently up to the queue's bound, retries take the shared backoff, the workqueue metrics count
// it all and shutdown drains it. A gRPC call awaits its own work (TaskRunner.call): a publish
// arriving while the upkeep of its target runs waits for it, up to `maxWaitMs` (then ABORTED, the CSI
// code for "an operation is pending for the volume"; kubelet retries). Upkeep and revocations are
// the key's scheduled task, due at the earliest of what either has to do (plan.ts's upkeepDueAt).
// Volume records are persisted (state.ts, volumes.ts) so a restarted driver resumes all this.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock, Random } from '../clock.ts';
import { systemClock, systemRandom } from '../clock.ts';
import type { CsiMetrics } from '../metrics/csi.ts';
import type { TaskRunner } from '../runtime/tasks.ts';
import type { PodContainers } from './access.ts';
import { CsiError, toCsiError } from './errors.ts';
import type { Mounter } from './mounter.ts';
import type { NodePublishVolumeRequest, NodeUnpublishVolumeRequest } from './proto.ts';
import { Publishing, type PublishingDeps, type PublishSource } from './publish.ts';
import { Revocations } from './revocations.ts';
import { heldOf } from './secrets.ts';
import { StateStore } from './state.ts';
import { Upkeep, type UpkeepAction } from './upkeep.ts';
import { isValidTarget, validatePublish, validateUnpublish } from './validate.ts';
import { Volumes } from './volumes.ts';

export interface NodeServiceOptions {
  nodeId: string;
  audience: string;
  mounter: Mounter;
  publisher: PublishSource;
  /** Where the pods' kubelet-issued tokens are kept for Vault logins (pod-tokens.ts). */
  podTokens?: PublishingDeps['podTokens'];
  /** When set, every target path must lie below this directory (kubelet's pods dir on a node). */
  targetRoot?: string;
  /** A republish with unchanged arguments re-fetches after this long; 0 never does. */
  refreshIntervalMs: number;
  /** Where volume records are kept across driver restarts (a tmpfs); unset keeps them in memory. */
  stateDir?: string;
  /** Where the volumes' tmpfs are staged; default `<stateDir>/volumes` (a temporary directory
   * without a state directory). Root's alone: no pod reaches it. */
  stagingDir?: string;
  /** Most volumes published at once on this node; more is RESOURCE_EXHAUSTED. Default 256. */
  maxVolumes?: number;
  /** Most bytes read back from one volume after a restart (its tmpfs size). Default 8 MiB. */
  maxVolumeBytes?: number;
  /** Longest a gRPC call waits for other work on its target before it is ABORTED. Default 60 s. */
  maxWaitMs?: number;
  log: Logger;
  /** Runs every piece of work, keyed by target path (the Manager's task queue). */
  tasks: TaskRunner;
  clock?: Clock;
  random?: Random;
  metrics?: CsiMetrics;
}

export interface NodeStats {
  publishes: number;
  fetches: number;
  skipped: number;
  renewals: number;
  replacements: number;
  revocations: number;
  resyncs: number;
}

const DEFAULT_MAX_VOLUMES = 256;
const DEFAULT_MAX_VOLUME_BYTES = 8 * 1024 * 1024;
const DEFAULT_MAX_WAIT_MS = 60_000;

export class NodeService {
  readonly #o: NodeServiceOptions;
  readonly #clock: Clock;
  readonly #state: StateStore;
  readonly #volumes: Volumes;
  readonly #revocations: Revocations;
  readonly #upkeep: Upkeep;
  readonly #publishing: Publishing;
  #stopped = false;
  /** resume() is loading what the previous process recorded: nothing runs before all of it is known. */
  #resuming = false;
  readonly stats: NodeStats = {
    publishes: 0,
    fetches: 0,
    skipped: 0,
    renewals: 0,
    replacements: 0,
    revocations: 0,
    resyncs: 0,
  };

  constructor(opts: NodeServiceOptions) {
    this.#o = opts;
    const clock = opts.clock ?? systemClock;
    const random = opts.random ?? systemRandom;
    this.#clock = clock;
    const state = new StateStore(opts.stateDir);
    this.#state = state;
    const log = opts.log;
    const wake = (target: string) => this.#wake(target);
    this.#volumes = new Volumes({
      mounter: opts.mounter,
      state,
      stagingDir:
        opts.stagingDir ?? join(opts.stateDir ?? join(tmpdir(), `ferry-csi-${process.pid}`), 'volumes'),
      maxVolumeBytes: opts.maxVolumeBytes ?? DEFAULT_MAX_VOLUME_BYTES,
      clock,
      log,
    });
    this.#revocations = new Revocations({
      release: (grant, who, held, signal) => opts.publisher.release(grant, who, held, signal),
      state,
      wake,
      clock,
      random,
      log,
      onRevoked: (n) => this.#count('revocations', n),
      onAbandoned: (n) => this.#o.metrics?.upkeep.inc({ action: 'abandoned' }, n),
    });
    this.#upkeep = new Upkeep({
      publisher: opts.publisher,
      volumes: this.#volumes,
      revocations: this.#revocations,
      wake,
      clock,
      random,
      log,
      count: (action, n) => this.#count(action, n),
    });
    this.#publishing = new Publishing({
      publisher: opts.publisher,
      volumes: this.#volumes,
      revocations: this.#revocations,
      published: wake,
      clock,
      refreshIntervalMs: opts.refreshIntervalMs,
      maxVolumes: opts.maxVolumes ?? DEFAULT_MAX_VOLUMES,
      log,
      count: (what) => this.stats[what]++,
      podTokens: opts.podTokens,
    });
    const m = opts.metrics;
    m?.volumes.onCollect(() => m.volumes.set({}, this.#volumes.size));
    m?.pendingRevocations.onCollect(() => m.pendingRevocations.set({}, this.#revocations.pending));
    m?.held.onCollect(() => {
      const all = [...this.#volumes.values()].flatMap((v) => heldOf(v.rec.items));
      for (const kind of ['lease', 'cert'] as const)
        m.held.set({ kind }, all.filter((h) => h.kind === kind).length);
    });
  }

  /** Counts upkeep in the stats and, when metrics are on, in ferry_csi_upkeep_total. */
  #count(action: UpkeepAction, n = 1): void {
    this.stats[action] += n;
    this.#o.metrics?.upkeep.inc({ action }, n);
  }

  get nodeId(): string {
    return this.#o.nodeId;
  }

  /** Runs `fn` as work of `target`, once the work before it on that target is done; ABORTED when
   * that takes longer than maxWaitMs. */
  #onTarget<T>(target: string, fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const waitMs = this.#o.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
    const waiting = new AbortController();
    const timer = this.#clock.setTimeout(
      () =>
        waiting.abort(
          new CsiError(
            'ABORTED',
            `another operation on this target_path is pending after ${waitMs / 1000} s`,
          ),
        ),
      waitMs,
    );
    const bounded = signal ? AbortSignal.any([signal, waiting.signal]) : waiting.signal;
    const run = (s: AbortSignal) => {
      timer.cancel();
      return fn(s);
    };
    return this.#o.tasks.call(target, run, bounded).finally(() => timer.cancel());
  }

  /** Schedules the target's upkeep and revocations at the earliest time either is due. */
  #wake(target: string): void {
    if (this.#stopped || this.#resuming) return;
    const dues = [this.#revocations.dueAt(target), this.#upkeep.dueAt(target)].filter(
      (t): t is number => t !== undefined,
    );
    if (dues.length === 0) return;
    this.#o.tasks.schedule(
      target,
      async (signal) => {
        if (this.#stopped) return;
        await this.#revocations.run(target, signal);
        await this.#upkeep.run(target, signal);
        this.#wake(target);
      },
      Math.min(...dues) - this.#clock.now(),
    );
  }

  async publish(req: NodePublishVolumeRequest, signal?: AbortSignal): Promise<void> {
    const o = this.#o;
    const t0 = performance.now();
    let result = 'ok';
    try {
      const v = validatePublish(req, { audience: o.audience, targetRoot: o.targetRoot });
      if ((await this.#onTarget(v.targetPath, (s) => this.#publishing.publish(v, s), signal)) === 'skipped')
        result = 'skipped';
    } catch (err) {
      result = toCsiError(err).code;
      throw err;
    } finally {
      o.metrics?.publishes.inc({ result });
      o.metrics?.publishDuration.observe({ result }, (performance.now() - t0) / 1000);
    }
  }

  async unpublish(req: NodeUnpublishVolumeRequest, signal?: AbortSignal): Promise<void> {
    const v = validateUnpublish(req, { targetRoot: this.#o.targetRoot });
    await this.#onTarget(v.targetPath, () => this.#publishing.unpublish(v), signal);
  }

  /** A pod on this node changed: a container restart may re-sync its volumes (upkeep.ts). */
  onPodChange(before: PodContainers, after: PodContainers & { metadata: { uid?: string } }): void {
    this.#upkeep.onPodChange(before, after);
  }

  /** A Vault session logged in again: leases are checked against the new token (upkeep.ts). */
  onVaultLogin(): void {
    this.#upkeep.onVaultLogin();
  }

  /**
   * Picks up the volumes and pending revocations a previous driver process recorded. A write a crash
   * interrupted is settled (publish.ts) and finished (atomic-writer.ts). A volume whose target is
   * gone is released. The others are checked at once: their leases belong to the previous
   * process's Vault token, which Vault revokes them with and no one renews now, so they are replaced.
   * Certificates do not depend on a token and keep their schedule. The next republish fetches again
   * (fetchedAt 0) unless the refresh interval is 0, so KV secrets are re-read then.
   */
  async resume(): Promise<{ volumes: number; orphans: number }> {
    const o = this.#o;
    this.#resuming = true;
    let resumed: { volumes: number; orphans: number };
    try {
      const { volumes, orphans } = await this.#state.load(
        (file, err) => o.log.warn({ file, err }, 'unreadable or tampered CSI state record dropped'),
        (path) => isValidTarget(path, o.targetRoot),
      );
      // The recorded revocations first: forgetting a volume below records more, and every save
      // writes all that is known, so they must be known by then.
      this.#revocations.resume(orphans);
      for (const recorded of volumes) {
        const rec = await this.#publishing.settle(recorded);
        const files = await this.#volumes.readBack(rec);
        if (files) this.#volumes.set({ rec: { ...rec, fetchedAt: 0 }, files, attempt: 0, recheck: true });
        else await this.#publishing.forget(rec);
      }
      await this.#volumes.removeLeftovers();
      resumed = { volumes: this.#volumes.size, orphans: this.#revocations.records };
    } finally {
      this.#resuming = false;
    }
    for (const v of this.#volumes.values()) this.#wake(v.rec.targetPath);
    this.#revocations.start();
    return resumed;
  }

  /** Stops the upkeep: pending tasks end without work (the records stay for the next process). */
  stop(): void {
    this.#stopped = true;
  }

  /** After stop: releases what the mounter prepared for the staging directory (volumes stay). */
  async release(): Promise<void> {
    await this.#volumes.release();
  }
}
