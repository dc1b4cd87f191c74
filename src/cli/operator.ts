// `ferry operator`: runs the controllers, out of cluster from a kubeconfig or in cluster from the
// pod's ServiceAccount. Flags mirror VSO's manager where they overlap; each has an env twin.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { errorMessage } from '../errors.ts';
import { parseRateLimit } from '../k8s/ratelimit.ts';
import { registerRuntimeConfig } from '../metrics/registry.ts';
import { buildOperator } from '../operator.ts';
import { parseListenAddress } from '../runtime/manager.ts';
import { durationString } from '../template/duration.ts';
import { type AuditStreamOptions, peerList } from '../vault/audit-stream.ts';
import { parsePersistenceModel } from '../vault/persistence.ts';
import {
  buildInfo,
  CLIENT_CACHE_FLAGS,
  COMMON_FLAGS,
  clientCacheOptions,
  listenAddress,
  secretSafeLogger,
  setUp,
  sourceBackoff,
} from './common.ts';

const { values } = parseArgs({
  options: {
    ...COMMON_FLAGS,
    'leader-elect': { type: 'string', default: 'true' },
    'metrics-bind-address': { type: 'string', default: ':8080' },
    'max-concurrent-reconciles': { type: 'string' },
    ...CLIENT_CACHE_FLAGS,
    'strict-destination-ownership': { type: 'string' },
    'connection-health-period': { type: 'string', default: '60' },
    'client-cache-persistence-model': { type: 'string' },
    'kube-client-qps': { type: 'string' },
    'kube-client-burst': { type: 'string' },
    'backoff-initial-interval': { type: 'string' },
    'backoff-max-interval': { type: 'string' },
    'backoff-max-elapsed-time': { type: 'string' },
    'backoff-multiplier': { type: 'string' },
    'backoff-randomization-factor': { type: 'string' },
    'audit-stream-bind-address': { type: 'string' },
    'audit-stream-allowed-peers': { type: 'string' },
    'audit-stream-max-connections': { type: 'string' },
  },
});
// V8 lets the old generation grow to 3–4× the live heap between full collections when collecting
// is cheap, and keeps the freed pages resident for reuse: the sync burst's peak RSS is that grown
// heap (docs/memory.md). 1.5× bounds it at little CPU. NODE_OPTIONS refuses this V8 flag, so it is
// set here, after every module is loaded: V8's flag hash guards the compile cache.
setFlagsFromString('--heap-growing-percent=50');
const env = process.env;

/** VSO §7.4: env OPERATOR_POD_UID, else the downward-API file. */
function operatorPodUID(): string | undefined {
  if (env.OPERATOR_POD_UID) return env.OPERATOR_POD_UID;
  try {
    return readFileSync('/var/run/podinfo/uid', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

const int = (v: string | undefined, fallback: number): number => {
  const n = Number(v);
  return v !== undefined && v !== '' && Number.isInteger(n) && n > 0 ? n : fallback;
};
/** `--audit-stream-bind-address=[host]:port` (unset or empty: off), its peers and connection limit. */
function auditStream(): AuditStreamOptions | undefined {
  const addr = values['audit-stream-bind-address'] ?? env.FERRY_AUDIT_STREAM_BIND_ADDRESS;
  if (!addr) return undefined;
  const { host, port } = parseListenAddress(addr);
  if (port < 1) throw new RangeError(`invalid --audit-stream-bind-address ${JSON.stringify(addr)}: port 0`);
  const allowedPeers = (values['audit-stream-allowed-peers'] ?? env.FERRY_AUDIT_STREAM_ALLOWED_PEERS ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  peerList(allowedPeers); // fail at start on a malformed entry
  return {
    host: host ?? '0.0.0.0',
    port,
    allowedPeers,
    maxConnections: int(values['audit-stream-max-connections'], 8),
  };
}

const logger = secretSafeLogger(values['log-level']);
/** Go's time.Duration String, as VSO prints its settings. */
const goDuration = (ms: number): string => durationString(BigInt(ms) * 1_000_000n);

try {
  const rateLimit = parseRateLimit(
    values['kube-client-qps'] ?? env.VSO_KUBE_CLIENT_QPS,
    values['kube-client-burst'] ?? env.VSO_KUBE_CLIENT_BURST,
  );
  const {
    client,
    operatorNamespace: opNamespace,
    globals,
    stop,
  } = setUp(values, env, 'ferry', logger, rateLimit);
  const persistenceModel = parsePersistenceModel(
    values['client-cache-persistence-model'] ?? env.VSO_CLIENT_CACHE_PERSISTENCE_MODEL,
  );
  const podUID = operatorPodUID();
  const backoff = sourceBackoff(values, env);
  const maxConcurrentReconciles = int(
    values['max-concurrent-reconciles'] ?? env.VSO_MAX_CONCURRENT_RECONCILES,
    100,
  );
  const { clientCacheSize, clientCacheNamespaceQuota } = clientCacheOptions(values, env);
  const stream = auditStream();
  const manager = buildOperator({
    client,
    logger,
    operatorNamespace: opNamespace,
    healthProbeAddress: listenAddress(values['health-probe-bind-address']),
    metricsAddress: listenAddress(values['metrics-bind-address']),
    leaderElection: values['leader-elect'] !== 'false',
    maxConcurrentReconciles,
    clientCacheSize,
    ...(clientCacheNamespaceQuota ? { clientCacheNamespaceQuota } : {}),
    ...globals,
    connectionHealthPeriodMs: int(values['connection-health-period'], 60) * 1000,
    clientCachePersistenceModel: persistenceModel,
    strictDestinationOwnership:
      (values['strict-destination-ownership'] ?? env.FERRY_STRICT_DESTINATION_OWNERSHIP) === 'true',
    sourceBackoff: backoff,
    ...(podUID ? { operatorPodUID: podUID } : {}),
    ...(stream ? { auditStream: stream } : {}),
  });
  buildInfo(manager.metrics, env);
  registerRuntimeConfig(manager.metrics, {
    backoffInitialInterval: goDuration(backoff.initialMs),
    backoffMaxInterval: goDuration(backoff.maxMs),
    backoffMaxElapsedTime: goDuration(backoff.maxElapsedMs),
    backoffMultiplier: backoff.multiplier.toFixed(2),
    backoffRandomizationFactor: backoff.jitter.toFixed(2),
    clientCachePersistenceModel: persistenceModel === 'none' ? '' : persistenceModel,
    clientCacheSize: String(clientCacheSize),
    globalTransformationOptions: globals.globalExcludeRaw ? 'exclude-raw' : '',
    globalVaultAuthOptions: globals.allowDefaultGlobals ? 'allow-default-globals' : '',
    maxConcurrentReconciles: String(maxConcurrentReconciles),
  });
  logger.info(
    {
      operatorNamespace: opNamespace,
      clientCachePersistenceModel: persistenceModel,
      kubeClientRateLimit: rateLimit,
    },
    'starting ferry operator',
  );
  await manager.start(stop);
  await client.close();
  logger.info('stopped');
} catch (err) {
  logger.fatal({ err: errorMessage(err) }, 'operator failed');
  process.exitCode = 1;
}
