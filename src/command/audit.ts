// `ferry audit`: the blast radius of each VaultAuth. Logs in through it as the operator would
// (vault-login.ts), then asks Vault only what the token may do — `sys/capabilities-self` over the
// paths the cluster's resources use, the folders of the KV mounts it can see or list, and its
// policies' rules where readable — never a secret. audit-rules.ts judges the answers.
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import {
  CSISecretsResource,
  VaultDynamicSecrets,
  VaultPKISecrets,
  VaultStaticSecrets,
} from '../api/resources.ts';
import type { CSISecretsSpec } from '../api/v1beta1/csisecrets.ts';
import { parseRef } from '../api/validate.ts';
import type { Clock } from '../clock.ts';
import { type Consumer, csiSecretsConsumer } from '../delivery/vault-access.ts';
import { errorMessage } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { Namespaces } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';
import { isRecord, type VaultApi } from '../vault/client.ts';
import { UsageError } from './args.ts';
import {
  type AuditSubject,
  defaultEnvironmentMap,
  type EnvironmentMap,
  engineProbes,
  folderProbes,
  judgePaths,
  type KvMount,
  kvPaths,
  namespaceEnvironment,
  type PathReport,
  type PathUse,
  type PolicyRule,
  parseEnvironmentMap,
  parsePolicy,
  pathUses,
  policyProbes,
  type World,
} from './audit-rules.ts';
import { operatorLease } from './cluster.ts';
import type { Command, CommandContext } from './context.ts';
import { adviceFor, loginAdvice } from './doctor.ts';
import { oneLine, type Paint, serialize, table } from './output.ts';
import { type CsiLogin, CsiLoginError, VaultLogins, withDeadline } from './vault-login.ts';

export interface AuditUnit {
  namespace: string;
  /** `namespace/name` of the VaultAuth logged in through. */
  auth: string;
  environment?: string;
  /** Who logged in and why, when not the VaultAuth's own identity as a consumer in `namespace`
   * would (a CSISecrets: the CSI driver's login, csi-identity.ts). */
  identity?: string;
  login: 'ok' | 'failed';
  error?: string;
  fix?: string;
  /** The token's policies; `rules` only where the token may read them. */
  policies: { name: string; rules?: PolicyRule[] }[];
  /** Secrets engines the token can see (`sys/internal/ui/mounts`). */
  mounts: string[];
  /** Every path asked about on which the token has a capability. */
  paths: PathReport[];
}

export interface AuditReport {
  units: AuditUnit[];
  summary: { errors: number; warnings: number; info: number; loginFailures: number };
}

type Resource = KubeObject & { spec?: Record<string, unknown> };
const SECRET_KINDS = [VaultStaticSecrets, VaultDynamicSecrets, VaultPKISecrets, CSISecretsResource];

/** Bounds of what one token is asked, whatever the cluster or Vault holds. */
const LIMITS = { listings: 200, depth: 3, candidates: 5000, batch: 100, namespaces: 500 } as const;
/** Mounts every token sees through the default policy; not secrets engines of the tenant. */
const SYSTEM_MOUNTS = new Set([
  'cubbyhole',
  'identity',
  'system',
  'ns_system',
  'ns_identity',
  'ns_cubbyhole',
]);

function consumerOf(kind: string, o: Resource): Consumer {
  const ns = o.metadata.namespace ?? '';
  if (kind === CSISecretsResource.kind) return csiSecretsConsumer(ns, o.spec as CSISecretsSpec | undefined);
  const spec = o.spec ?? {};
  return {
    namespace: ns,
    vaultAuthRef: typeof spec.vaultAuthRef === 'string' ? spec.vaultAuthRef : undefined,
    vaultNamespace: typeof spec.namespace === 'string' ? spec.namespace : undefined,
  };
}

const record = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});

/** What the token may see and list: its KV mounts (with every folder and key LIST shows) and the
 * other secrets engines. Forbidden listings are skipped: they are the expected answer. */
async function discover(
  api: VaultApi,
  signal: AbortSignal,
): Promise<{ kv: KvMount[]; other: string[]; listed: string[] }> {
  const res = await api.read('sys/internal/ui/mounts', { signal }).catch(() => undefined);
  const secret = record(res?.data?.secret);
  const kv: KvMount[] = [];
  const other: string[] = [];
  for (const [path, m] of Object.entries(secret)) {
    const info = record(m);
    const mount = path.replace(/\/+$/, '');
    const type = String(info.type ?? '');
    if (SYSTEM_MOUNTS.has(type)) continue;
    if (type === 'kv' || type === 'generic') {
      kv.push({ mount, version: String(record(info.options).version ?? '1') === '2' ? 2 : 1 });
    } else other.push(mount);
  }
  const listed: string[] = [];
  let budget: number = LIMITS.listings;
  for (const m of kv) {
    const queue: { folder: string; depth: number }[] = [{ folder: '', depth: 0 }];
    while (queue.length > 0 && budget > 0) {
      const { folder, depth } = queue.shift() ?? { folder: '', depth: 0 };
      budget--;
      const at = m.version === 2 ? `${m.mount}/metadata/${folder}` : `${m.mount}/${folder}`;
      const keys = await api
        .list(at, { signal })
        .then((r) => (Array.isArray(r?.data?.keys) ? (r.data.keys as unknown[]).map(String) : []))
        .catch(() => []);
      for (const k of keys) {
        if (listed.length >= LIMITS.candidates) return { kv, other, listed };
        const key = `${folder}${k}`;
        listed.push(...kvPaths(m, key));
        if (k.endsWith('/') && depth + 1 < LIMITS.depth) queue.push({ folder: key, depth: depth + 1 });
      }
    }
  }
  return { kv, other, listed };
}

/** The token's policies, with their rules where the token may read them (`sys/policy/<name>`). */
async function policies(api: VaultApi, signal: AbortSignal): Promise<AuditUnit['policies']> {
  const self = await api.read('auth/token/lookup-self', { signal });
  // Only the policy names are taken from the lookup: its data also holds the token itself.
  const names = new Set<string>();
  for (const key of ['policies', 'identity_policies']) {
    const v = self?.data?.[key];
    if (Array.isArray(v)) for (const n of v) names.add(String(n));
  }
  const out: AuditUnit['policies'] = [];
  for (const name of [...names].sort()) {
    // Every token has `default`; its rules are the token's own housekeeping, the same everywhere.
    if (name === 'default') {
      out.push({ name });
      continue;
    }
    const p = await api.read(`sys/policy/${encodeURIComponent(name)}`, { signal }).catch(() => undefined);
    const rules = p?.data?.rules;
    out.push(typeof rules === 'string' ? { name, rules: parsePolicy(rules) } : { name });
  }
  return out;
}

/** `sys/capabilities-self` in batches: path → capabilities. */
async function capabilities(
  api: VaultApi,
  paths: string[],
  signal: AbortSignal,
): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (let i = 0; i < paths.length; i += LIMITS.batch) {
    const batch = paths.slice(i, i + LIMITS.batch);
    const res = await api.write('sys/capabilities-self', { paths: batch }, { signal });
    const data = record(res?.data);
    for (const p of batch) {
      const caps = data[p] ?? (batch.length === 1 ? data.capabilities : undefined);
      out.set(p, Array.isArray(caps) ? caps.map(String) : []);
    }
  }
  return out;
}

export interface AuditOptions {
  namespace: string | undefined;
  environments: EnvironmentMap;
  signal: AbortSignal;
  clock: Clock;
}

/** One login the audit makes: through `auth` as `consumer`, or as the CSI driver would (`identity`). */
interface Unit {
  auth: string;
  consumer: Consumer;
  /** For a CSISecrets: the login the CSI driver would make. */
  identity?: CsiLogin;
}

/** How long the questions to Vault about one token may take in all. */
const PROBE_TIMEOUT_MS = 60_000;

export async function runAudit(
  kube: KubeClient,
  logins: VaultLogins,
  operatorNamespace: string,
  opts: AuditOptions,
): Promise<AuditReport> {
  const resources = (
    await Promise.all(
      SECRET_KINDS.map(async (rt) =>
        (await kube.list<Resource>(rt)).items.map((o) => ({ kind: rt.kind, o })),
      ),
    )
  ).flat();
  const usedBy = new Map<string, Set<string>>();
  const uses = new Map<string, PathUse[]>();
  for (const { kind, o } of resources) {
    const ns = o.metadata.namespace ?? '';
    for (const u of pathUses(kind, o.spec ?? {})) {
      usedBy.set(u.path, (usedBy.get(u.path) ?? new Set()).add(ns));
      const own = uses.get(ns) ?? [];
      own.push(u);
      uses.set(ns, own);
    }
  }
  const clusterNamespaces = await kube
    .list<KubeObject>(Namespaces)
    .then((l) => l.items.map((n) => n.metadata.name ?? ''))
    .catch(() => [...new Set(resources.map((r) => r.o.metadata.namespace ?? ''))]);
  const world: World = {
    usedBy,
    namespaces: new Set(clusterNamespaces.slice(0, LIMITS.namespaces)),
    environments: opts.environments,
  };
  const words = [...world.namespaces, ...Object.values(opts.environments.environments).flat()];

  // One login per VaultAuth × consumer namespace in scope (for a CSISecrets, per identity the CSI
  // driver would log in as); a VaultAuth nobody uses logs in as its own.
  const units = new Map<string, Unit>();
  const inScope = (ns: string | undefined): boolean => opts.namespace === undefined || ns === opts.namespace;
  for (const { kind, o } of resources) {
    if (!inScope(o.metadata.namespace)) continue;
    const consumer = consumerOf(kind, o);
    let auth: string;
    try {
      const r = parseRef(consumer.vaultAuthRef, { namespace: consumer.namespace, operatorNamespace });
      auth = `${r.namespace}/${r.name}`;
    } catch {
      continue; // an invalid reference: `ferry lint` and `ferry doctor` report it
    }
    const key = `${auth}|${consumer.namespace}|${consumer.vaultNamespace ?? ''}`;
    const base = { auth, consumer: { ...consumer, vaultAuthRef: auth } };
    if (kind !== CSISecretsResource.kind) {
      if (!units.has(key)) units.set(key, base);
      continue;
    }
    for (const l of await logins.csiLogins(base.consumer, o.spec as CSISecretsSpec | undefined)) {
      // The VaultAuth's own login is the namespace's other consumers' too: one unit for both.
      if (l.own) {
        if (!units.has(key)) units.set(key, { ...base, identity: l });
      } else
        units.set(`${key}|${l.pod ? `${l.pod.sa.namespace}/${l.pod.sa.name}` : 'csi'}`, {
          ...base,
          identity: l,
        });
    }
  }
  const used = new Set([...units.values()].map((u) => u.auth));
  for (const a of logins.auths) {
    const auth = `${a.metadata.namespace}/${a.metadata.name}`;
    if (!inScope(a.metadata.namespace) || used.has(auth)) continue;
    units.set(auth, { auth, consumer: { namespace: a.metadata.namespace ?? '', vaultAuthRef: auth } });
  }

  const out: AuditUnit[] = [];
  for (const { auth, consumer, identity } of [...units.values()].sort(
    (a, b) => a.consumer.namespace.localeCompare(b.consumer.namespace) || a.auth.localeCompare(b.auth),
  )) {
    const ns = consumer.namespace;
    const environment = namespaceEnvironment(ns, opts.environments);
    const unit: AuditUnit = {
      namespace: ns,
      auth,
      ...(environment ? { environment } : {}),
      ...(identity ? { identity: identity.as } : {}),
      login: 'ok',
      policies: [],
      mounts: [],
      paths: [],
    };
    out.push(unit);
    let api: VaultApi;
    try {
      const advice = (err: unknown) => loginAdvice(err, ns);
      api = (
        identity
          ? await logins.loginCsi(consumer, identity, opts.signal, advice)
          : await logins.login(consumer, opts.signal)
      ).api;
    } catch (err) {
      unit.login = 'failed';
      unit.error = oneLine(errorMessage(err));
      unit.fix = err instanceof CsiLoginError ? err.fix : loginAdvice(err, ns);
      continue;
    }
    try {
      await withDeadline(opts.clock, PROBE_TIMEOUT_MS, opts.signal, async (signal) => {
        unit.policies = await policies(api, signal);
        const found = await discover(api, signal);
        unit.mounts = [...found.kv.map((m) => m.mount), ...found.other].sort();
        // Most telling first, should the bound cut the list: its own paths, its policies' rules, the
        // folder probes, then what others use and what listing found.
        const candidates = new Set<string>((uses.get(ns) ?? []).map((u) => u.path));
        for (const p of unit.policies)
          for (const r of p.rules ?? []) for (const path of policyProbes(r.path, words)) candidates.add(path);
        for (const path of [
          ...engineProbes(found.other),
          ...folderProbes(found.kv, words),
          ...usedBy.keys(),
          ...found.listed,
        ])
          candidates.add(path);
        const caps = await capabilities(api, [...candidates].slice(0, LIMITS.candidates), signal);
        const subject: AuditSubject = { namespace: ns, environment, uses: uses.get(ns) ?? [] };
        unit.paths = judgePaths(subject, caps, world);
      });
    } catch (err) {
      unit.login = 'failed';
      unit.error = `logged in, but Vault did not answer what the token may do: ${oneLine(errorMessage(err))}`;
      unit.fix = adviceFor(unit.error);
    }
  }
  const findings = out.flatMap((u) => u.paths.flatMap((p) => (p.finding ? [p.finding] : [])));
  const count = (s: string): number => findings.filter((f) => f.severity === s).length;
  return {
    units: out,
    summary: {
      errors: count('error'),
      warnings: count('warning'),
      info: count('info'),
      loginFailures: out.filter((u) => u.login === 'failed').length,
    },
  };
}

const SEVERITY_STYLE = { error: 'red', warning: 'yellow', info: 'dim' } as const;

export function renderAudit(report: AuditReport, paint: Paint): string {
  const parts: string[] = [];
  for (const u of report.units) {
    const env = u.environment ? ` (${u.environment})` : '';
    const as = u.identity ? `\n  as ${u.identity}` : '';
    const head = `${paint('bold', u.namespace)}${env} through VaultAuth ${u.auth}${as}`;
    if (u.login === 'failed') {
      parts.push(`${head}\n  ${paint('red', 'login failed')}: ${u.error}\n  fix: ${u.fix}\n`);
      continue;
    }
    const pol = u.policies.map((p) => (p.rules ? `${p.name} (${p.rules.length} rules)` : p.name)).join(', ');
    const rows = u.paths.map((p) => [
      p.path,
      p.capabilities.join(','),
      p.finding
        ? `${paint(SEVERITY_STYLE[p.finding.severity], p.finding.severity)} ${p.finding.rule}: ${p.finding.message}`
        : p.own
          ? 'used by its resources'
          : '',
    ]);
    const bad = u.paths.some((p) => p.finding && p.finding.severity !== 'info');
    const fix = bad
      ? `  fix: narrow the policies of the Vault role VaultAuth ${u.auth} logs in with to the paths its resources use (\`vault policy read <policy>\`)\n`
      : '';
    const body =
      rows.length > 0
        ? table(['PATH', 'CAPABILITIES', 'FINDING'], rows).trimEnd().replace(/^/gm, '  ')
        : '  (no capabilities on any path asked)';
    parts.push(`${head}\n  policies: ${pol || '-'}; mounts: ${u.mounts.join(', ') || '-'}\n${body}\n${fix}`);
  }
  const s = report.summary;
  const tail =
    s.errors + s.warnings + s.loginFailures === 0
      ? paint('green', `no findings (${report.units.length} login(s), ${s.info} info)`)
      : `${s.errors} error(s), ${s.warnings} warning(s), ${s.info} info, ${s.loginFailures} login failure(s) in ${report.units.length} login(s)`;
  return `${parts.join('\n')}${parts.length > 0 ? '\n' : ''}${tail}\n`;
}

async function loadEnvironments(file: string | undefined): Promise<EnvironmentMap> {
  if (file === undefined) return defaultEnvironmentMap();
  let doc: unknown;
  try {
    doc = parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--environments ${file}: ${errorMessage(err)}`);
  }
  const { map, problems } = parseEnvironmentMap(doc);
  if (problems.length > 0) throw new UsageError(`--environments ${file}: ${problems.join('; ')}`);
  return map;
}

export const auditCommand: Command = {
  name: 'audit',
  summary: "what each VaultAuth's Vault token can reach beyond its namespace's own paths",
  synopsis: '[-n NS | -A] [--environments FILE]',
  description: `Logs in to Vault through each VaultAuth used in the namespace, as the operator would (a
TokenRequest for the ServiceAccount, the AppRole Secret, ...), and asks Vault what the token may do:
sys/capabilities-self over the paths the cluster's resources use, the folders of the KV mounts it
can see (sys/internal/ui/mounts) and list, and its policies' rules where it may read them. It never
reads a secret. Reaching another namespace's or another environment's paths is an error; other
paths its resources do not use are warnings. A namespace's environment is the first word of its
name that names one (shop-prod → prod), a path's the first segment that does (kv/data/prod/db);
--environments maps them otherwise. The tokens are revoked at the end. Exit code 1 on an error or
a warning, else 2 when a login failed.`,
  options: { environments: { type: 'string' } },
  optionHelp: {
    environments:
      'FILE (YAML): `namespaces: {NS or GLOB: ENV}` and `environments: {ENV: [WORDS]}` (replaces the defaults)',
  },
  positionals: { min: 0, max: 0 },
  async run(ctx: CommandContext): Promise<number> {
    const file = ctx.values.environments;
    const environments = await loadEnvironments(typeof file === 'string' ? file : undefined);
    const kube = ctx.kube();
    const operatorNamespace = (await operatorLease(kube))?.metadata.namespace ?? 'default';
    const logins = await VaultLogins.load(kube, { operatorNamespace, clock: ctx.io.clock });
    let report: AuditReport;
    try {
      report = await runAudit(kube, logins, operatorNamespace, {
        namespace: ctx.namespace(),
        environments,
        signal: ctx.io.signal,
        clock: ctx.io.clock,
      });
    } finally {
      await logins.close();
    }
    const format = ctx.global.output;
    ctx.io.stdout.write(format === 'table' ? renderAudit(report, ctx.paint) : serialize(report, format));
    const s = report.summary;
    // A finding is certain even when another login failed; "clean" needs every login to work.
    if (s.errors + s.warnings > 0) return 1;
    return s.loginFailures > 0 ? 2 : 0;
  },
};
