// `ferry operator`: runs the controllers, out of cluster from a kubeconfig or in cluster from the
// pod's ServiceAccount. Flags mirror VSO's manager where they overlap; each has an env twin.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { errorMessage } from '../errors.ts';
import { buildOperator } from '../operator.ts';
import { parsePersistenceModel } from '../vault/persistence.ts';
import { buildInfo, COMMON_FLAGS, listenAddress, secretSafeLogger, setUp } from './common.ts';

const { values } = parseArgs({
  options: {
    ...COMMON_FLAGS,
    'leader-elect': { type: 'string', default: 'true' },
    'metrics-bind-address': { type: 'string', default: ':8080' },
    'max-concurrent-reconciles': { type: 'string' },
    'client-cache-size': { type: 'string' },
    'connection-health-period': { type: 'string', default: '60' },
    'client-cache-persistence-model': { type: 'string' },
  },
});
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
const logger = secretSafeLogger(values['log-level']);

try {
  const { client, operatorNamespace: opNamespace, globals, stop } = setUp(values, env, 'ferry', logger);
  const persistenceModel = parsePersistenceModel(
    values['client-cache-persistence-model'] ?? env.VSO_CLIENT_CACHE_PERSISTENCE_MODEL,
  );
  const podUID = operatorPodUID();
  const manager = buildOperator({
    client,
    logger,
    operatorNamespace: opNamespace,
    healthProbeAddress: listenAddress(values['health-probe-bind-address']),
    metricsAddress: listenAddress(values['metrics-bind-address']),
    leaderElection: values['leader-elect'] !== 'false',
    maxConcurrentReconciles: int(
      values['max-concurrent-reconciles'] ?? env.VSO_MAX_CONCURRENT_RECONCILES,
      100,
    ),
    clientCacheSize: int(values['client-cache-size'] ?? env.VSO_CLIENT_CACHE_SIZE, 10_000),
    ...globals,
    connectionHealthPeriodMs: int(values['connection-health-period'], 60) * 1000,
    clientCachePersistenceModel: persistenceModel,
    ...(podUID ? { operatorPodUID: podUID } : {}),
  });
  buildInfo(manager.metrics, env);
  logger.info(
    { operatorNamespace: opNamespace, clientCachePersistenceModel: persistenceModel },
    'starting ferry operator',
  );
  await manager.start(stop);
  await client.close();
  logger.info('stopped');
} catch (err) {
  logger.fatal({ err: errorMessage(err) }, 'operator failed');
  process.exitCode = 1;
}
