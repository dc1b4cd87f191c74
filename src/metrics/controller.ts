// Metric families with controller-runtime's exact names, labels and buckets, so dashboards and alerts
// written for Go operators (and for VSO) work unchanged against Ferry.
import type { Counter, Gauge, Histogram, MetricsRegistry } from './registry.ts';
import { exponentialBuckets } from './registry.ts';

export interface WorkQueueMetrics {
  depth: Gauge<'name'>;
  adds: Counter<'name'>;
  queueDuration: Histogram<'name'>;
  workDuration: Histogram<'name'>;
  retries: Counter<'name'>;
  longestRunningProcessor: Gauge<'name'>;
  unfinishedWork: Gauge<'name'>;
}

// client-go: prometheus.ExponentialBuckets(10e-9, 10, 12), i.e. 10 ns … 1000 s.
const WORKQUEUE_BUCKETS = exponentialBuckets(10e-9, 10, 12);

export function workQueueMetrics(r: MetricsRegistry): WorkQueueMetrics {
  const labelNames = ['name'] as const;
  return {
    depth: r.gauge({ name: 'workqueue_depth', help: 'Current depth of workqueue', labelNames }),
    adds: r.counter({
      name: 'workqueue_adds_total',
      help: 'Total number of adds handled by workqueue',
      labelNames,
    }),
    queueDuration: r.histogram({
      name: 'workqueue_queue_duration_seconds',
      help: 'How long in seconds an item stays in workqueue before being requested',
      labelNames,
      buckets: WORKQUEUE_BUCKETS,
    }),
    workDuration: r.histogram({
      name: 'workqueue_work_duration_seconds',
      help: 'How long in seconds processing an item from workqueue takes.',
      labelNames,
      buckets: WORKQUEUE_BUCKETS,
    }),
    retries: r.counter({
      name: 'workqueue_retries_total',
      help: 'Total number of retries handled by workqueue',
      labelNames,
    }),
    longestRunningProcessor: r.gauge({
      name: 'workqueue_longest_running_processor_seconds',
      help: 'How many seconds has the longest running processor for workqueue been running.',
      labelNames,
    }),
    unfinishedWork: r.gauge({
      name: 'workqueue_unfinished_work_seconds',
      help:
        "How many seconds of work has been done that is in progress and hasn't been observed by " +
        'work_duration. Large values indicate stuck threads.',
      labelNames,
    }),
  };
}

export interface ControllerMetrics {
  reconcileTotal: Counter<'controller' | 'result'>;
  reconcileErrors: Counter<'controller'>;
  terminalReconcileErrors: Counter<'controller'>;
  reconcileTimeouts: Counter<'controller'>;
  reconcileTime: Histogram<'controller'>;
  activeWorkers: Gauge<'controller'>;
  maxConcurrentReconciles: Gauge<'controller'>;
}

// controller-runtime pkg/internal/controller/metrics: ReconcileTime buckets.
const RECONCILE_TIME_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25,
  1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
];

export function controllerMetrics(r: MetricsRegistry): ControllerMetrics {
  const labelNames = ['controller'] as const;
  return {
    reconcileTotal: r.counter({
      name: 'controller_runtime_reconcile_total',
      help: 'Total number of reconciliations per controller',
      labelNames: ['controller', 'result'],
    }),
    reconcileErrors: r.counter({
      name: 'controller_runtime_reconcile_errors_total',
      help: 'Total number of reconciliation errors per controller',
      labelNames,
    }),
    terminalReconcileErrors: r.counter({
      name: 'controller_runtime_terminal_reconcile_errors_total',
      help: 'Total number of terminal reconciliation errors per controller',
      labelNames,
    }),
    reconcileTimeouts: r.counter({
      name: 'controller_runtime_reconcile_timeouts_total',
      help: 'Total number of reconciliation timeouts per controller',
      labelNames,
    }),
    reconcileTime: r.histogram({
      name: 'controller_runtime_reconcile_time_seconds',
      help: 'Length of time per reconciliation per controller',
      labelNames,
      buckets: RECONCILE_TIME_BUCKETS,
    }),
    activeWorkers: r.gauge({
      name: 'controller_runtime_active_workers',
      help: 'Number of currently used workers per controller',
      labelNames,
    }),
    maxConcurrentReconciles: r.gauge({
      name: 'controller_runtime_max_concurrent_reconciles',
      help: 'Maximum number of concurrent reconciles per controller',
      labelNames,
    }),
  };
}

/** VSO's `controller_resource_status` (no vso_ prefix): 1 for a valid object, 0 for an invalid one,
 * per controller (the kind in lower case), name and namespace. */
export function resourceStatusMetric(r: MetricsRegistry): Gauge<'controller' | 'name' | 'namespace'> {
  return r.gauge({
    name: 'controller_resource_status',
    help: 'Status of a resource; a value other than 1 denotes an invalid resource',
    labelNames: ['controller', 'name', 'namespace'],
  });
}

/** `ferry_secret_expiry_timestamp_seconds`: the Unix time the current lease (VaultDynamicSecret) or
 * certificate (VaultPKISecret) expires, one series per object (`namespace`/`name`, as in
 * controller_resource_status: a scrape with honor_labels off stores it as exported_namespace). */
export function secretExpiryMetric(r: MetricsRegistry): Gauge<'kind' | 'namespace' | 'name'> {
  return r.gauge({
    name: 'ferry_secret_expiry_timestamp_seconds',
    help: 'Unix time at which the current lease or certificate of a VaultDynamicSecret or VaultPKISecret expires',
    labelNames: ['kind', 'namespace', 'name'],
  });
}
