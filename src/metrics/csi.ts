// The CSI node driver's metric families (ferry_csi_*): what kubelet asked, what the driver holds in
// Vault for running pods, and how keeping it alive goes. Counts only, never a name or value of a
// secret; labels are bounded (a result code, an item kind).
import type { Counter, Gauge, Histogram, MetricsRegistry } from './registry.ts';

export interface CsiMetrics {
  publishes: Counter<'result'>;
  publishDuration: Histogram<'result'>;
  /** Held items renewed in place, replaced by new ones, revoked or given up; volumes re-synced on a
   * restart. */
  upkeep: Counter<'action'>;
  volumes: Gauge<never>;
  held: Gauge<'kind'>;
  pendingRevocations: Gauge<never>;
}

// 5 ms … ~20 s: a publish is a TokenReview, a Pod GET, a Vault login at worst and a few reads.
const PUBLISH_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20];

export function csiMetrics(r: MetricsRegistry): CsiMetrics {
  return {
    publishes: r.counter({
      name: 'ferry_csi_publish_total',
      help: 'NodePublishVolume calls by result: ok, skipped (already published) or the gRPC status code.',
      labelNames: ['result'],
    }),
    publishDuration: r.histogram({
      name: 'ferry_csi_publish_duration_seconds',
      help: 'NodePublishVolume latency by result.',
      labelNames: ['result'],
      buckets: PUBLISH_BUCKETS,
    }),
    upkeep: r.counter({
      name: 'ferry_csi_upkeep_total',
      help: 'Leases renewed, held secrets replaced, revoked or given up (revocation failed too often), and volumes re-synced after a container restart.',
      labelNames: ['action'],
    }),
    volumes: r.gauge({ name: 'ferry_csi_volumes', help: 'Volumes published on this node.', labelNames: [] }),
    held: r.gauge({
      name: 'ferry_csi_held',
      help: 'Leases and certificates held in Vault for published volumes, by kind.',
      labelNames: ['kind'],
    }),
    pendingRevocations: r.gauge({
      name: 'ferry_csi_pending_revocations',
      help: 'Leases and certificates whose revocation failed and is being retried.',
      labelNames: [],
    }),
  };
}
