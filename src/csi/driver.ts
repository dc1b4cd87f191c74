// Assembles the CSI node driver: shared informers for CSISecrets and what they reference, the
// Vault session cache, the publisher, the Node service and the gRPC endpoint, plus /healthz,
// /readyz (the DaemonSet's probes) and /metrics. No controller runs here: the driver only answers
// kubelet and keeps what it published fresh.
import type { Logger } from 'pino';
import { CSISecretsResource, SecretTransformations } from '../api/resources.ts';
import type { CSISecrets } from '../api/v1beta1/csisecrets.ts';
import type { SecretTransformation } from '../api/v1beta1/secrettransformation.ts';
import { type Clock, systemClock } from '../clock.ts';
import { createVaultAccess } from '../delivery/setup.ts';
import { errorMessage } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { EventRecorder } from '../k8s/events.ts';
import { Pods } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';
import { csiMetrics } from '../metrics/csi.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import type { Informer } from '../runtime/informer.ts';
import { Manager } from '../runtime/manager.ts';
import { DEFAULT_CACHE_SIZE, type VaultClientCache } from '../vault/cache.ts';
import type { TokenReviewStatus } from './access.ts';
import type { Mounter } from './mounter.ts';
import { DRIVER_VERSION } from './names.ts';
import { NodeService } from './node.ts';
import { PodTokens } from './pod-tokens.ts';
import { type EventSink, type Pod, Publisher } from './publisher.ts';
import { KubeletRegistration } from './registration.ts';
import { CsiServer } from './server.ts';

const TOKEN_REQUEST_FIX =
  'the driver logs in with the pod’s own kubelet-issued token (kubernetes and jwt methods without secretRef); for VSO’s login as the VaultAuth’s ServiceAccount, and for aws IRSA and gcp, set the chart value csi.driver.tokenRequestLogin=true (docs/security.md)';
const SECRET_READS_FIX =
  'set the chart value csi.driver.readSecrets=true, which lets the driver read Secrets in every namespace (docs/security.md)';

export interface CsiDriverConfig {
  client: KubeClient;
  logger: Logger;
  driverName: string;
  /** Audience of the pod token kubelet passes (CSIDriver tokenRequests); defaults to driverName. */
  audience?: string;
  nodeId: string;
  operatorNamespace: string;
  mounter: Mounter;
  targetRoot?: string;
  /** Where volume records survive a driver restart (a tmpfs); unset keeps them in memory only. The
   * volumes are staged in its `volumes/` subdirectory. */
  stateDir?: string;
  /** Most volumes published at once on this node (NodeServiceOptions.maxVolumes). */
  maxVolumes?: number;
  /** Most bytes read back from one volume after a restart: its tmpfs size. */
  maxVolumeBytes?: number;
  /** How long published files are served before a republish fetches them again; 0 never refetches
   * on republish (plan.ts planPublish). Default 120 s, as the CLI's --refresh-interval. */
  refreshIntervalMs?: number;
  /** VSO's global options; defaults as VSO's (exclude-raw off, allow-default-globals on). */
  globalExcludeRaw?: boolean;
  allowDefaultGlobals?: boolean;
  /** The process environment, for the AWS default credential chain (aws auth without secretRef or
   * irsaServiceAccount); unset, that chain is refused. */
  env?: Record<string, string | undefined>;
  /** VSO's login for the kubernetes and jwt methods: a TokenRequest for the VaultAuth's
   * ServiceAccount (needs serviceaccounts/token create and serviceaccounts get), instead of the pod's
   * own kubelet-issued token. Also what aws IRSA and gcp logins need. Default off. */
  tokenRequestLogin?: boolean;
  /** Reads Secrets VaultAuths and VaultConnections name (credential and CA Secrets; needs secrets
   * get in every namespace). Default off. */
  readSecrets?: boolean;
  /** Watches this node's pods for container restarts (syncConfig.containerState re-sync; needs pods
   * list and watch in every namespace, which RBAC cannot narrow to the node). Default on. */
  watchPods?: boolean;
  /** Vault client cache bound; default 10000, as the operator's. */
  clientCacheSize?: number;
  /** Sessions one namespace's CSISecrets may hold in it; default a tenth of the bound, as the operator's. */
  clientCacheNamespaceQuota?: number;
  /** host:port for /healthz, /readyz and /metrics (one server); null disables. */
  healthAddress?: string | null;
  /** Registers with kubelet itself (the node-driver-registrar's job) when set. */
  registration?: { kubeletEndpoint: string; registrationDir: string };
  clock?: Clock;
  /** Overrides for tests. */
  events?: EventSink;
  reviewToken?: (token: string, audience: string, signal?: AbortSignal) => Promise<TokenReviewStatus>;
}

export class CsiDriver {
  readonly node: NodeService;
  /** ferry_csi_* families, served on /metrics next to the health endpoints. */
  readonly metrics = new MetricsRegistry();
  readonly vaultClients: VaultClientCache;
  readonly #cfg: CsiDriverConfig;
  readonly #manager: Manager;
  readonly #informers: Informer<KubeObject>[];
  readonly #server: CsiServer;
  readonly #registration: KubeletRegistration | undefined;
  readonly #stop = new AbortController();
  /** The Manager's run: informers, /healthz, /readyz and /metrics; rejects if caches never sync. */
  #run: Promise<void> = Promise.resolve();

  constructor(cfg: CsiDriverConfig) {
    this.#cfg = cfg;
    const clock = cfg.clock ?? systemClock;
    const log = cfg.logger;
    const audience = cfg.audience ?? cfg.driverName;
    // A Manager without controllers or leader election: it runs the informers and serves the probes
    // and metrics on one address.
    const health = cfg.healthAddress ?? null;
    const m = new Manager({
      client: cfg.client,
      logger: log,
      clock,
      metrics: this.metrics,
      healthProbeAddress: health,
      metricsAddress: health,
      // The node service's work runs on the task queue, keyed by target path: this many volumes
      // published, unpublished or kept fresh at once.
      taskConcurrency: 16,
    });
    this.#manager = m;
    const podTokens = new PodTokens({
      now: () => clock.now(),
      maxTargets: 2 * (cfg.maxVolumes ?? 256),
      driverAudience: audience,
    });
    const access = createVaultAccess(m, {
      client: cfg.client,
      log,
      clock,
      operatorNamespace: cfg.operatorNamespace,
      allowDefaultGlobals: cfg.allowDefaultGlobals ?? true,
      clientCacheSize: cfg.clientCacheSize ?? DEFAULT_CACHE_SIZE,
      ...(cfg.clientCacheNamespaceQuota ? { clientCacheNamespaceQuota: cfg.clientCacheNamespaceQuota } : {}),
      ...(cfg.env ? { env: cfg.env } : {}),
      ...(cfg.tokenRequestLogin ? {} : { podTokens }),
      withheld: {
        ...(cfg.tokenRequestLogin ? {} : { tokenRequests: TOKEN_REQUEST_FIX }),
        ...(cfg.readSecrets ? {} : { secretReads: SECRET_READS_FIX }),
      },
      onSessionEvent: (ev) => {
        if (ev.type === 'login' && ev.reason !== 'initial') this.node.onVaultLogin();
      },
    });
    const { auths, authGlobals, connections, resolver: vault } = access;
    this.vaultClients = access.cache;
    const csiSecrets = m.informer<CSISecrets>(CSISecretsResource);
    const transformations = m.informer<SecretTransformation>(SecretTransformations);
    // The pods of this node only: container restarts trigger a re-sync (syncConfig.containerState).
    const pods =
      cfg.watchPods === false
        ? undefined
        : m.informer<Pod>(Pods, { fieldSelector: `spec.nodeName=${cfg.nodeId}` });
    this.#informers = [
      csiSecrets,
      auths,
      authGlobals,
      connections,
      transformations,
      ...(pods ? [pods] : []),
    ] as unknown as Informer<KubeObject>[];
    pods?.addHandler((ev) => {
      if (ev.type === 'update') this.node.onPodChange(ev.old, ev.obj);
    });
    const events =
      cfg.events ??
      new EventRecorder(cfg.client, {
        component: 'ferry-csi',
        instance: cfg.nodeId,
        onError: (err) => log.warn({ err }, 'could not record event'),
      });
    const publisher = new Publisher({
      client: cfg.client,
      csiSecrets: csiSecrets.store,
      transformations: transformations.store,
      vault,
      events,
      audience,
      nodeId: cfg.nodeId,
      globalExcludeRaw: cfg.globalExcludeRaw ?? false,
      log,
      clock,
      whenSynced: (signal) => this.waitForSync(signal),
      ...(cfg.reviewToken ? { reviewToken: cfg.reviewToken } : {}),
    });
    this.node = new NodeService({
      nodeId: cfg.nodeId,
      audience,
      mounter: cfg.mounter,
      publisher,
      podTokens,
      ...(cfg.targetRoot ? { targetRoot: cfg.targetRoot } : {}),
      ...(cfg.stateDir ? { stateDir: cfg.stateDir } : {}),
      ...(cfg.maxVolumes ? { maxVolumes: cfg.maxVolumes } : {}),
      ...(cfg.maxVolumeBytes ? { maxVolumeBytes: cfg.maxVolumeBytes } : {}),
      refreshIntervalMs: cfg.refreshIntervalMs ?? 120_000,
      log,
      tasks: m.tasks,
      clock,
      metrics: csiMetrics(this.metrics),
    });
    this.#server = new CsiServer({
      driverName: cfg.driverName,
      version: DRIVER_VERSION,
      node: this.node,
      ready: () => this.ready(),
      log,
    });
    this.#registration =
      cfg.registration && new KubeletRegistration({ driverName: cfg.driverName, log, ...cfg.registration });
  }

  ready(): boolean {
    return this.#manager.health().ready;
  }

  /** Settles when the driver's run ends; rejects when it fails (caches never synced, a port taken). */
  get done(): Promise<void> {
    return this.#run;
  }

  /** Starts the informers, resumes the volumes a previous process recorded, and opens the endpoint;
   * resolves once the socket listens (Probe reports cache readiness; a publish before sync falls
   * back to reading the CSISecrets from the API). */
  async start(endpoint: string): Promise<string> {
    this.#run = this.#manager.start(this.#stop.signal);
    this.#run.catch((err: unknown) =>
      this.#cfg.logger.error({ err: errorMessage(err) }, 'csi driver stopped'),
    );
    const resumed = await this.node.resume();
    if (resumed.volumes + resumed.orphans > 0) this.#cfg.logger.info(resumed, 'resumed recorded volumes');
    const path = await this.#server.listen(endpoint);
    // Only once the endpoint answers: kubelet calls it as soon as the registration is accepted.
    await this.#registration?.listen();
    return path;
  }

  async waitForSync(signal?: AbortSignal): Promise<void> {
    const s = signal ? AbortSignal.any([signal, this.#stop.signal]) : this.#stop.signal;
    await Promise.all(this.#informers.map((i) => i.store.waitUntilReady(s)));
  }

  async stop(): Promise<void> {
    await this.#registration?.close();
    await this.#server.close();
    this.node.stop();
    await this.node
      .release()
      .catch((err: unknown) =>
        this.#cfg.logger.warn({ err: errorMessage(err) }, 'could not release the staging scratch'),
      );
    this.#stop.abort();
    await this.#run.catch(() => {});
    await this.vaultClients.clear({ revoke: false });
  }
}
