// `ferry operator`: runs the controllers, out of cluster from a kubeconfig or in cluster from the
// pod's ServiceAccount. Flags mirror VSO's manager where they overlap; each has an env twin.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pino from 'pino';
import pkg from '../../package.json' with { type: 'json' };
import { errorMessage } from '../errors.ts';
import { KubeClient } from '../k8s/client.ts';
import { loadKubeConnection } from '../k8s/config.ts';
import { registerBuildInfo } from '../metrics/registry.ts';
import { buildOperator } from '../operator.ts';
import { parsePersistenceModel } from '../vault/persistence.ts';

const { values } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    'operator-namespace': { type: 'string' },
    'leader-elect': { type: 'string', default: 'true' },
    'metrics-bind-address': { type: 'string', default: ':8080' },
    'health-probe-bind-address': { type: 'string', default: ':8081' },
    'max-concurrent-reconciles': { type: 'string' },
    'client-cache-size': { type: 'string' },
    'global-transformation-options': { type: 'string' },
    'global-vault-auth-options': { type: 'string' },
    'connection-health-period': { type: 'string', default: '60' },
    'log-level': { type: 'string', default: 'info' },
    'client-cache-persistence-model': { type: 'string' },
  },
});
const env = process.env;

function operatorNamespace(): string {
  if (values['operator-namespace']) return values['operator-namespace'];
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim();
  } catch {
    return env.OPERATOR_NAMESPACE || 'default';
  }
}

/** VSO §7.4: env OPERATOR_POD_UID, else the downward-API file. */
function operatorPodUID(): string | undefined {
  if (env.OPERATOR_POD_UID) return env.OPERATOR_POD_UID;
  try {
    return readFileSync('/var/run/podinfo/uid', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

const addr = (v: string | undefined): string | null => (v === undefined || v === '0' || v === '' ? null : v);
const int = (v: string | undefined, fallback: number): number => {
  const n = Number(v);
  return v !== undefined && v !== '' && Number.isInteger(n) && n > 0 ? n : fallback;
};
const list = (v: string | undefined): string[] =>
  (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

// Secret material never reaches the log: Vault tokens, JWTs and Secret data are redacted wherever a
// caller might pass them in a log object.
const logger = pino({
  level: values['log-level'],
  redact: {
    paths: ['*.token', '*.client_token', '*.jwt', '*.data', '*.secret_id', 'headers.authorization'],
    censor: '[redacted]',
  },
});

try {
  const client = new KubeClient(
    loadKubeConnection({ ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}), env }),
    {
      userAgent: 'ferry',
    },
  );
  const transformOpts = list(
    values['global-transformation-options'] ?? env.VSO_GLOBAL_TRANSFORMATION_OPTIONS,
  );
  const authOpts = list(
    values['global-vault-auth-options'] ?? env.VSO_GLOBAL_VAULT_AUTH_OPTIONS ?? 'allow-default-globals',
  );
  const persistenceModel = parsePersistenceModel(
    values['client-cache-persistence-model'] ?? env.VSO_CLIENT_CACHE_PERSISTENCE_MODEL,
  );
  const podUID = operatorPodUID();
  const manager = buildOperator({
    client,
    logger,
    operatorNamespace: operatorNamespace(),
    healthProbeAddress: addr(values['health-probe-bind-address']),
    metricsAddress: addr(values['metrics-bind-address']),
    leaderElection: values['leader-elect'] !== 'false',
    maxConcurrentReconciles: int(
      values['max-concurrent-reconciles'] ?? env.VSO_MAX_CONCURRENT_RECONCILES,
      100,
    ),
    clientCacheSize: int(values['client-cache-size'] ?? env.VSO_CLIENT_CACHE_SIZE, 10_000),
    globalExcludeRaw: transformOpts.includes('exclude-raw'),
    allowDefaultGlobals: authOpts.includes('allow-default-globals'),
    connectionHealthPeriodMs: int(values['connection-health-period'], 60) * 1000,
    clientCachePersistenceModel: persistenceModel,
    ...(podUID ? { operatorPodUID: podUID } : {}),
  });
  registerBuildInfo(manager.metrics, {
    version: pkg.version,
    gitCommit: env.FERRY_GIT_COMMIT ?? 'unknown',
    nodeVersion: process.version,
    platform: `${process.platform}/${process.arch}`,
  });
  const stop = new AbortController();
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      logger.info({ signal: sig }, 'shutting down');
      stop.abort();
    });
  }
  logger.info(
    { operatorNamespace: operatorNamespace(), clientCachePersistenceModel: persistenceModel },
    'starting ferry operator',
  );
  await manager.start(stop.signal);
  await client.close();
  logger.info('stopped');
} catch (err) {
  logger.fatal({ err: errorMessage(err) }, 'operator failed');
  process.exitCode = 1;
}
