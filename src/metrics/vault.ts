// Vault metric families. Ferry's own (ferry_vault_*) count every request by operation and outcome;
// next to them, VSO's vso_* families with VSO's names, types and labels (vault/client_metrics.go,
// cache_metrics.go, client_factory_metrics.go, cache_storage_metrics.go in VSO 1.4.1), so VSO
// dashboards and alerts keep working. Labels are bounded: an operation, an outcome, and the
// VaultConnection's namespace/name (VSO's vault_connection); never a path, a key or a value.
import type { Counter, Gauge, Histogram, MetricsRegistry } from './registry.ts';

/** One finished Vault HTTP request (retries included), as the Vault client reports it. */
export interface VaultRequestObservation {
  /** GET, PUT, POST, DELETE or LIST. */
  method: string;
  /** The request path below /v1/, used only to tell logins and token renewals apart. */
  path: string;
  /** The HTTP status; undefined when no answer came (connection error, timeout). */
  status: number | undefined;
  seconds: number;
}

export type VaultRequestObserver = (o: VaultRequestObservation) => void;

// VSO's buckets for vso_client_operations_time_seconds and vso_client_factory_operations_time_seconds.
const VSO_OPERATION_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25,
  1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10,
];

export interface VaultMetrics {
  requests: Counter<'operation' | 'result'>;
  requestDuration: Histogram<'operation'>;
  clientOperations: Counter<'operation' | 'vault_connection'>;
  clientOperationErrors: Counter<'operation' | 'vault_connection'>;
  clientOperationTime: Histogram<'operation' | 'vault_connection'>;
  cacheSize: Gauge<never>;
  cacheLength: Gauge<never>;
  cacheHits: Counter<never>;
  cacheMisses: Counter<never>;
  cacheEvictions: Gauge<never>;
  factoryRequests: Counter<'operation'>;
  factoryRequestErrors: Counter<'operation'>;
  factoryOperationTime: Histogram<'component' | 'operation'>;
  storageConfig: Gauge<'enforce_encryption'>;
  storageRequests: Counter<'operation'>;
  storageRequestErrors: Counter<'operation'>;
  storageOperations: Counter<'operation'>;
  storageOperationErrors: Counter<'operation'>;
}

export function vaultMetrics(r: MetricsRegistry): VaultMetrics {
  const op = ['operation'] as const;
  const opConn = ['operation', 'vault_connection'] as const;
  return {
    requests: r.counter({
      name: 'ferry_vault_requests_total',
      help: 'Vault requests by operation (read, list, write, delete) and result (success, not_found, client_error, server_error, transport_error).',
      labelNames: ['operation', 'result'],
    }),
    requestDuration: r.histogram({
      name: 'ferry_vault_request_duration_seconds',
      help: 'Duration of Vault requests, retries included, by operation.',
      labelNames: op,
      buckets: VSO_OPERATION_BUCKETS,
    }),
    clientOperations: r.counter({
      name: 'vso_client_operations_total',
      help: 'Vault Client successful operations',
      labelNames: opConn,
    }),
    clientOperationErrors: r.counter({
      name: 'vso_client_operations_errors_total',
      help: 'Vault Client operation errors',
      labelNames: opConn,
    }),
    clientOperationTime: r.histogram({
      name: 'vso_client_operations_time_seconds',
      help: 'Length of time per Vault client operation',
      labelNames: opConn,
      buckets: VSO_OPERATION_BUCKETS,
    }),
    cacheSize: r.gauge({ name: 'vso_client_cache_size', help: 'Size of the cache.', labelNames: [] }),
    cacheLength: r.gauge({
      name: 'vso_client_cache_length',
      help: 'Number of Vault Clients in the cache.',
      labelNames: [],
    }),
    cacheHits: r.counter({ name: 'vso_client_cache_hits', help: 'Number of cache hits.', labelNames: [] }),
    cacheMisses: r.counter({
      name: 'vso_client_cache_misses',
      help: 'Number of cache misses.',
      labelNames: [],
    }),
    cacheEvictions: r.gauge({
      name: 'vso_client_cache_evictions',
      help: 'Number of cache evictions.',
      labelNames: [],
    }),
    factoryRequests: r.counter({
      name: 'vso_client_factory_requests_total',
      help: 'Client factory request total',
      labelNames: op,
    }),
    factoryRequestErrors: r.counter({
      name: 'vso_client_factory_requests_errors_total',
      help: 'Client factory request errors total',
      labelNames: op,
    }),
    factoryOperationTime: r.histogram({
      name: 'vso_client_factory_operations_time_seconds',
      help: 'Length of time per client factory operation',
      labelNames: ['component', 'operation'],
      buckets: VSO_OPERATION_BUCKETS,
    }),
    storageConfig: r.gauge({
      name: 'vso_client_cache_storage_config',
      help: 'Client storage cache config',
      labelNames: ['enforce_encryption'],
    }),
    storageRequests: r.counter({
      name: 'vso_client_cache_storage_requests_total',
      help: 'Client storage cache request total',
      labelNames: op,
    }),
    storageRequestErrors: r.counter({
      name: 'vso_client_cache_storage_requests_errors_total',
      help: 'Client storage cache request errors',
      labelNames: op,
    }),
    storageOperations: r.counter({
      name: 'vso_client_cache_storage_operations_total',
      help: 'Client storage cache operations',
      labelNames: op,
    }),
    storageOperationErrors: r.counter({
      name: 'vso_client_cache_storage_operations_errors_total',
      help: 'Client storage cache operation errors',
      labelNames: op,
    }),
  };
}

/** Ferry's operation of a request: what the caller did, by verb. */
export function requestOperation(method: string): 'read' | 'list' | 'write' | 'delete' {
  if (method === 'GET') return 'read';
  if (method === 'LIST') return 'list';
  if (method === 'DELETE') return 'delete';
  return 'write';
}

export function requestResult(status: number | undefined): string {
  if (status === undefined) return 'transport_error';
  if (status < 400) return 'success';
  if (status === 404) return 'not_found';
  return status < 500 ? 'client_error' : 'server_error';
}

/** VSO's operation of a request: login, renew (of the client's own token), read or write. */
export function vsoOperation(method: string, path: string): 'login' | 'renew' | 'read' | 'write' {
  if (path === 'auth/token/renew-self') return 'renew';
  if (method !== 'GET' && method !== 'LIST' && /^auth\/.+\/login(\/|$)/.test(path)) return 'login';
  return method === 'GET' || method === 'LIST' ? 'read' : 'write';
}

/** The observer for the requests of the clients of one VaultConnection (`namespace/name`). A 404 is
 * an answer (nothing at the path), not an operation error. */
export function vaultRequestObserver(m: VaultMetrics, vaultConnection: string): VaultRequestObserver {
  return ({ method, path, status, seconds }) => {
    const operation = requestOperation(method);
    m.requests.inc({ operation, result: requestResult(status) });
    m.requestDuration.observe({ operation }, seconds);
    const labels = { operation: vsoOperation(method, path), vault_connection: vaultConnection };
    m.clientOperations.inc(labels);
    if (status === undefined || (status >= 400 && status !== 404)) m.clientOperationErrors.inc(labels);
    m.clientOperationTime.observe(labels, seconds);
  };
}
