// The Manager owns the KubeClient and the shared informers, starts controllers once every cache has
// synced (and, with leader election, once this replica leads), and serves /healthz, /readyz and
// /metrics. Informers run on every replica so a new leader starts with warm caches.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Clock, Random } from '../clock.ts';
import { sleep, systemClock, systemRandom } from '../clock.ts';
import { CODES, FerryError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import type { ResourceType } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import type { ControllerOptions } from './controller.ts';
import { Controller } from './controller.ts';
import type { InformerHealth, InformerSource } from './informer.ts';
import { Informer } from './informer.ts';
import type { LeaderElectionOptions } from './leader.ts';
import { LeaderElector } from './leader.ts';
import { createStore } from './store.ts';
import { TaskQueue } from './tasks.ts';
import type { WatcherEvent } from './watcher.ts';
import { watcher } from './watcher.ts';

export interface InformerSpec<T extends KubeObject> {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Watch PartialObjectMetadata only (Secrets you only need to react to). */
  metadataOnly?: boolean;
  indexes?: Record<string, (obj: T) => string[]>;
  transform?: (obj: T) => T;
}

/** Builds the watch stream for an informer; the default is src/runtime/watcher.ts. Tests inject fakes. */
export type WatchFactory = <T extends KubeObject>(
  rt: ResourceType,
  spec: InformerSpec<T> & { timeoutSeconds: number; signal: AbortSignal; onError: (err: unknown) => void },
) => AsyncIterable<WatcherEvent<T>>;

export interface ManagerOptions {
  client: KubeClient;
  logger: Logger;
  metrics?: MetricsRegistry;
  /** `host:port` or `:port` for /healthz and /readyz; null disables. Default ':8081'. */
  healthProbeAddress?: string | null;
  /** `host:port` or `:port` for /metrics; null disables; equal to the health address shares one server.
   * Default ':8080'. */
  metricsAddress?: string | null;
  leaderElection?: Omit<
    LeaderElectionOptions,
    'client' | 'onStartedLeading' | 'onStoppedLeading' | 'clock' | 'random' | 'logger'
  >;
  /** Fail start() if caches have not synced within this. Default 2 min (controller-runtime). */
  cacheSyncTimeoutMs?: number;
  /** Server-side watch timeout; the watcher's client idle timeout sits above it. Default 290 s. */
  watchTimeoutSeconds?: number;
  /** Liveness fails after a watcher has been failing for stallFactor × its timeout. Default 3. */
  stallFactor?: number;
  /** Parallel workers of the task queue (TaskQueueOptions.concurrency). Default 4. */
  taskConcurrency?: number;
  clock?: Clock;
  random?: Random;
  watch?: WatchFactory;
}

export interface HealthReport {
  live: boolean;
  ready: boolean;
  informers: Record<string, InformerHealth>;
  leader: { enabled: boolean; known: boolean; leading: boolean; holder?: string };
}

/** `host:port`, `[v6]:port` or `:port` (host undefined: every interface). */
export function parseListenAddress(addr: string): { host: string | undefined; port: number } {
  const i = addr.lastIndexOf(':');
  const host = i > 0 ? addr.slice(0, i).replace(/^\[(.*)\]$/, '$1') : undefined;
  const port = Number(addr.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new FerryError(CODES.INVALID_CONFIG, `invalid listen address ${JSON.stringify(addr)}`);
  }
  return { host, port };
}

export class Manager {
  readonly client: KubeClient;
  readonly metrics: MetricsRegistry;
  /** Background work of this process (runtime/tasks.ts), run from start() to shutdown. */
  readonly tasks: TaskQueue;
  readonly #o: ManagerOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #informers = new Map<string, Informer<KubeObject>>();
  readonly #controllers: Controller[] = [];
  readonly #leaderRunnables: { name: string; run: (signal: AbortSignal) => Promise<void> }[] = [];
  readonly #warmUps: { name: string; run: (signal: AbortSignal) => Promise<void>; timeoutMs: number }[] = [];
  readonly #servers: Server[] = [];
  readonly #addresses: Record<'health' | 'metrics', string | undefined> = {
    health: undefined,
    metrics: undefined,
  };
  #elector: LeaderElector | undefined;

  constructor(opts: ManagerOptions) {
    this.#o = opts;
    this.client = opts.client;
    this.metrics = opts.metrics ?? new MetricsRegistry();
    this.#log = opts.logger;
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? systemRandom;
    this.tasks = new TaskQueue({
      name: 'background',
      logger: this.#log.child({ component: 'tasks' }),
      clock: this.#clock,
      random: this.#random,
      metrics: this.metrics,
      ...(opts.taskConcurrency ? { concurrency: opts.taskConcurrency } : {}),
    });
  }

  /** A shared informer: one watch per (resource, namespace, selectors, metadataOnly). Indexes and
   * transform are taken from the first caller. */
  informer<T extends KubeObject>(rt: ResourceType, spec: InformerSpec<T> = {}): Informer<T> {
    const id = JSON.stringify([
      rt.group,
      rt.version,
      rt.plural,
      spec.namespace ?? '',
      spec.labelSelector ?? '',
      spec.fieldSelector ?? '',
      spec.metadataOnly ?? false,
    ]);
    const existing = this.#informers.get(id);
    if (existing) return existing as unknown as Informer<T>;
    const timeoutSeconds = this.#o.watchTimeoutSeconds ?? 290;
    const { store, writer } = createStore<T>({
      ...(spec.indexes ? { indexes: spec.indexes } : {}),
      ...(spec.transform ? { transform: spec.transform } : {}),
    });
    const watch = this.#o.watch ?? this.#defaultWatch;
    const source: InformerSource<T> = (signal, onError) =>
      watch<T>(rt, { ...spec, timeoutSeconds, signal, onError });
    const informer = new Informer<T>({
      rt,
      store,
      writer,
      source,
      clock: this.#clock,
      stallAfterMs: (this.#o.stallFactor ?? 3) * timeoutSeconds * 1000,
    });
    this.#informers.set(id, informer as unknown as Informer<KubeObject>);
    return informer;
  }

  /** Create a controller wired to this manager's metrics, clock and logger, and register it. */
  controller(
    opts: Omit<ControllerOptions, 'metrics' | 'clock' | 'random' | 'logger'> & { logger?: Logger },
  ): Controller {
    const c = new Controller({
      ...opts,
      logger: opts.logger ?? this.#log,
      metrics: this.metrics,
      clock: this.#clock,
      random: this.#random,
    });
    this.#controllers.push(c);
    return c;
  }

  /**
   * Work that runs only where the controllers run (while leading, with leader election) and stops
   * with them, like controller-runtime's leader-election runnables: e.g. a listener that feeds a
   * controller's queue, which a follower must not accept.
   */
  runWhileLeading(name: string, run: (signal: AbortSignal) => Promise<void>): void {
    this.#leaderRunnables.push({ name, run });
  }

  /**
   * Work that runs each time the controllers are about to start (on taking leadership), before them:
   * they wait for it up to `timeoutMs`, after which it goes on beside them. For work the first
   * reconciles need and that must not queue behind their burst of API requests, e.g. restoring
   * persisted Vault sessions whose leases are due.
   */
  beforeControllers(name: string, run: (signal: AbortSignal) => Promise<void>, timeoutMs: number): void {
    this.#warmUps.push({ name, run, timeoutMs });
  }

  async #warmUp(signal: AbortSignal): Promise<void> {
    await Promise.all(
      this.#warmUps.map(async (w) => {
        const started = this.#clock.now();
        let done = false;
        const run = w.run(signal).then(
          () => {
            done = true;
          },
          (err: unknown) => this.#log.warn({ err, warmUp: w.name }, 'warm-up failed'),
        );
        const waited = new AbortController();
        await Promise.race([run, sleep(this.#clock, w.timeoutMs, AbortSignal.any([signal, waited.signal]))]);
        waited.abort();
        const ms = this.#clock.now() - started;
        if (done) this.#log.info({ warmUp: w.name, ms }, 'warm-up done');
        else this.#log.warn({ warmUp: w.name, ms }, 'warm-up still running; starting the controllers');
      }),
    );
  }

  /** Bound addresses once start() has opened the servers (useful with port 0). */
  get addresses(): Readonly<Record<'health' | 'metrics', string | undefined>> {
    return this.#addresses;
  }

  health(): HealthReport {
    const informers: Record<string, InformerHealth> = {};
    let live = true;
    let synced = true;
    for (const [id, inf] of this.#informers) {
      const h = inf.health();
      informers[`${inf.rt.plural}.${inf.rt.group || 'core'} ${id}`] = h;
      if (h.stalled) live = false;
      if (!h.synced) synced = false;
    }
    const el = this.#elector;
    const leader: HealthReport['leader'] = {
      enabled: this.#o.leaderElection !== undefined,
      known: el?.stateKnown() ?? false,
      leading: el?.isLeader() ?? false,
      ...(el?.leader() !== undefined ? { holder: el.leader() as string } : {}),
    };
    const ready = synced && (!leader.enabled || leader.known);
    return { live, ready, informers, leader };
  }

  /**
   * Run until `signal` aborts: serve probes, start informers, wait for sync, (campaign and) run the
   * controllers. On abort: controllers drain, then the lease is released, then informers and servers
   * stop. Rejects if caches do not sync in time or leadership is lost, so the process exits and
   * restarts clean, as controller-runtime does.
   */
  async start(signal: AbortSignal): Promise<void> {
    await this.#listen();
    const informersStop = new AbortController();
    const informerRuns = [...this.#informers.values()].map((i) => i.run(informersStop.signal));
    // Background tasks run whether or not this replica leads, and stop after the controllers, so
    // work a reconcile handed over (a restart it waits for) still happens during the drain.
    const tasksStop = new AbortController();
    const tasksRun = this.tasks.run(tasksStop.signal);
    try {
      await this.#waitForSync(signal);
      if (signal.aborted) return;
      if (this.#o.leaderElection) await this.#runElected(signal);
      else await this.#runControllers(signal);
    } finally {
      tasksStop.abort();
      await tasksRun;
      informersStop.abort();
      await Promise.all(informerRuns);
      await this.#close();
    }
  }

  /** `abort` (lost leadership) aborts the running reconciles at once; `signal` lets them drain. */
  async #runControllers(signal: AbortSignal, abort?: AbortSignal): Promise<void> {
    await this.#warmUp(signal);
    this.#log.info({ controllers: this.#controllers.map((c) => c.name) }, 'starting controllers');
    await Promise.all([
      ...this.#controllers.map((c) => c.run(signal, abort ? { abort } : {})),
      ...this.#leaderRunnables.map((r) =>
        r.run(signal).catch((err: unknown) => this.#log.error({ err, runnable: r.name }, 'runnable failed')),
      ),
    ]);
    // Without controllers (the CSI driver) the informers and probes still serve until the abort.
    if (this.#controllers.length === 0 && !signal.aborted)
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
  }

  async #runElected(signal: AbortSignal): Promise<void> {
    const le = this.#o.leaderElection;
    if (!le) return;
    // The elector's signal outlives `signal` until the controllers drained: release comes last.
    const electorStop = new AbortController();
    let controllersDone: Promise<void> | undefined;
    const elector = new LeaderElector({
      ...le,
      client: this.client,
      clock: this.#clock,
      random: this.#random,
      logger: this.#log.child({ component: 'leader-election' }),
      onStartedLeading: (leading) => {
        // `leading` aborts before the controllers drained only when leadership is lost (a graceful
        // shutdown releases the lease after them, onAbort below): then nothing may drain.
        controllersDone = this.#runControllers(AbortSignal.any([signal, leading]), leading);
      },
    });
    this.#elector = elector;
    const onAbort = () => {
      void (controllersDone ?? Promise.resolve()).then(() => electorStop.abort());
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    const lost = await elector.run(electorStop.signal);
    signal.removeEventListener('abort', onAbort);
    await controllersDone;
    if (lost) throw new FerryError(CODES.LEADER_ELECTION, 'leader election lost');
  }

  async #waitForSync(signal: AbortSignal): Promise<void> {
    const timeoutMs = this.#o.cacheSyncTimeoutMs ?? 120_000;
    const ac = new AbortController();
    const timer = this.#clock.setTimeout(() => ac.abort(), timeoutMs);
    const both = AbortSignal.any([signal, ac.signal]);
    try {
      await Promise.all([...this.#informers.values()].map((i) => i.store.waitUntilReady(both)));
    } catch (err) {
      if (signal.aborted) return;
      const pending = [...this.#informers.values()].filter((i) => !i.hasSynced()).map((i) => i.rt.plural);
      throw new FerryError(
        CODES.K8S_WATCH,
        `caches did not sync within ${timeoutMs} ms: ${pending.join(', ')}`,
        {
          cause: err,
        },
      );
    } finally {
      timer.cancel();
    }
    this.#log.info({ informers: this.#informers.size }, 'caches synced');
  }

  #defaultWatch: WatchFactory = (rt, spec) => {
    const { indexes: _i, transform: _t, ...opts } = spec;
    return watcher(this.client, rt, { ...opts, clock: this.#clock, random: this.#random });
  };

  async #listen(): Promise<void> {
    const healthAddr = this.#o.healthProbeAddress === undefined ? ':8081' : this.#o.healthProbeAddress;
    const metricsAddr = this.#o.metricsAddress === undefined ? ':8080' : this.#o.metricsAddress;
    const healthRoutes = {
      '/healthz': (res: ServerResponse) => this.#probe(res, 'live'),
      '/readyz': (res: ServerResponse) => this.#probe(res, 'ready'),
    };
    const metricsRoute = async (res: ServerResponse) => {
      const body = await this.metrics.metrics();
      res.writeHead(200, { 'content-type': this.metrics.contentType }).end(body);
    };
    const bind = async (
      addr: string,
      handlers: Record<string, (res: ServerResponse) => Promise<void> | void>,
    ) => {
      const table = new Map(Object.entries(handlers));
      const server = createServer((req: IncomingMessage, res: ServerResponse) => {
        const path = (req.url ?? '/').split('?')[0] ?? '/';
        const h = table.get(path);
        if (!h || (req.method !== 'GET' && req.method !== 'HEAD')) {
          res.writeHead(404).end();
          return;
        }
        Promise.resolve(h(res)).catch((err: unknown) => {
          this.#log.error({ err, path }, 'probe handler failed');
          if (!res.headersSent) res.writeHead(500);
          res.end();
        });
      });
      const { host, port } = parseListenAddress(addr);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      this.#servers.push(server);
      const a = server.address() as AddressInfo;
      return `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    };
    if (healthAddr !== null && healthAddr === metricsAddr) {
      const bound = await bind(healthAddr, { ...healthRoutes, '/metrics': metricsRoute });
      this.#addresses.health = bound;
      this.#addresses.metrics = bound;
      return;
    }
    if (healthAddr !== null) this.#addresses.health = await bind(healthAddr, healthRoutes);
    if (metricsAddr !== null) this.#addresses.metrics = await bind(metricsAddr, { '/metrics': metricsRoute });
  }

  #probe(res: ServerResponse, which: 'live' | 'ready'): void {
    const report = this.health();
    const ok = which === 'live' ? report.live : report.ready;
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(report));
  }

  async #close(): Promise<void> {
    await Promise.all(
      this.#servers.splice(0).map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
  }
}
