// Assembles the operator: one Manager, the Vault access shared with the CSI driver, the context every
// controller gets, and the list of kinds (each wires itself in controllers/<kind>/setup.ts).
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { SecretTransformations } from './api/resources.ts';
import type { SecretTransformation } from './api/v1beta1/secrettransformation.ts';
import { type Clock, type Random, systemClock, systemRandom } from './clock.ts';
import { LEADER_ELECTION_ID } from './consts/labels.ts';
import type { ControllerContext, OperatorOptions } from './controllers/context.ts';
import { setupCSISecrets } from './controllers/csisecrets/setup.ts';
import { setupHCP } from './controllers/hcp/setup.ts';
import { setupResourceStatus } from './controllers/resource-status.ts';
import { setupSecretExpiry } from './controllers/secret-expiry.ts';
import { setupSecretTransformation } from './controllers/secrettransformation/setup.ts';
import type { KindSetup, SetupEnv } from './controllers/setup.ts';
import { DestinationWriter } from './controllers/shared/destination-writer.ts';
import { hmacKeyProvider } from './controllers/shared/hmac-key.ts';
import {
  setupClientCacheRestore,
  setupVaultAuth,
  setupVaultAuthGlobal,
} from './controllers/vaultauth/setup.ts';
import { setupVaultConnection } from './controllers/vaultconnection/setup.ts';
import { setupVaultDynamicSecret } from './controllers/vaultdynamicsecret/setup.ts';
import { setupVaultPKISecret } from './controllers/vaultpkisecret/setup.ts';
import { setupVaultStaticSecret } from './controllers/vaultstaticsecret/setup.ts';
import { createVaultAccess } from './delivery/setup.ts';
import type { KubeClient } from './k8s/client.ts';
import { EventQueue } from './k8s/event-queue.ts';
import { EventRecorder } from './k8s/events.ts';
import { Manager } from './runtime/manager.ts';

export interface OperatorConfig extends OperatorOptions {
  client: KubeClient;
  logger: Logger;
  healthProbeAddress: string | null;
  metricsAddress: string | null;
  leaderElection: boolean;
  clientCacheSize: number;
  /** Sessions one namespace may hold in the client cache; default a tenth of clientCacheSize. */
  clientCacheNamespaceQuota?: number;
  /** The process environment, for the AWS default credential chain (aws auth without secretRef or
   * irsaServiceAccount); unset, that chain is refused. */
  env?: Record<string, string | undefined>;
  clock?: Clock;
  random?: Random;
}

/** Every kind the operator reconciles; each registers its own controllers and watches. */
const KINDS: readonly KindSetup[] = [
  setupVaultConnection,
  setupVaultAuth,
  setupClientCacheRestore,
  setupVaultAuthGlobal,
  setupVaultStaticSecret,
  setupVaultDynamicSecret,
  setupVaultPKISecret,
  setupSecretTransformation,
  setupCSISecrets,
  setupHCP,
  // Last: these read the informers the kinds above created.
  setupResourceStatus,
  setupSecretExpiry,
];

export function buildOperator(cfg: OperatorConfig): Manager {
  const clock = cfg.clock ?? systemClock;
  const random = cfg.random ?? systemRandom;
  const log = cfg.logger;
  const opNs = cfg.operatorNamespace;
  const manager = new Manager({
    client: cfg.client,
    logger: log,
    healthProbeAddress: cfg.healthProbeAddress,
    metricsAddress: cfg.metricsAddress,
    clock,
    random,
    ...(cfg.leaderElection
      ? {
          leaderElection: {
            namespace: opNs,
            name: LEADER_ELECTION_ID,
            identity: `${hostname()}_${process.pid}_${random().toString(36).slice(2, 8)}`,
          },
        }
      : {}),
  });

  const hmacKey = hmacKeyProvider(cfg.client, opNs);
  const access = createVaultAccess(manager, {
    client: cfg.client,
    log,
    clock,
    operatorNamespace: opNs,
    allowDefaultGlobals: cfg.allowDefaultGlobals,
    clientCacheSize: cfg.clientCacheSize,
    ...(cfg.clientCacheNamespaceQuota ? { clientCacheNamespaceQuota: cfg.clientCacheNamespaceQuota } : {}),
    ...(cfg.env ? { env: cfg.env } : {}),
    persistence: { model: cfg.clientCachePersistenceModel ?? 'none', hmacKey },
  });
  const { auths, authGlobals, connections, resolver: vault, cache: vaultClients } = access;
  const transformations = manager.informer<SecretTransformation>(SecretTransformations);
  const events = new EventQueue(
    new EventRecorder(cfg.client, {
      component: 'ferry',
      onError: (err) => log.warn({ err }, 'could not record event'),
    }),
    { onDropped: (count) => log.warn({ count }, 'events dropped: more were queued than could be written') },
  );
  manager.runWhileLeading('events', async (signal) => {
    if (!signal.aborted)
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    await events.close();
  });
  const ctx: ControllerContext = {
    client: cfg.client,
    log,
    events,
    clock,
    random,
    options: cfg,
    vault,
    vaultClients,
    hmacKey,
    tasks: manager.tasks,
    informers: { connections, auths, authGlobals, transformations },
  };

  const env: SetupEnv = { manager, ctx, destinations: new DestinationWriter(cfg.client) };
  for (const setup of KINDS) setup(env);
  return manager;
}
