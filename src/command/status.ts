// `ferry status`: one line per synced (VaultStaticSecret, VaultDynamicSecret, VaultPKISecret) and
// protected (CSISecrets) secret, failing first, then the stalest. It reads the objects' status and
// their Events only: never a Secret, never a value.
import { setTimeout as delay } from 'node:timers/promises';
import {
  CSISecretsResource,
  VaultDynamicSecrets,
  VaultPKISecrets,
  VaultStaticSecrets,
} from '../api/resources.ts';
import type { Condition } from '../api/v1beta1/common.ts';
import type { CSISecretsSpec } from '../api/v1beta1/csisecrets.ts';
import type { VaultDynamicSecretSpec, VaultDynamicSecretStatus } from '../api/v1beta1/vaultdynamicsecret.ts';
import type { VaultPKISecretSpec, VaultPKISecretStatus } from '../api/v1beta1/vaultpkisecret.ts';
import type { VaultStaticSecretSpec } from '../api/v1beta1/vaultstaticsecret.ts';
import { parseDuration } from '../api/validate.ts';
import { formatTime } from '../clock.ts';
import { CONDITION_TYPES } from '../consts/conditions.ts';
import { REASONS } from '../consts/reasons.ts';
import { errorMessage } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { eventTime } from '../k8s/events.ts';
import { Events, type ResourceType } from '../k8s/resources.ts';
import type { CoreEvent, KubeObject } from '../k8s/types.ts';
import { renewalHorizonMs } from '../vault/leases.ts';
import type { Command, CommandContext } from './context.ts';
import { humanDuration, oneLine, type Paint, serialize, table } from './output.ts';

export interface StatusRow {
  kind: string;
  namespace: string;
  name: string;
  /** The destination Secret, or `CSI volume` for protected secrets. */
  destination: string;
  /** The Vault path(s) read. */
  source: string;
  /** When Ferry last wrote new data (ISO); it does not write when nothing changed. */
  lastSync?: string;
  /** When Ferry next goes to Vault (ISO), when that is known ahead. */
  nextRefresh?: string;
  /** How a static secret is refreshed when there is no fixed time: `every 1m`, `on Vault events`. */
  refresh?: string;
  /** Lease end, certificate expiry or static-role rotation (ISO). */
  expires?: string;
  expiresWhat?: 'lease' | 'certificate' | 'rotation';
  ready: 'True' | 'False' | 'Unknown';
  reason: string;
  message?: string;
}

interface Cr<Spec, Status> extends KubeObject {
  spec: Spec;
  status?: Status & { conditions?: Condition[] };
}

const iso = (epochMs: number): string => formatTime(epochMs);
const fromUnix = (s: number | undefined): number | undefined => (s && s > 0 ? s * 1000 : undefined);

/** Reasons of Events that mean "new data was written". */
const SYNC_REASONS: ReadonlySet<string> = new Set([
  REASONS.SecretSynced,
  REASONS.SecretRotated,
  REASONS.SecretLeaseRenewal,
]);

function readiness(
  obj: { status?: { conditions?: Condition[] } },
  lastSyncMs: number | undefined,
  events: CoreEvent[],
): Pick<StatusRow, 'ready' | 'reason' | 'message'> {
  const ready = obj.status?.conditions?.find((c) => c.type === CONDITION_TYPES.Ready);
  const warning = events
    .filter((e) => e.type === 'Warning' && eventTime(e) > (lastSyncMs ?? 0))
    .sort((a, b) => eventTime(b) - eventTime(a))[0];
  if (ready?.status === 'True') return { ready: 'True', reason: ready.reason };
  if (!ready && !warning) return { ready: 'Unknown', reason: 'NoStatus' };
  // The condition says that it fails; the latest Warning since the last sync usually says why.
  const message = warning?.message || ready?.message;
  return {
    ready: ready?.status === 'Unknown' ? 'Unknown' : 'False',
    reason: warning?.reason || ready?.reason || 'Unknown',
    ...(message ? { message } : {}),
  };
}

function lastSyncOf(
  obj: KubeObject & { status?: { conditions?: Condition[] } },
  events: CoreEvent[],
): number | undefined {
  const fromEvents = events.filter((e) => e.type === 'Normal' && SYNC_REASONS.has(e.reason)).map(eventTime);
  const synced = obj.status?.conditions?.find(
    (c) => c.type === CONDITION_TYPES.SecretSynced && c.status === 'True',
  );
  const fromCondition = synced?.lastTransitionTime ? Date.parse(synced.lastTransitionTime) : 0;
  const latest = Math.max(0, fromCondition, ...fromEvents);
  return latest > 0 ? latest : undefined;
}

const kvSource = (mount: string | undefined, path: string | undefined): string =>
  [mount, path].filter(Boolean).join('/');

type Base = Pick<StatusRow, 'kind' | 'namespace' | 'name'>;
const base = (kind: string, o: KubeObject): Base => ({
  kind,
  namespace: o.metadata.namespace ?? '',
  name: o.metadata.name ?? '',
});

function staticRow(o: Cr<VaultStaticSecretSpec, unknown>, events: CoreEvent[]): StatusRow {
  const last = lastSyncOf(o, events);
  const refresh = o.spec.syncConfig?.instantUpdates
    ? 'on Vault events'
    : o.spec.refreshAfter && o.spec.refreshAfter !== '0s'
      ? `every ${o.spec.refreshAfter}`
      : undefined;
  return {
    ...base('VaultStaticSecret', o),
    destination: o.spec.destination.name,
    source: kvSource(o.spec.mount, o.spec.path),
    ...(last ? { lastSync: iso(last) } : {}),
    ...(refresh ? { refresh } : {}),
    ...readiness(o, last, events),
  };
}

function dynamicRow(o: Cr<VaultDynamicSecretSpec, VaultDynamicSecretStatus>, events: CoreEvent[]): StatusRow {
  const s = o.status;
  const last = fromUnix(s?.lastRenewalTime) ?? lastSyncOf(o, events);
  const row: StatusRow = {
    ...base('VaultDynamicSecret', o),
    destination: o.spec.destination.name,
    source: kvSource(o.spec.mount, o.spec.path),
    ...(last ? { lastSync: iso(last) } : {}),
    ...readiness(o, last, events),
  };
  const leaseS = s?.secretLease?.duration ?? 0;
  if (last && s?.staticCredsMetaData && s.staticCredsMetaData.ttl > 0) {
    row.expires = iso(last + s.staticCredsMetaData.ttl * 1000);
    row.expiresWhat = 'rotation';
    row.nextRefresh = row.expires;
  } else if (last && leaseS > 0) {
    row.expires = iso(last + leaseS * 1000);
    row.expiresWhat = 'lease';
    // The earliest point of the jittered renewal band.
    row.nextRefresh = iso(last + renewalHorizonMs(leaseS, o.spec.renewalPercent, () => 0));
  } else if (last && o.spec.refreshAfter) {
    try {
      row.nextRefresh = iso(last + parseDuration(o.spec.refreshAfter));
    } catch {
      // an invalid refreshAfter is the object's own error, shown in its Ready condition
    }
  }
  return row;
}

function pkiRow(o: Cr<VaultPKISecretSpec, VaultPKISecretStatus>, events: CoreEvent[]): StatusRow {
  const s = o.status;
  const last = fromUnix(s?.lastRotation) ?? lastSyncOf(o, events);
  const expiration = fromUnix(s?.expiration);
  let offset = 0;
  try {
    offset = o.spec.expiryOffset ? parseDuration(o.spec.expiryOffset) : 0;
  } catch {
    // as the controller does: an unparseable expiryOffset counts as 0
  }
  return {
    ...base('VaultPKISecret', o),
    destination: o.spec.destination.name,
    source: `${o.spec.mount}/issue/${o.spec.role}`,
    ...(last ? { lastSync: iso(last) } : {}),
    ...(expiration ? { expires: iso(expiration), expiresWhat: 'certificate' as const } : {}),
    ...(expiration ? { nextRefresh: iso(expiration - offset) } : {}),
    ...readiness(o, last, events),
  };
}

function csiRow(o: Cr<CSISecretsSpec, unknown>, events: CoreEvent[]): StatusRow {
  const s = o.spec.secrets;
  const sources = [
    ...(s.vaultStaticSecrets ?? []).map((x) => kvSource(x.mount, x.path)),
    ...(s.vaultAppRoleSecretIDs ?? []).map((x) => `${x.mount}/role/${x.role}/secret-id`),
    ...(s.vaultDynamicSecrets ?? []).map((x) => kvSource(x.mount, x.path)),
    ...(s.vaultPKISecrets ?? []).map((x) => `${x.mount}/issue/${x.role}`),
  ];
  const [first, ...more] = sources;
  return {
    ...base('CSISecrets', o),
    destination: 'CSI volume',
    source: first ? `${first}${more.length > 0 ? ` (+${more.length})` : ''}` : '',
    // Protected secrets are fetched when a pod mounts them, by the node driver: no sync time here.
    refresh: 'at pod start',
    ...readiness(o, undefined, events),
  };
}

const KINDS: { rt: ResourceType; row: (o: never, events: CoreEvent[]) => StatusRow }[] = [
  { rt: VaultStaticSecrets, row: staticRow },
  { rt: VaultDynamicSecrets, row: dynamicRow },
  { rt: VaultPKISecrets, row: pkiRow },
  { rt: CSISecretsResource, row: csiRow },
];

export async function collectStatus(
  kube: Pick<KubeClient, 'list'>,
  namespace: string | undefined,
): Promise<StatusRow[]> {
  const scope = namespace === undefined ? {} : { namespace };
  const perKind = await Promise.all(
    KINDS.map(async ({ rt, row }) => {
      const [objects, events] = await Promise.all([
        kube.list<KubeObject>(rt, scope),
        kube.list<CoreEvent>(Events, { ...scope, fieldSelector: `involvedObject.kind=${rt.kind}` }),
      ]);
      const byObject = new Map<string, CoreEvent[]>();
      for (const e of events.items) {
        const key = `${e.involvedObject.namespace}/${e.involvedObject.name}`;
        byObject.set(key, [...(byObject.get(key) ?? []), e]);
      }
      return objects.items.map((o) =>
        row(o as never, byObject.get(`${o.metadata.namespace}/${o.metadata.name}`) ?? []),
      );
    }),
  );
  return perKind.flat();
}

/** Failing first, then the most overdue refresh, then the oldest sync; names break ties. */
export function sortRows(rows: StatusRow[], now: number): StatusRow[] {
  const overdue = (r: StatusRow): number => (r.nextRefresh ? now - Date.parse(r.nextRefresh) : -Infinity);
  const age = (r: StatusRow): number => (r.lastSync ? now - Date.parse(r.lastSync) : -Infinity);
  return [...rows].sort(
    (a, b) =>
      Number(a.ready === 'True') - Number(b.ready === 'True') ||
      overdue(b) - overdue(a) ||
      age(b) - age(a) ||
      `${a.namespace}/${a.kind}/${a.name}`.localeCompare(`${b.namespace}/${b.kind}/${b.name}`),
  );
}

function relative(isoTime: string | undefined, now: number): string {
  if (!isoTime) return '-';
  const d = Date.parse(isoTime) - now;
  return d >= 0 ? `in ${humanDuration(d)}` : `${humanDuration(d)} ago`;
}

export function renderStatus(rows: StatusRow[], now: number, paint: Paint, allNamespaces: boolean): string {
  if (rows.length === 0) return 'No synced or protected secrets found.\n';
  const headers = [
    ...(allNamespaces ? ['NAMESPACE'] : []),
    'KIND',
    'NAME',
    'DESTINATION',
    'SOURCE',
    'LAST SYNC',
    'NEXT REFRESH',
    'EXPIRES',
    'READY',
    'REASON',
  ];
  const body = rows.map((r) => {
    const next = r.nextRefresh ? relative(r.nextRefresh, now) : (r.refresh ?? '-');
    const overdue = r.nextRefresh !== undefined && Date.parse(r.nextRefresh) < now;
    const expires = r.expires ? `${r.expiresWhat} ${relative(r.expires, now)}` : '-';
    const failing = r.ready !== 'True';
    return [
      ...(allNamespaces ? [r.namespace] : []),
      r.kind,
      r.name,
      r.destination,
      r.source,
      relative(r.lastSync, now),
      overdue ? paint('yellow', next) : next,
      expires,
      failing ? paint('red', r.ready) : paint('green', r.ready),
      failing && r.message ? `${r.reason}: ${oneLine(r.message)}` : r.reason,
    ];
  });
  return table(headers, body);
}

const WATCH_INTERVAL_MS = 2000;

export const statusCommand: Command = {
  name: 'status',
  summary: 'every synced and protected secret: last sync, next refresh, expiry, readiness',
  synopsis: '[-n NS | -A] [--watch]',
  description: `One line per VaultStaticSecret, VaultDynamicSecret, VaultPKISecret and CSISecrets: its
destination, the Vault path, when Ferry last wrote new data, when it next goes to Vault, when the
lease or certificate expires, and whether it is Ready (with the reason when not). Failing ones come
first, then the most overdue. Reads status and Events only, never a Secret.
Exit code 1 when one of them is not Ready (without --watch).`,
  options: { watch: { type: 'boolean', short: 'w' } },
  optionHelp: { watch: `re-render every ${WATCH_INTERVAL_MS / 1000} s when something changed; Ctrl-C ends` },
  positionals: { min: 0, max: 0 },
  async run(ctx: CommandContext): Promise<number> {
    const kube = ctx.kube();
    const namespace = ctx.namespace();
    const format = ctx.global.output;
    const render = (rows: StatusRow[], now: number): string =>
      format === 'table'
        ? renderStatus(rows, now, ctx.paint, namespace === undefined)
        : serialize(rows, format);
    if (ctx.values.watch !== true) {
      const now = ctx.io.clock.now();
      const rows = sortRows(await collectStatus(kube, namespace), now);
      ctx.io.stdout.write(render(rows, now));
      return rows.some((r) => r.ready !== 'True') ? 1 : 0;
    }
    const tty = ctx.io.stdout.isTTY === true && format === 'table';
    // Frames apart: a cleared screen on a terminal, else a blank line (table) or a YAML document marker.
    const separator = tty ? '\x1b[H\x1b[2J' : format === 'yaml' ? '---\n' : '';
    let previous = '';
    let frames = 0;
    while (!ctx.io.signal.aborted) {
      try {
        const now = ctx.io.clock.now();
        const rows = sortRows(await collectStatus(kube, namespace), now);
        // Rows hold absolute times: an unchanged cluster prints no new frame.
        const key = JSON.stringify(rows);
        if (key !== previous) {
          previous = key;
          const gap = frames++ > 0 && format === 'table' && !tty ? '\n' : '';
          ctx.io.stdout.write(`${gap}${separator}${render(rows, now)}`);
        }
      } catch (err) {
        // One failed poll (the apiserver restarting) does not end the watch.
        if (ctx.io.signal.aborted) break;
        ctx.io.stderr.write(`ferry: ${errorMessage(err)}\n`);
      }
      await delay(WATCH_INTERVAL_MS, undefined, { signal: ctx.io.signal }).catch(() => undefined);
    }
    return 0;
  },
};
