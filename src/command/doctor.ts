// `ferry doctor`: is Ferry working here, and if not, what to do: the CRDs, the operator (its leader
// Lease and Deployment), the VaultConnections' health, VaultAuths that are invalid, through which a
// login fails (doctor logs in as the operator would, unless --no-login) or whose consumers fail with
// Vault, and secrets that are not Ready. Every finding names the fix.

import type { CustomResourceDefinition } from '../api/crd.ts';
import { ALL_KINDS } from '../api/kinds.ts';
import {
  CSISecretsResource,
  GROUP,
  VaultAuths,
  VaultConnections,
  VaultDynamicSecrets,
  VaultPKISecrets,
  VaultStaticSecrets,
  VERSION,
} from '../api/resources.ts';
import type { Condition } from '../api/v1beta1/common.ts';
import type { CSISecretsSpec } from '../api/v1beta1/csisecrets.ts';
import { parseRef } from '../api/validate.ts';
import { CONDITION_TYPES } from '../consts/conditions.ts';
import { DEFAULT_DRIVER_NAME, LEADER_ELECTION_ID } from '../consts/labels.ts';
import { REASONS } from '../consts/reasons.ts';
import { CODES, errorMessage, isFerryError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { K8sApiError } from '../k8s/errors.ts';
import { eventTime } from '../k8s/events.ts';
import {
  CSIDrivers,
  CSINodes,
  CustomResourceDefinitions,
  Deployments,
  Events,
  type ResourceType,
  rolloutResource,
  Secrets,
  SubjectAccessReviews,
} from '../k8s/resources.ts';
import type { CoreEvent, KubeObject } from '../k8s/types.ts';
import { UsageError } from './args.ts';
import { operatorLease } from './cluster.ts';
import type { Command, CommandContext } from './context.ts';
import {
  expectedSecret,
  type FerryObject,
  REFERENCE_RESOURCES,
  references,
  rolloutTargets,
} from './lint-rules.ts';
import { humanDuration, oneLine, type Paint, serialize } from './output.ts';
import { CsiLoginError, VaultLogins } from './vault-login.ts';

export interface Check {
  check:
    | 'crds'
    | 'operator'
    | 'rbac'
    | 'csi'
    | 'connection'
    | 'auth'
    | 'login'
    | 'secrets'
    | 'resource'
    | 'reference';
  /** `namespace/name` of the object concerned, when there is one. */
  object?: string;
  ok: boolean;
  message: string;
  /** What to do; set on every failed check. */
  fix?: string;
}

type WithConditions = KubeObject & {
  spec?: Record<string, unknown>;
  status?: { conditions?: Condition[]; valid?: boolean; error?: string };
};

const condition = (o: WithConditions, type: string): Condition | undefined =>
  o.status?.conditions?.find((c) => c.type === type);
const ref = (o: KubeObject): string => `${o.metadata.namespace}/${o.metadata.name}`;
/** Warnings newer than this count as "recent". */
const RECENT_MS = 15 * 60_000;

async function checkCrds(kube: Pick<KubeClient, 'getIfExists'>): Promise<Check> {
  const missing: string[] = [];
  for (const def of ALL_KINDS) {
    const name = `${def.resource.plural}.${GROUP}`;
    const crd = await kube.getIfExists<CustomResourceDefinition>(CustomResourceDefinitions, name);
    if (!crd?.spec.versions.some((v) => v.name === VERSION && v.served)) missing.push(def.resource.kind);
  }
  return missing.length === 0
    ? {
        check: 'crds',
        ok: true,
        message: `all ${ALL_KINDS.length} kinds of ${GROUP}/${VERSION} are installed`,
      }
    : {
        check: 'crds',
        ok: false,
        message: `not installed or not serving ${VERSION}: ${missing.join(', ')}`,
        fix: 'install or upgrade the CRDs: `kubectl apply -f deploy/crds/` (helm does not upgrade CRDs by itself)',
      };
}

interface Deployment extends KubeObject {
  spec?: { replicas?: number; template?: { spec?: { serviceAccountName?: string } } };
  status?: { readyReplicas?: number };
}

interface OperatorFound {
  checks: Check[];
  namespace?: string;
  /** `namespace/name` of the ServiceAccount its pods run as, when a Deployment says. */
  serviceAccount?: string;
}

/** The operator, found by its leader Lease and the chart's Deployment labels. */
async function checkOperator(kube: Pick<KubeClient, 'list'>, now: number): Promise<OperatorFound> {
  const deployments = await kube.list<Deployment>(Deployments, {
    labelSelector: 'app.kubernetes.io/part-of=ferry,app.kubernetes.io/component=controller-manager',
  });
  const checks: Check[] = [];
  for (const d of deployments.items) {
    const want = d.spec?.replicas ?? 1;
    const ready = d.status?.readyReplicas ?? 0;
    checks.push(
      ready >= Math.min(want, 1) && want > 0
        ? { check: 'operator', object: ref(d), ok: true, message: `Deployment ${ready}/${want} ready` }
        : {
            check: 'operator',
            object: ref(d),
            ok: false,
            message: `Deployment ${ready}/${want} ready`,
            fix: `see why: \`kubectl -n ${d.metadata.namespace} describe deployment ${d.metadata.name}\` and the pods' logs`,
          },
    );
  }
  const lease = await operatorLease(kube);
  const renewed = lease?.spec?.renewTime ? Date.parse(lease.spec.renewTime) : undefined;
  const duration = (lease?.spec?.leaseDurationSeconds ?? 15) * 1000;
  if (!lease) {
    checks.push({
      check: 'operator',
      ok: false,
      message: `no leader-election Lease ${LEADER_ELECTION_ID} in any namespace: no operator replica is leading`,
      fix:
        deployments.items.length === 0
          ? 'install the operator: `helm install ferry deploy/chart -n ferry-system --create-namespace`'
          : "the operator's pods are not leading: check their logs",
    });
  } else if (renewed === undefined || now - renewed > 2 * duration) {
    checks.push({
      check: 'operator',
      object: ref(lease),
      ok: false,
      message: `the leader (${lease.spec?.holderIdentity ?? 'none'}) last renewed its Lease ${renewed ? `${humanDuration(now - renewed)} ago` : 'never'}: nothing is being reconciled`,
      fix: `check the operator's pods in ${lease.metadata.namespace}: \`kubectl -n ${lease.metadata.namespace} get pods\` and their logs`,
    });
  } else {
    checks.push({
      check: 'operator',
      object: ref(lease),
      ok: true,
      message: `leader ${lease.spec?.holderIdentity ?? '?'} renewed ${humanDuration(now - renewed)} ago`,
    });
  }
  const d = deployments.items[0];
  const sa = d?.spec?.template?.spec?.serviceAccountName;
  return {
    checks,
    ...(lease?.metadata.namespace ? { namespace: lease.metadata.namespace } : {}),
    ...(d && sa ? { serviceAccount: `${d.metadata.namespace}/${sa}` } : {}),
  };
}

/** What a Vault or connection error usually means, as an action. */
export function adviceFor(message: string): string {
  const m = message.toLowerCase();
  if (m.includes('sealed')) return 'unseal Vault (`vault operator unseal`), or check its auto-unseal';
  if (/x509|certificate|tls/.test(m))
    return 'check the VaultConnection: caCertSecretRef must hold the CA (key ca.crt) of the server, tlsServerName its name';
  if (/econnrefused|enotfound|timeout|timed out|unreachable|ehostunreach|socket/.test(m))
    return 'check the VaultConnection address: the operator pods must reach it (DNS, port, NetworkPolicy)';
  if (/auth\/[^ ]*login/.test(m) && /invalid role name|role .* not found/.test(m))
    return "the Vault role does not exist on that auth mount: create it, or correct the VaultAuth's role and mount";
  if (/auth\/[^ ]*login/.test(m) && /permission denied|403/.test(m))
    return "Vault refused the login: check the role's bound_service_account_names and bound_service_account_namespaces, its audience, and the auth mount's token reviewer";
  if (m.includes('permission denied') || m.includes('403'))
    return "Vault refused the read: the role's policies must grant read on this path (`vault policy read <policy>`)";
  if (/\b(vaultauth|vaultauthglobal|vaultconnection|serviceaccount|secret) [^ /]+\/[^ ]+ not found/.test(m))
    return 'create the missing object, or correct the reference (`ferry doctor KIND/NAME` walks the chain)';
  if (m.includes('not found') || m.includes('404') || m.includes('no secret at'))
    return 'the path or mount does not exist in Vault: check mount, path and type (kv-v1/kv-v2)';
  return '`ferry status` shows each failing secret; `kubectl describe` its object for the Events';
}

function connectionCheck(c: WithConditions): Check {
  const healthy = condition(c, CONDITION_TYPES.Healthy) ?? condition(c, CONDITION_TYPES.Ready);
  if (healthy?.status === 'True') {
    return { check: 'connection', object: ref(c), ok: true, message: `${c.spec?.address} healthy` };
  }
  const why = condition(c, CONDITION_TYPES.Ready)?.message || healthy?.message || 'no health reported yet';
  return {
    check: 'connection',
    object: ref(c),
    ok: false,
    message: `${c.spec?.address}: ${why}`,
    fix: healthy
      ? adviceFor(why)
      : 'the operator has not checked it yet: is it running (see the operator check)?',
  };
}

async function checkConnections(
  kube: Pick<KubeClient, 'list'>,
  namespace: string | undefined,
): Promise<Check[]> {
  const list = await kube.list<WithConditions>(
    VaultConnections,
    namespace === undefined ? {} : { namespace },
  );
  return list.items.map(connectionCheck);
}

/** `vss/app`, `VaultStaticSecret/app`, `vaultauth/x`: kubectl-style kind names, singular or plural. */
const KIND_ALIASES: Record<string, ResourceType> = Object.fromEntries(
  ALL_KINDS.flatMap((d) => [
    [d.resource.kind.toLowerCase(), d.resource],
    [d.resource.plural, d.resource],
  ]),
);
Object.assign(KIND_ALIASES, {
  vss: VaultStaticSecrets,
  vds: VaultDynamicSecrets,
  vps: VaultPKISecrets,
  va: VaultAuths,
  vc: VaultConnections,
});

export function parseTarget(target: string): { rt: ResourceType; name: string } {
  const [kind = '', name = '', ...rest] = target.split('/');
  const rt = KIND_ALIASES[kind.toLowerCase()];
  if (!rt || !name || rest.length > 0) {
    throw new UsageError(
      `"${target}" is not KIND/NAME of a Ferry kind (e.g. vss/app, VaultDynamicSecret/db, vaultauth/default)`,
    );
  }
  return { rt, name };
}

/** The latest Warning about an object, if any. */
async function latestWarning(
  kube: Pick<KubeClient, 'list'>,
  o: KubeObject,
  kind: string,
): Promise<CoreEvent | undefined> {
  const events = await kube.list<CoreEvent>(Events, {
    namespace: o.metadata.namespace ?? '',
    fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${o.metadata.name},type=Warning`,
  });
  return events.items.sort((a, b) => eventTime(b) - eventTime(a))[0];
}

/**
 * One resource and what it depends on, as the operator would walk it: its own readiness (with the
 * latest Warning), each object it refers to (VaultAuth → VaultConnection, transformations, the CA
 * Secret), the Secret a `create: false` destination needs, and its rollout targets.
 */
async function checkResource(
  kube: Pick<KubeClient, 'getIfExists' | 'list'>,
  target: { rt: ResourceType; name: string; namespace: string },
  operatorNamespace: string | undefined,
  /** The object itself, when the caller has already read it. */
  known?: WithConditions,
): Promise<Check[]> {
  const { rt, name, namespace } = target;
  const o = known ?? (await kube.getIfExists<WithConditions>(rt, name, namespace));
  const object = `${namespace}/${name}`;
  if (!o) {
    return [
      {
        check: 'resource',
        object,
        ok: false,
        message: `${rt.kind} ${object} not found`,
        fix: 'check the name and the namespace (-n)',
      },
    ];
  }
  const checks: Check[] = [];
  const ready = condition(o, CONDITION_TYPES.Ready);
  const warning = ready?.status === 'True' ? undefined : await latestWarning(kube, o, rt.kind);
  if (ready?.status === 'True') {
    checks.push({ check: 'resource', object, ok: true, message: `${rt.kind} is Ready` });
  } else {
    const why = oneLine(warning?.message || ready?.message || 'no status yet: has the operator seen it?');
    checks.push({
      check: 'resource',
      object,
      ok: false,
      message: `${rt.kind} is not Ready${warning ? ` (${warning.reason})` : ''}: ${why}`,
      fix: adviceFor(why),
    });
  }
  const asFerry: FerryObject = {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: rt.kind,
    metadata: { name, namespace },
    spec: o.spec ?? {},
  };
  for (const r of references(asFerry, namespace, operatorNamespace)) {
    const found = await kube.getIfExists<WithConditions>(REFERENCE_RESOURCES[r.kind], r.name, r.namespace);
    const refObject = `${r.namespace}/${r.name}`;
    if (!found) {
      checks.push({
        check: 'reference',
        object: refObject,
        ok: false,
        message: `${r.field} names ${r.kind} ${refObject}, which does not exist`,
        fix: `create it, or correct ${r.field}`,
      });
    } else if (r.kind === 'VaultAuth' || r.kind === 'VaultConnection') {
      // Follow the chain: the VaultAuth's own state and connection, or the connection's health.
      const next = r.kind === 'VaultAuth' ? VaultAuths : VaultConnections;
      checks.push(
        ...(
          await checkResource(
            kube,
            { rt: next, name: r.name, namespace: r.namespace },
            operatorNamespace,
            found,
          )
        ).map((c) => (r.kind === 'VaultConnection' && c.check === 'resource' ? connectionCheck(found) : c)),
      );
    } else {
      checks.push({ check: 'reference', object: refObject, ok: true, message: `${r.kind} exists` });
    }
  }
  const secret = expectedSecret(asFerry);
  if (secret && !(await kube.getIfExists(Secrets, secret, namespace))) {
    checks.push({
      check: 'reference',
      object: `${namespace}/${secret}`,
      ok: false,
      message: 'destination.create is false and the Secret does not exist: Ferry waits for it',
      fix: 'create the Secret, or set destination.create: true',
    });
  }
  for (const t of rolloutTargets(asFerry)) {
    const wrt = rolloutResource(t.kind);
    if (wrt && !(await kube.getIfExists(wrt, t.name, namespace))) {
      checks.push({
        check: 'reference',
        object: `${namespace}/${t.name}`,
        ok: false,
        message: `rollout target ${t.kind} ${t.name} does not exist`,
        fix: 'correct spec.rolloutRestartTargets, or remove the entry',
      });
    }
  }
  return checks;
}

const SECRET_KINDS = [VaultStaticSecrets, VaultDynamicSecrets, VaultPKISecrets, CSISecretsResource];
const LOGIN_REASONS: ReadonlySet<string> = new Set([
  REASONS.VaultClientError,
  REASONS.VaultClientConfigError,
]);

/** `namespace/name` of the VaultAuth a secret object uses (CSISecrets name it in an object). */
function authOf(o: WithConditions, operatorNamespace: string): string {
  const authRef = o.spec?.vaultAuthRef;
  try {
    const r = parseRef(
      typeof authRef === 'string' ? authRef : (authRef as { name?: string } | undefined)?.name,
      {
        namespace: o.metadata.namespace ?? '',
        operatorNamespace,
      },
    );
    return `${r.namespace}/${r.name}`;
  } catch {
    return String(authRef);
  }
}

/** Logs in through VaultAuth `namespace/name` as a consumer in `namespace` would (with `csi`, a
 * CSISecrets' spec: as the CSI driver would, `identity` saying as whom); resolves with the token's
 * policies, rejects with the login error (a CsiLoginError names the identity and the fix). */
export type LoginProbe = (
  auth: string,
  namespace: string,
  csi?: { spec: CSISecretsSpec | undefined },
) => Promise<{ policies: readonly string[]; identity?: string }>;

/** The CSISecrets' spec when `o` is one (its login is the CSI driver's). */
const csiOf = (rt: ResourceType, o: WithConditions): { spec: CSISecretsSpec | undefined } | undefined =>
  rt === CSISecretsResource ? { spec: o.spec as CSISecretsSpec | undefined } : undefined;

/** The fix for a failed login: the user's own permissions when the cluster refused a credential. */
export function loginAdvice(err: unknown, consumerNamespace: string): string {
  if (err instanceof K8sApiError && err.status === 403) {
    return `your kubeconfig may not do what the operator does to log in (create serviceaccounts/token, read the credential Secret in ${consumerNamespace}): use an identity that may (doctor: or --no-login)`;
  }
  // Refusals before any request to Vault: the objects, not Vault, need the fix.
  if (isFerryError(err)) {
    if (err.code === CODES.INVALID_REF)
      return 'create the missing object, or correct the reference (`ferry doctor KIND/NAME` walks the chain)';
    if (err.code === CODES.NAMESPACE_NOT_ALLOWED)
      return `add ${consumerNamespace} to the VaultAuth's (or VaultAuthGlobal's) spec.allowedNamespaces, or use a VaultAuth of that namespace`;
    if (err.code === CODES.INVALID_CONFIG)
      return 'correct the VaultAuth or VaultConnection spec (`ferry lint` on its manifest names the field)';
  }
  return adviceFor(errorMessage(err));
}

async function checkAuthsAndSecrets(
  kube: Pick<KubeClient, 'list'>,
  namespace: string | undefined,
  operatorNamespace: string,
  now: number,
  login: LoginProbe | undefined,
): Promise<Check[]> {
  const scope = namespace === undefined ? {} : { namespace };
  const auths = (await kube.list<WithConditions>(VaultAuths, scope)).items;
  const checks: Check[] = [];
  const failingByAuth = new Map<string, { object: string; message: string }[]>();
  /** Per VaultAuth, a consumer's namespace (and spec, a CSISecrets): a login is made as it. */
  const consumerOf = new Map<string, { ns: string; csi?: { spec: CSISecretsSpec | undefined } }>();
  let notReady = 0;
  let total = 0;
  for (const rt of SECRET_KINDS) {
    const [objects, events] = await Promise.all([
      kube.list<WithConditions>(rt, scope),
      kube.list<CoreEvent>(Events, {
        ...scope,
        fieldSelector: `involvedObject.kind=${rt.kind},type=Warning`,
      }),
    ]);
    total += objects.items.length;
    for (const o of objects.items) {
      if (condition(o, CONDITION_TYPES.Ready)?.status !== 'True') notReady++;
      const auth = authOf(o, operatorNamespace);
      const csi = csiOf(rt, o);
      if (!consumerOf.has(auth))
        consumerOf.set(auth, { ns: o.metadata.namespace ?? '', ...(csi ? { csi } : {}) });
      const recent = events.items
        .filter(
          (e) =>
            e.involvedObject.name === o.metadata.name &&
            e.involvedObject.namespace === o.metadata.namespace &&
            LOGIN_REASONS.has(e.reason) &&
            now - eventTime(e) < RECENT_MS,
        )
        .sort((a, b) => Date.parse(b.lastTimestamp ?? '') - Date.parse(a.lastTimestamp ?? ''))[0];
      if (!recent) continue;
      failingByAuth.set(auth, [
        ...(failingByAuth.get(auth) ?? []),
        { object: ref(o), message: recent.message },
      ]);
    }
  }
  // A login through every valid VaultAuth in scope and those outside it that consumers here use,
  // each reported after its VaultAuth's check.
  const logins = new Map<string, Check>();
  if (login) {
    const targets = new Map(consumerOf);
    for (const a of auths) {
      if (a.status?.valid === false) targets.delete(ref(a));
      else if (!targets.has(ref(a))) targets.set(ref(a), { ns: a.metadata.namespace ?? '' });
    }
    for (const [auth, c] of [...targets].sort(([a], [b]) => a.localeCompare(b))) {
      logins.set(auth, await checkLogin(login, auth, c.ns, c.csi));
    }
  }
  const loginOf = (auth: string): Check[] => {
    const c = logins.get(auth);
    logins.delete(auth);
    return c ? [c] : [];
  };
  for (const a of auths) {
    const ready = condition(a, CONDITION_TYPES.Ready);
    const failing = failingByAuth.get(ref(a)) ?? [];
    failingByAuth.delete(ref(a));
    if (a.status?.valid === false || ready?.status === 'False') {
      const why = a.status?.error || ready?.message || 'invalid';
      checks.push({
        check: 'auth',
        object: ref(a),
        ok: false,
        message: `invalid: ${why}`,
        fix: 'correct the VaultAuth spec (`ferry lint` on its manifest names the field)',
      });
    } else if (failing.length > 0) {
      const latest = failing[0]?.message ?? '';
      checks.push({
        check: 'auth',
        object: ref(a),
        ok: false,
        message: `${failing.length} consumer(s) failed with Vault in the last ${humanDuration(RECENT_MS)} (${failing.map((f) => f.object).join(', ')}): ${oneLine(latest)}`,
        fix: adviceFor(latest),
      });
    } else {
      checks.push({ check: 'auth', object: ref(a), ok: true, message: 'valid, no recent Vault errors' });
    }
    checks.push(...loginOf(ref(a)));
  }
  // Consumers of VaultAuths outside the scope (e.g. the operator namespace's default).
  for (const [auth, failing] of failingByAuth) {
    const latest = failing[0]?.message ?? '';
    checks.push({
      check: 'auth',
      object: auth,
      ok: false,
      message: `${failing.length} consumer(s) failed with Vault recently: ${oneLine(latest)}`,
      fix: adviceFor(latest),
    });
    checks.push(...loginOf(auth));
  }
  checks.push(...logins.values());
  checks.push(
    notReady === 0
      ? { check: 'secrets', ok: true, message: `${total} secret object(s), all Ready` }
      : {
          check: 'secrets',
          ok: false,
          message: `${notReady} of ${total} secret object(s) not Ready`,
          fix: `\`ferry status${namespace === undefined ? ' -A' : ` -n ${namespace}`}\` lists them with the reason`,
        },
  );
  return checks;
}

/** The VaultAuth a doctor target logs in through: itself, or the one a secret object uses. */
async function authOfTarget(
  kube: Pick<KubeClient, 'getIfExists'>,
  target: { rt: ResourceType; name: string; namespace: string },
  operatorNamespace: string,
): Promise<{ auth: string; csi?: { spec: CSISecretsSpec | undefined } } | undefined> {
  if (target.rt === VaultAuths) return { auth: `${target.namespace}/${target.name}` };
  if (!SECRET_KINDS.includes(target.rt)) return undefined;
  const o = await kube.getIfExists<WithConditions>(target.rt, target.name, target.namespace);
  const csi = o && csiOf(target.rt, o);
  return o ? { auth: authOf(o, operatorNamespace), ...(csi ? { csi } : {}) } : undefined;
}

async function checkLogin(
  login: LoginProbe,
  auth: string,
  namespace: string,
  csi?: { spec: CSISecretsSpec | undefined },
): Promise<Check> {
  const consumer = auth.startsWith(`${namespace}/`) ? '' : ` as a consumer in ${namespace}`;
  try {
    const { policies, identity } = await login(auth, namespace, csi);
    const as = identity ? ` as ${identity}` : consumer;
    return {
      check: 'login',
      object: auth,
      ok: true,
      message: `logged in to Vault${as}: policies ${policies.join(', ') || 'none'}`,
    };
  } catch (err) {
    const as = err instanceof CsiLoginError ? ` as ${err.identity}` : consumer;
    return {
      check: 'login',
      object: auth,
      ok: false,
      message: `the login through it${as} failed: ${oneLine(errorMessage(err))}`,
      fix: err instanceof CsiLoginError ? err.fix : loginAdvice(err, namespace),
    };
  }
}

/** What the operator cannot work without (deploy/rbac.yaml holds the whole set). */
const NEEDED: {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  inOwnNamespace?: true;
}[] = [
  ...['get', 'list', 'watch', 'create', 'update', 'delete'].map((verb) => ({
    verb,
    group: '',
    resource: 'secrets',
  })),
  { verb: 'create', group: '', resource: 'serviceaccounts', subresource: 'token' },
  { verb: 'create', group: '', resource: 'events' },
  { verb: 'patch', group: 'apps', resource: 'deployments' },
  ...ALL_KINDS.flatMap((d) => [
    { verb: 'watch', group: GROUP, resource: d.resource.plural },
    { verb: 'patch', group: GROUP, resource: d.resource.plural, subresource: 'status' },
  ]),
  // Leader election: a Role in the operator's own namespace.
  { verb: 'update', group: 'coordination.k8s.io', resource: 'leases', inOwnNamespace: true },
];

interface SubjectAccessReview extends KubeObject {
  spec: {
    user: string;
    groups: string[];
    resourceAttributes: {
      verb: string;
      group: string;
      resource: string;
      subresource?: string;
      namespace?: string;
    };
  };
  status?: { allowed?: boolean };
}

/** Asks the apiserver, for each permission the operator needs, whether its ServiceAccount has it. */
async function checkRbac(kube: Pick<KubeClient, 'create'>, serviceAccount: string): Promise<Check> {
  const [ns = '', name = ''] = serviceAccount.split('/');
  const allowed = await Promise.all(
    NEEDED.map(async (p) => {
      const review = await kube.create<SubjectAccessReview>(SubjectAccessReviews, {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        metadata: {},
        spec: {
          user: `system:serviceaccount:${ns}:${name}`,
          groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'],
          resourceAttributes: {
            verb: p.verb,
            group: p.group,
            resource: p.resource,
            ...(p.subresource ? { subresource: p.subresource } : {}),
            ...(p.inOwnNamespace ? { namespace: ns } : {}),
          },
        },
      });
      return review.status?.allowed === true;
    }),
  );
  const denied = NEEDED.filter((_, i) => !allowed[i]).map(
    (p) =>
      `${p.verb} ${p.group ? `${p.resource}.${p.group}` : p.resource}${p.subresource ? `/${p.subresource}` : ''}`,
  );
  return denied.length === 0
    ? {
        check: 'rbac',
        object: serviceAccount,
        ok: true,
        message: `has the ${NEEDED.length} permissions the operator needs`,
      }
    : {
        check: 'rbac',
        object: serviceAccount,
        ok: false,
        message: `may not: ${denied.join(', ')}`,
        fix: "grant the chart's ClusterRole (`helm upgrade` restores it; deploy/rbac.yaml holds the same rules)",
      };
}

/** Protected secrets need the node driver registered where their pods run. Only asked when used. */
async function checkCsi(
  kube: Pick<KubeClient, 'getIfExists' | 'list'>,
  namespace: string | undefined,
  driverName: string,
): Promise<Check[]> {
  const used = (await kube.list<KubeObject>(CSISecretsResource, namespace === undefined ? {} : { namespace }))
    .items;
  const driver = await kube.getIfExists<KubeObject>(CSIDrivers, driverName);
  if (used.length === 0 && !driver) return [];
  if (!driver) {
    return [
      {
        check: 'csi',
        ok: false,
        message: `${used.length} CSISecrets but no CSIDriver ${driverName}: pods cannot mount them`,
        fix: 'install the node driver: the chart with `--set csi.enabled=true`',
      },
    ];
  }
  const nodes = (await kube.list<KubeObject & { spec?: { drivers?: { name: string }[] | null } }>(CSINodes))
    .items;
  const without = nodes.filter((n) => !(n.spec?.drivers ?? []).some((d) => d.name === driverName));
  return [
    without.length === 0
      ? { check: 'csi', object: driverName, ok: true, message: `registered on all ${nodes.length} node(s)` }
      : {
          check: 'csi',
          object: driverName,
          ok: false,
          message: `not registered on ${without.length} of ${nodes.length} node(s): ${without.map((n) => n.metadata.name).join(', ')}`,
          fix: "the driver's DaemonSet pod is not running there: check its tolerations and nodeSelector, and the pod's logs",
        },
  ];
}

export async function runDoctor(
  kube: Pick<KubeClient, 'getIfExists' | 'list' | 'create'>,
  opts: {
    namespace: string | undefined;
    serviceAccount?: string | undefined;
    /** The CSIDriver to look for (the chart's `csi.driver.name`); VSO's name when unset. */
    csiDriver?: string | undefined;
    /** One resource instead of the namespace's connections, auths and secrets. */
    resource?: { rt: ResourceType; name: string; namespace: string };
    /** Logs in through each VaultAuth; unset, no login is tried. */
    login?: LoginProbe;
  },
  now: number,
): Promise<Check[]> {
  const crds = await checkCrds(kube);
  if (!crds.ok) return [crds];
  const operator = await checkOperator(kube, now);
  const serviceAccount = opts.serviceAccount ?? operator.serviceAccount;
  const base = [crds, ...operator.checks, ...(serviceAccount ? [await checkRbac(kube, serviceAccount)] : [])];
  if (opts.resource) {
    const checks = [...base, ...(await checkResource(kube, opts.resource, operator.namespace))];
    const t = opts.login && (await authOfTarget(kube, opts.resource, operator.namespace ?? 'default'));
    // A VaultAuth already reported missing or invalid needs no login to say so again.
    if (opts.login && t && !checks.some((c) => c.object === t.auth && !c.ok)) {
      checks.push(await checkLogin(opts.login, t.auth, opts.resource.namespace, t.csi));
    }
    return checks;
  }
  return [
    ...base,
    ...(await checkCsi(kube, opts.namespace, opts.csiDriver ?? DEFAULT_DRIVER_NAME)),
    ...(await checkConnections(kube, opts.namespace)),
    ...(await checkAuthsAndSecrets(kube, opts.namespace, operator.namespace ?? 'default', now, opts.login)),
  ];
}

export function renderChecks(checks: Check[], paint: Paint): string {
  const lines = checks.map((c) => {
    const mark = c.ok ? paint('green', 'ok  ') : paint('red', 'FAIL');
    const head = `${mark} ${c.check.padEnd(10)} ${c.object ? `${paint('bold', c.object)}: ` : ''}${c.message}`;
    return c.fix ? `${head}\n     ${' '.repeat(10)} fix: ${c.fix}` : head;
  });
  const failed = checks.filter((c) => !c.ok).length;
  lines.push(failed === 0 ? paint('green', 'everything looks fine') : `${failed} problem(s) found`);
  return `${lines.join('\n')}\n`;
}

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'is Ferry working here? each problem with its fix',
  synopsis: '[KIND/NAME] [-n NS | -A] [--service-account NS/NAME] [--no-login]',
  description: `Checks, from the cluster: the CRDs are installed and serve ${VERSION}; an operator replica leads
(its Lease is renewed) and its Deployment is ready; its ServiceAccount has the permissions it needs
(SubjectAccessReview); the CSI driver is registered on every node (when CSISecrets exist); each VaultConnection is healthy; each VaultAuth
is valid, a login through it works (made as the operator makes it, as one of its consumers; the
token is revoked at once) and its consumers did not fail with Vault in the last
${humanDuration(RECENT_MS)}; how many secrets are not Ready. With KIND/NAME (e.g. vss/app), that one resource instead: its readiness with the latest
Warning explained, and what it depends on (VaultAuth, VaultConnection, transformations, the Secret of
create: false, rollout targets) and a login through its VaultAuth. Every problem comes with what to do. Exit code 1 when there is a
problem.`,
  options: {
    'service-account': { type: 'string' },
    'no-login': { type: 'boolean' },
    'csi-driver': { type: 'string' },
  },
  optionHelp: {
    'csi-driver': `the CSIDriver's name, when the chart's csi.driver.name is not ${DEFAULT_DRIVER_NAME}`,
    'no-login':
      'do not log in to Vault through the VaultAuths (the login needs to create ServiceAccount tokens)',
    'service-account':
      "NS/NAME: the operator's ServiceAccount, when it does not run from the chart's Deployment",
  },
  positionals: { min: 0, max: 1 },
  async run(ctx: CommandContext): Promise<number> {
    const [target] = ctx.positionals;
    const resource =
      target === undefined ? undefined : { ...parseTarget(target), namespace: ctx.defaultNamespace() };
    const sa = ctx.values['service-account'];
    if (typeof sa === 'string' && !/^[^/]+\/[^/]+$/.test(sa)) {
      throw new UsageError(`--service-account must be NAMESPACE/NAME, not "${sa}"`);
    }
    const kube = ctx.kube();
    const csiDriver = typeof ctx.values['csi-driver'] === 'string' ? ctx.values['csi-driver'] : undefined;
    // Loaded on the first login only: --no-login and one-resource runs need none of it.
    let logins: Promise<VaultLogins> | undefined;
    const login: LoginProbe = async (auth, namespace, csi) => {
      logins ??= operatorLease(kube).then((lease) =>
        VaultLogins.load(kube, {
          operatorNamespace: lease?.metadata.namespace ?? 'default',
          clock: ctx.io.clock,
          csiDriver,
        }),
      );
      const l = await logins;
      const consumer = { namespace, vaultAuthRef: auth };
      if (!csi) return { policies: (await l.login(consumer, ctx.io.signal)).session.policies };
      const advice = (err: unknown) => loginAdvice(err, namespace);
      const { access, identity } = await l.loginAsCsi(consumer, csi.spec, ctx.io.signal, advice);
      return { policies: access.session.policies, identity };
    };
    let checks: Check[];
    try {
      checks = await runDoctor(
        kube,
        {
          namespace: ctx.namespace(),
          serviceAccount: typeof sa === 'string' ? sa : undefined,
          csiDriver,
          ...(resource ? { resource } : {}),
          ...(ctx.values['no-login'] === true ? {} : { login }),
        },
        ctx.io.clock.now(),
      );
    } finally {
      await (await logins?.catch(() => undefined))?.close();
    }
    const format = ctx.global.output;
    ctx.io.stdout.write(format === 'table' ? renderChecks(checks, ctx.paint) : serialize(checks, format));
    return checks.some((c) => !c.ok) ? 1 : 0;
  },
};
