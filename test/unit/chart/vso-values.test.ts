// A team moving from VSO keeps its Helm values: Ferry's chart renders VSO 1.4.1's own values.yaml
// unchanged, and test/fixtures/chart/vso-values.yaml (every VSO key, set as a team would) with each
// key's effect checked here; keys with no meaning in Ferry are accepted and change nothing
// (deploy/chart/README.md says why). values.schema.json refuses anything else by name.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import type { VaultAuthSpec } from '../../../src/api/v1beta1/vaultauth.ts';
import { validateVaultAuth } from '../../../src/api/validate.ts';
import {
  cliFlags,
  flagsOf,
  lint,
  NAMESPACE,
  type Obj,
  one,
  ROOT,
  render,
  renderFails,
  skip,
  type Workload,
} from './helm.ts';

const FIXTURE = join(ROOT, 'test', 'fixtures', 'chart', 'vso-values.yaml');
// VSO's chart, as the peers directory beside the repository holds it (the release tarball).
const VSO_TARBALL = join(ROOT, '..', 'shared', 'peers', 'vault-secrets-operator-1.4.1.tar.gz');
const vsoValues = (): string | undefined => {
  if (!existsSync(VSO_TARBALL)) return undefined;
  const r = spawnSync('tar', ['-xzOf', VSO_TARBALL, 'vault-secrets-operator-1.4.1/chart/values.yaml'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
};

/** Dotted paths of the leaves of a values tree (an empty map or list is a leaf). */
function leaves(v: unknown, path = ''): string[] {
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
    return Object.entries(v).flatMap(([k, c]) => leaves(c, path ? `${path}.${k}` : k));
  }
  return [path];
}

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
type Role = Obj & { rules: Rule[]; aggregationRule?: { clusterRoleSelectors: { matchLabels: object }[] } };
type Job = Obj & {
  spec: { backoffLimit: number; activeDeadlineSeconds?: number; template: Workload['spec']['template'] };
};

describe("VSO's values on Ferry's chart", { skip }, () => {
  it("renders and lints VSO 1.4.1's own values.yaml unchanged", (t) => {
    const text = vsoValues();
    if (text === undefined) return t.skip(`${VSO_TARBALL} not present`);
    const objs = render(parse(text), { hooks: true });
    assert.ok(objs.some((o) => o.kind === 'Deployment'));
    lint(parse(text));
  });

  it('the fixture sets every key of VSO 1.4.1 values.yaml', (t) => {
    const text = vsoValues();
    if (text === undefined) return t.skip(`${VSO_TARBALL} not present`);
    const fixture = leaves(parse(readFileSync(FIXTURE, 'utf8')));
    // A key the fixture fills in (a map VSO leaves empty) counts as set.
    const missing = leaves(parse(text)).filter((k) => !fixture.some((f) => f === k || f.startsWith(`${k}.`)));
    assert.deepEqual(missing, []);
  });

  describe('a realistic VSO values file', () => {
    const objs = skip ? [] : render(undefined, { hooks: true, valuesFile: FIXTURE });
    const d = skip ? undefined : one<Workload>(objs, 'Deployment');
    const pod = d?.spec.template.spec;
    const c = pod?.containers[0];

    it('Deployment: replicas, strategy and every scheduling field', () => {
      assert.ok(d && pod);
      assert.equal(d.spec.replicas, 2);
      assert.deepEqual(d.spec.strategy, {
        type: 'RollingUpdate',
        rollingUpdate: { maxSurge: 1, maxUnavailable: 0 },
      });
      assert.deepEqual(pod.hostAliases, [{ ip: '10.0.0.10', hostnames: ['vault.internal.example'] }]);
      assert.equal(
        (pod.topologySpreadConstraints as { topologyKey: string }[])[0]?.topologyKey,
        'topology.kubernetes.io/zone',
      );
      assert.deepEqual(pod.nodeSelector, { 'node-role.example/platform': 'true' });
      assert.deepEqual(pod.tolerations, [{ key: 'platform', operator: 'Exists', effect: 'NoSchedule' }]);
      assert.ok((pod.affinity as { podAntiAffinity?: unknown }).podAntiAffinity);
      assert.equal(pod.priorityClassName, 'platform-critical');
      assert.deepEqual(pod.imagePullSecrets, [{ name: 'registry-creds' }]);
      assert.equal(pod.terminationGracePeriodSeconds, 90);
      assert.equal(d.spec.template.metadata.labels.team, 'platform');
      assert.equal(d.spec.template.metadata.annotations?.['prometheus.io/scrape'], 'false');
      // VSO's pod and container contexts land where they do in VSO, over Ferry's hardened defaults.
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.equal(pod.securityContext.allowPrivilegeEscalation, undefined);
      assert.equal(c?.securityContext.allowPrivilegeEscalation, false);
    });

    it('manager flags: persistence, cache, reconciles, kube client QPS/burst, logging; each one the operator knows', () => {
      assert.ok(c);
      assert.equal(c.image, 'registry.example/ferry:0.1.0');
      assert.equal(c.imagePullPolicy, 'Always');
      const flags = flagsOf(c.args);
      assert.deepEqual(Object.fromEntries(flags), {
        'leader-elect': 'true',
        'metrics-bind-address': ':8080',
        'health-probe-bind-address': ':8081',
        'log-level': 'debug',
        'global-transformation-options': 'exclude-raw',
        'global-vault-auth-options': '',
        'max-concurrent-reconciles': '50',
        'client-cache-size': '5000',
        'connection-health-period': '60',
        'client-cache-persistence-model': 'direct-encrypted',
        'kube-client-qps': '40.5',
        'kube-client-burst': '80',
        'backoff-initial-interval': '10s',
        'backoff-max-interval': '120s',
        'backoff-max-elapsed-time': '0s',
        'backoff-multiplier': '2.00',
        'backoff-randomization-factor': '0.25',
        kubeconfig: '/etc/kube/config',
      });
      const known = cliFlags('operator.ts');
      for (const f of flags.keys()) assert.ok(known.has(f), `unknown operator flag --${f}`);
      const env = Object.fromEntries(c.env.map((e) => [e.name, e.value]));
      assert.equal(env.KUBERNETES_CLUSTER_DOMAIN, 'corp.internal');
      assert.equal(env.HTTPS_PROXY, 'http://proxy.example:3128');
      assert.ok(pod?.volumes.some((v) => v.name === 'vault-ca'));
      assert.deepEqual(c.resources, {
        limits: { cpu: '1', memory: '256Mi' },
        requests: { cpu: '50m', memory: '128Mi' },
      });
    });

    it('direct-encrypted persistence: the Transit VaultAuth the operator looks for, valid for its CRD', () => {
      const va = one(objs, 'VaultAuth', 'ferry-default-transit-auth') as Obj & { spec: VaultAuthSpec };
      assert.equal(va.metadata.namespace, NAMESPACE);
      assert.equal(va.metadata.labels?.cacheStorageEncryption, 'true');
      assert.deepEqual(va.spec, {
        vaultConnectionRef: 'default',
        namespace: 'platform',
        method: 'kubernetes',
        mount: 'kubernetes',
        // Empty serviceAccount: the operator's own, as VSO.
        kubernetes: { role: 'vso-operator', serviceAccount: 'ferry-operator', audiences: ['vault'] },
        params: { aud: 'vault' },
        headers: { 'X-Cache': 'transit' },
        storageEncryption: { keyName: 'vso-client-cache', mount: 'transit' },
      });
      assert.deepEqual(validateVaultAuth(va.spec), []);
    });

    it('clusterRoleAggregation: per-kind roles, aggregated, and into view/edit', () => {
      const roles = objs.filter((o): o is Role => o.kind === 'ClusterRole');
      const viewers = roles.filter(
        (r) => r.metadata.labels?.['vso.hashicorp.com/aggregate-to-viewer'] === 'true',
      );
      assert.equal(viewers.length, 10);
      const vss = one<Role>(roles, 'ClusterRole', 'ferry-vaultstaticsecret-viewer-role');
      assert.deepEqual(vss.rules, [
        {
          apiGroups: ['secrets.hashicorp.com'],
          resources: ['vaultstaticsecrets'],
          verbs: ['get', 'list', 'watch'],
        },
        { apiGroups: ['secrets.hashicorp.com'], resources: ['vaultstaticsecrets/status'], verbs: ['get'] },
      ]);
      assert.ok(
        one<Role>(roles, 'ClusterRole', 'ferry-csisecrets-viewer-role').rules[0]?.resources.includes(
          'csisecrets',
        ),
      );
      const viewer = one<Role>(roles, 'ClusterRole', 'ferry-aggregate-role-viewer');
      assert.equal(viewer.metadata.labels?.['rbac.authorization.k8s.io/aggregate-to-view'], 'true');
      assert.deepEqual(viewer.aggregationRule?.clusterRoleSelectors, [
        { matchLabels: { 'vso.hashicorp.com/aggregate-to-viewer': 'true' } },
      ]);
      const editor = one<Role>(roles, 'ClusterRole', 'ferry-aggregate-role-editor');
      assert.equal(editor.metadata.labels?.['rbac.authorization.k8s.io/aggregate-to-edit'], 'true');
      assert.deepEqual(editor.aggregationRule?.clusterRoleSelectors, [
        { matchLabels: { 'vso.hashicorp.com/role-instance': 'vaultstaticsecret-editor-role' } },
        { matchLabels: { 'vso.hashicorp.com/role-instance': 'vaultdynamicsecret-editor-role' } },
      ]);
      assert.deepEqual(
        one<Role>(roles, 'ClusterRole', 'ferry-vaultdynamicsecret-editor-role').rules[0]?.verbs,
        ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
      );
    });

    it('hooks: pre-delete finalizer cleanup bounded by preDeleteHookTimeoutSeconds; pre-upgrade CRD apply', () => {
      const hookFlags = cliFlags('chart-hook.ts');
      const pdcc = one<Job>(objs, 'Job', 'pdcc-ferry');
      assert.equal(pdcc.metadata.annotations?.['helm.sh/hook'], 'pre-delete');
      const pc = pdcc.spec.template.spec.containers[0]!;
      assert.deepEqual(pc.command, [
        'node',
        'src/cli/chart-hook.ts',
        'uninstall',
        '--timeout=45s',
        '--log-level=debug',
      ]);
      assert.equal(pdcc.spec.template.spec.serviceAccountName, 'ferry-operator');
      // The operator's environment (here a proxy), so the hook reaches the API server as it does.
      assert.deepEqual(pc.env, [{ name: 'HTTPS_PROXY', value: 'http://proxy.example:3128' }]);
      assert.deepEqual(pc.resources, {
        limits: { cpu: '200m', memory: '96Mi' },
        requests: { cpu: '20m', memory: '48Mi' },
      });
      const up = one<Job>(objs, 'Job', 'ferry-upgrade-crds');
      assert.equal(up.metadata.annotations?.['helm.sh/hook'], 'pre-upgrade');
      assert.equal(up.spec.backoffLimit, 3);
      const uc = up.spec.template.spec.containers[0]!;
      assert.deepEqual(uc.command?.slice(2), ['upgrade-crds', '--timeout=2m', '--log-level=debug']);
      for (const a of [...(pc.command ?? []), ...(uc.command ?? [])].filter((x) => x.startsWith('--'))) {
        assert.ok(hookFlags.has(/^--([a-z-]+)=/.exec(a)![1]!), a);
      }
      assert.equal(up.spec.template.spec.serviceAccountName, 'ferry-upgrade-crds');
      assert.deepEqual(one<Role>(objs, 'ClusterRole', 'ferry-upgrade-crds').rules, [
        {
          apiGroups: ['apiextensions.k8s.io'],
          resources: ['customresourcedefinitions'],
          verbs: ['create', 'get', 'patch'],
        },
      ]);
      assert.equal(
        one(objs, 'ServiceAccount', 'ferry-upgrade-crds').metadata.annotations?.['helm.sh/hook'],
        'pre-upgrade',
      );
    });

    it('accepted-and-ignored keys change nothing: one metrics port, no proxy sidecar, no lock or log-format flags', () => {
      const svc = one(objs, 'Service') as Obj & { spec: { ports: { name: string; port: number }[] } };
      assert.deepEqual(
        svc.spec.ports.map((p) => [p.name, p.port]),
        [['metrics', 8080]],
      );
      assert.equal(pod?.containers.length, 1);
      assert.ok(!c?.args.some((a) => /num-locks|zap|time-encoding|stacktrace/.test(a)));
      assert.ok(!objs.some((o) => o.kind === 'ConfigMap' || o.kind === 'Pod'));
      // The rest of VSO's values still take effect.
      assert.ok(objs.some((o) => o.kind === 'ServiceMonitor'));
      assert.ok(objs.some((o) => o.kind === 'PodDisruptionBudget'));
      assert.ok(objs.some((o) => o.kind === 'DaemonSet'));
      assert.ok(objs.some((o) => o.kind === 'VaultConnection'));
    });
  });

  it('values.schema.json refuses unknown and misspelt keys by name, and bad enum values', () => {
    assert.match(renderFails({ controller: { replica: 2 } }), /additional properties 'replica' not allowed/);
    assert.match(renderFails({ controler: {} }), /'controler'/);
    assert.match(
      renderFails({ controller: { manager: { clientCache: { persistenceModel: 'direct' } } } }),
      /persistenceModel/,
    );
    assert.match(renderFails({ controller: { manager: { kubeClient: { qps: 'fast' } } } }), /qps/);
    assert.match(
      renderFails({ hooks: { upgradeCRDs: { executionTimeout: '30 seconds' } } }),
      /executionTimeout/,
    );
    assert.match(
      renderFails({ controller: { rbac: { clusterRoleAggregation: { viewerRoles: ['VaultSecret'] } } } }),
      /viewerRoles: "VaultSecret"/,
    );
    assert.match(
      renderFails({ controller: { manager: { clientCache: { persistenceModel: 'direct-encrypted' } } } }),
      /storageEncryption\.kubernetes\.role is required/,
    );
  });
});
