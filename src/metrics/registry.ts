// The only module that touches the Prometheus client library. Everything else in Ferry speaks the
// small interfaces below, so switching to @prometheus-io/client (or back) is a change to this file.
import {
  Counter as PromCounter,
  Gauge as PromGauge,
  Histogram as PromHistogram,
  Registry,
} from 'prom-client';

export type Labels<L extends string> = Readonly<Record<L, string>>;

export interface Counter<L extends string> {
  inc(labels: Labels<L>, value?: number): void;
}

export interface Gauge<L extends string> {
  set(labels: Labels<L>, value: number): void;
  inc(labels: Labels<L>, value?: number): void;
  dec(labels: Labels<L>, value?: number): void;
  /** Drops every series (a collect hook that rebuilds them all starts here). */
  reset(): void;
  /** Runs `fn` right before every scrape (for values that are computed, not event-driven). Returns an
   * unsubscribe function. */
  onCollect(fn: () => void): () => void;
}

export interface Histogram<L extends string> {
  observe(labels: Labels<L>, value: number): void;
}

interface MetricSpec<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
}

type Entry =
  | { kind: 'counter'; metric: Counter<string> }
  | { kind: 'gauge'; metric: Gauge<string> }
  | { kind: 'histogram'; metric: Histogram<string> };

/** A Prometheus registry. Metric constructors are get-or-create by name, because several queues and
 * controllers share one metric family (distinguished by labels), exactly as controller-runtime does. */
export class MetricsRegistry {
  readonly #registry = new Registry();
  readonly #entries = new Map<string, Entry>();

  get contentType(): string {
    return this.#registry.contentType;
  }

  /** The text exposition of every metric. */
  metrics(): Promise<string> {
    return this.#registry.metrics();
  }

  counter<L extends string>(spec: MetricSpec<L>): Counter<L> {
    const existing = this.#lookup(spec.name, 'counter');
    if (existing) return existing.metric;
    const c = new PromCounter<L>({ ...spec, labelNames: [...spec.labelNames], registers: [this.#registry] });
    const metric: Counter<L> = { inc: (labels, value = 1) => c.inc(labels, value) };
    this.#entries.set(spec.name, { kind: 'counter', metric: metric as Counter<string> });
    return metric;
  }

  gauge<L extends string>(spec: MetricSpec<L>): Gauge<L> {
    const existing = this.#lookup(spec.name, 'gauge');
    if (existing) return existing.metric;
    const hooks = new Set<() => void>();
    const g = new PromGauge<L>({
      ...spec,
      labelNames: [...spec.labelNames],
      registers: [this.#registry],
      collect() {
        for (const fn of hooks) fn();
      },
    });
    const metric: Gauge<L> = {
      set: (labels, value) => g.set(labels, value),
      inc: (labels, value = 1) => g.inc(labels, value),
      dec: (labels, value = 1) => g.dec(labels, value),
      reset: () => g.reset(),
      onCollect(fn) {
        hooks.add(fn);
        return () => hooks.delete(fn);
      },
    };
    this.#entries.set(spec.name, { kind: 'gauge', metric: metric as Gauge<string> });
    return metric;
  }

  histogram<L extends string>(spec: MetricSpec<L> & { buckets: readonly number[] }): Histogram<L> {
    const existing = this.#lookup(spec.name, 'histogram');
    if (existing) return existing.metric;
    const h = new PromHistogram<L>({
      ...spec,
      labelNames: [...spec.labelNames],
      buckets: [...spec.buckets],
      registers: [this.#registry],
    });
    const metric: Histogram<L> = { observe: (labels, value) => h.observe(labels, value) };
    this.#entries.set(spec.name, { kind: 'histogram', metric: metric as Histogram<string> });
    return metric;
  }

  #lookup<K extends Entry['kind']>(name: string, kind: K): Extract<Entry, { kind: K }> | undefined {
    const e = this.#entries.get(name);
    if (!e) return undefined;
    if (e.kind !== kind) throw new TypeError(`metric ${name} is already registered as a ${e.kind}`);
    return e as Extract<Entry, { kind: K }>;
  }
}

export interface BuildInfo {
  version: string;
  gitCommit: string;
  nodeVersion: string;
  platform: string;
}

/** `ferry_build_info` = 1 with the build as labels; and VSO's `vso_build_info` with VSO's labels, so
 * dashboards that join on it keep working (Node's version in go_version, `node` as compiler). */
export function registerBuildInfo(registry: MetricsRegistry, info: BuildInfo): void {
  const [major = '', minor = ''] = info.version.split('.');
  const vso = {
    major,
    minor,
    git_version: `v${info.version}`,
    git_commit: info.gitCommit,
    git_tree_state: '',
    build_date: '',
    go_version: info.nodeVersion,
    compiler: 'node',
    platform: info.platform,
  };
  registry
    .gauge({
      name: 'vso_build_info',
      help: 'Vault Secrets Operator build info.',
      labelNames: Object.keys(vso) as (keyof typeof vso)[],
    })
    .set(vso, 1);
  registry
    .gauge({
      name: 'ferry_build_info',
      help: 'A metric with a constant 1 value labelled by the Ferry build.',
      labelNames: ['version', 'git_commit', 'node_version', 'platform'],
    })
    .set(
      {
        version: info.version,
        git_commit: info.gitCommit,
        node_version: info.nodeVersion,
        platform: info.platform,
      },
      1,
    );
}

/** VSO's `vso_runtime_config` = 1, its settings as labels (VSO's label names). */
export function registerRuntimeConfig(
  registry: MetricsRegistry,
  config: Readonly<Record<string, string>>,
): void {
  registry
    .gauge({
      name: 'vso_runtime_config',
      help: 'Vault Secrets Operator runtime config.',
      labelNames: Object.keys(config),
    })
    .set(config, 1);
}

/** Exponential bucket boundaries, as Prometheus' Go client `ExponentialBuckets`. */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start * factor ** i);
}
