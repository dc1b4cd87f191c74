// The Helm chart (deploy/chart), rendered and linted by the real helm binary (stack/peers.sh builds
// it from its Go module on first use and caches it). Guards: the chart's crds/ never drift from
// deploy/crds, its RBAC never drifts from deploy/rbac.yaml (which the e2e suite runs the operator
// under), and every flag it passes is one the operator parses.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import type { VaultAuthSpec } from '../../../src/api/v1beta1/vaultauth.ts';
import type { VaultConnectionSpec } from '../../../src/api/v1beta1/vaultconnection.ts';
import { validateVaultAuth, validateVaultConnection } from '../../../src/api/validate.ts';
import {
  CHART,
  type Container,
  cliFlags,
  flagsOf,
  lint,
  NAMESPACE,
  type Obj,
  one,
  type PodSpec,
  ROOT,
  readDocs,
  render,
  renderFails,
  skip,
  type Workload,
} from './helm.ts';

type Deployment = Workload & { spec: { replicas: number } };

// ---------------------------------------------------------------------------------------------
// crds/: a byte-for-byte copy of deploy/crds (the generator's output), never a second source.

describe('chart crds/', () => {
  it('is identical to deploy/crds, byte for byte', () => {
    const want = readdirSync(join(ROOT, 'deploy', 'crds')).sort();
    const got = readdirSync(join(CHART, 'crds')).sort();
    const fix = 'run: node src/cli/crdgen.ts --out deploy/chart/crds';
    assert.deepEqual(got, want, `deploy/chart/crds file set differs from deploy/crds; ${fix}`);
    for (const f of want) {
      const a = readFileSync(join(ROOT, 'deploy', 'crds', f));
      const b = readFileSync(join(CHART, 'crds', f));
      assert.ok(a.equals(b), `deploy/chart/crds/${f} differs from deploy/crds/${f}; ${fix}`);
    }
  });
});

const manager = (objs: Obj[]): { pod: PodSpec; c: Container; d: Deployment } => {
  const d = one<Deployment>(objs, 'Deployment');
  const pod = d.spec.template.spec;
  assert.equal(pod.containers.length, 1);
  return { d, pod, c: pod.containers[0]! };
};

const podLabelsOf = (objs: Obj[]): Record<string, string> =>
  one<Deployment>(objs, 'Deployment').spec.template.metadata.labels;

const OPERATOR_FLAGS = cliFlags('operator.ts');

describe('helm chart', { skip }, () => {
  it('reads the operator flags table', () => {
    for (const f of ['leader-elect', 'metrics-bind-address', 'log-level', 'client-cache-size']) {
      assert.ok(OPERATOR_FLAGS.has(f), f);
    }
  });

  describe('default values', () => {
    const objs = skip ? [] : render();

    it('renders only the operator, its RBAC and the metrics Service', () => {
      assert.deepEqual(objs.map((o) => o.kind).sort(), [
        'ClusterRole',
        'ClusterRoleBinding',
        'Deployment',
        'Role',
        'RoleBinding',
        'Service',
        'ServiceAccount',
      ]);
      for (const o of objs) {
        if (o.kind !== 'ClusterRole' && o.kind !== 'ClusterRoleBinding') {
          assert.equal(o.metadata.namespace, NAMESPACE, `${o.kind} namespace`);
        }
      }
    });

    it('RBAC is exactly deploy/rbac.yaml (labels aside)', () => {
      const want = readDocs('deploy', 'rbac.yaml');
      const rbacKinds = ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'];
      assert.deepEqual(want.map((o) => o.kind).sort(), [...rbacKinds].sort());
      for (const kind of rbacKinds) {
        const got = structuredClone(one(objs, kind));
        delete got.metadata.labels;
        assert.deepEqual(got, one(want, kind), kind);
      }
    });

    it('Deployment: one replica, leader election on, hardened security context', () => {
      const { d, pod, c } = manager(objs);
      assert.equal(d.spec.replicas, 1);
      assert.equal(pod.serviceAccountName, one(objs, 'ServiceAccount').metadata.name);
      assert.equal(pod.terminationGracePeriodSeconds, 120);
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.equal(pod.securityContext.runAsUser, 65532);
      assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
      assert.deepEqual(c.securityContext, {
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      assert.deepEqual(c.resources, {
        requests: { cpu: '10m', memory: '64Mi' },
        limits: { cpu: '500m', memory: '128Mi' },
      });
      assert.equal(c.image, 'ferry:0.1.0');
    });

    it("security contexts mean what they mean in VSO: podSecurityContext the pod's, securityContext the container's", () => {
      // A VSO values file: helm merges it over the defaults, so each key must land in its own context.
      const vso = render({
        controller: { podSecurityContext: { fsGroup: 1000 }, securityContext: { runAsUser: 4242 } },
      });
      const { pod, c } = manager(vso);
      assert.equal(pod.securityContext.fsGroup, 1000);
      assert.equal(c.securityContext.runAsUser, 4242);
      assert.equal(c.securityContext.fsGroup, undefined);
      assert.equal(pod.securityContext.allowPrivilegeEscalation, undefined);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    });

    it('probes hit /healthz and /readyz on the health-probe port, metrics on the metrics port', () => {
      const { c } = manager(objs);
      const flags = flagsOf(c.args);
      const port = (name: string) => c.ports.find((p) => p.name === name)?.containerPort;
      assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'health' });
      assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'health' });
      assert.equal(flags.get('health-probe-bind-address'), `:${port('health')}`);
      assert.equal(flags.get('metrics-bind-address'), `:${port('metrics')}`);
      assert.equal(port('health'), 8081);
      assert.equal(port('metrics'), 8080);
      const svc = one(objs, 'Service') as Obj & {
        spec: { selector: Record<string, string>; ports: { targetPort: string }[] };
      };
      assert.deepEqual(
        svc.spec.ports.map((p) => p.targetPort),
        ['metrics'],
      );
      const podLabels = podLabelsOf(objs);
      for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(podLabels[k], v, k);
    });

    it('passes the default flags, each one the operator knows', () => {
      const { c } = manager(objs);
      assert.deepEqual(c.args, [
        '--leader-elect=true',
        '--metrics-bind-address=:8080',
        '--health-probe-bind-address=:8081',
        '--log-level=info',
        '--global-transformation-options=',
        '--global-vault-auth-options=allow-default-globals',
        '--connection-health-period=60',
      ]);
      for (const f of flagsOf(c.args).keys())
        assert.ok(OPERATOR_FLAGS.has(f), `unknown operator flag --${f}`);
    });

    it('OPERATOR_NAMESPACE from the downward API; podinfo (uid) at /var/run/podinfo', () => {
      const { pod, c } = manager(objs);
      const env = c.env.find((e) => e.name === 'OPERATOR_NAMESPACE');
      assert.deepEqual(env?.valueFrom, { fieldRef: { fieldPath: 'metadata.namespace' } });
      // The image's default V8 flags (docs/memory.md), kept when the chart sets the env.
      assert.equal(
        c.env.find((e) => e.name === 'NODE_OPTIONS')?.value,
        '--max-semi-space-size=4 --max-old-space-size-percentage=50',
      );
      const podinfo = pod.volumes.find((v) => v.name === 'podinfo');
      assert.ok(podinfo?.downwardAPI);
      assert.ok(
        podinfo.downwardAPI.items.some((i) => i.path === 'uid' && i.fieldRef.fieldPath === 'metadata.uid'),
      );
      assert.deepEqual(
        c.volumeMounts.find((m) => m.name === 'podinfo'),
        { name: 'podinfo', mountPath: '/var/run/podinfo', readOnly: true },
      );
      // A read-only root filesystem still gets a writable /tmp.
      assert.ok(c.volumeMounts.some((m) => m.mountPath === '/tmp'));
    });
  });

  it('maps values to operator flags and scheduling fields', () => {
    const objs = render({
      controller: {
        replicas: 2,
        nodeSelector: { 'kubernetes.io/os': 'linux' },
        tolerations: [{ key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' }],
        affinity: { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [] } },
        manager: {
          image: { repository: 'registry.example/ferry', tag: 'v9', pullPolicy: 'Always' },
          maxConcurrentReconciles: 7,
          clientCache: { cacheSize: 123 },
          globalTransformationOptions: { excludeRaw: true },
          globalVaultAuthOptions: { allowDefaultGlobals: false },
          logging: { level: 'debug-extended' },
          connectionHealthPeriod: 30,
          extraArgs: ['--kubeconfig=/etc/kube/config'],
        },
      },
    });
    const { d, pod, c } = manager(objs);
    assert.equal(d.spec.replicas, 2);
    assert.equal(c.image, 'registry.example/ferry:v9');
    const flags = flagsOf(c.args);
    assert.deepEqual(Object.fromEntries(flags), {
      'leader-elect': 'true',
      'metrics-bind-address': ':8080',
      'health-probe-bind-address': ':8081',
      'log-level': 'trace',
      'global-transformation-options': 'exclude-raw',
      'global-vault-auth-options': '',
      'max-concurrent-reconciles': '7',
      'client-cache-size': '123',
      'connection-health-period': '30',
      kubeconfig: '/etc/kube/config',
    });
    for (const f of flags.keys()) assert.ok(OPERATOR_FLAGS.has(f), `unknown operator flag --${f}`);
    assert.deepEqual(pod.nodeSelector, { 'kubernetes.io/os': 'linux' });
    assert.deepEqual(pod.tolerations, [{ key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' }]);
    assert.deepEqual(pod.affinity, {
      podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [] },
    });
  });

  it('auditStream: flags, the container port and the Service Vault connects to', () => {
    const objs = render({ auditStream: { enabled: true, allowedPeers: ['10.0.0.0/8', '10.1.2.3'] } });
    const { c } = manager(objs);
    const flags = flagsOf(c.args);
    assert.equal(flags.get('audit-stream-bind-address'), ':8090');
    assert.equal(flags.get('audit-stream-allowed-peers'), '10.0.0.0/8,10.1.2.3');
    assert.equal(flags.get('audit-stream-max-connections'), '8');
    for (const f of flags.keys()) assert.ok(OPERATOR_FLAGS.has(f), `unknown operator flag --${f}`);
    const svc = objs.find((o) => o.kind === 'Service' && o.metadata.name?.endsWith('-audit-stream')) as
      | { spec: { ports: { port: number; targetPort: string }[] } }
      | undefined;
    assert.deepEqual(
      svc?.spec.ports.map((p) => [p.port, p.targetPort]),
      [[8090, 'audit-stream']],
    );
    assert.ok(!render().some((o) => o.metadata.name?.endsWith('-audit-stream')));
  });

  it('names follow the release; bindings point at the rendered ServiceAccount and roles', () => {
    const objs = render(undefined, { release: 'sec', namespace: 'ops' });
    const sa = one(objs, 'ServiceAccount');
    assert.equal(sa.metadata.name, 'sec-ferry-operator');
    for (const [binding, role] of [
      ['ClusterRoleBinding', 'ClusterRole'],
      ['RoleBinding', 'Role'],
    ] as const) {
      const b = one(objs, binding) as Obj & {
        roleRef: { kind: string; name: string };
        subjects: { kind: string; name: string; namespace: string }[];
      };
      assert.deepEqual(b.roleRef, {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: role,
        name: one(objs, role).metadata.name,
      });
      assert.deepEqual(b.subjects, [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: 'ops' }]);
    }
    assert.equal(one(objs, 'Role').metadata.namespace, 'ops');
  });

  describe('defaultVaultConnection and defaultAuthMethod', () => {
    const values = {
      defaultVaultConnection: {
        enabled: true,
        address: 'https://vault.vault.svc:8200',
        caCertSecret: 'vault-ca',
        tlsServerName: 'vault.vault.svc',
        headers: { 'X-Team': 'platform' },
      },
      defaultAuthMethod: {
        enabled: true,
        namespace: 'team-a',
        allowedNamespaces: ['*'],
        mount: 'k8s',
        kubernetes: { role: 'ferry', serviceAccount: 'vault-auth', tokenAudiences: ['vault'] },
        params: { p: 'v' },
      },
    };
    const objs = skip ? [] : render(values);
    const crdSchema = (plural: string) => {
      const crd = parse(
        readFileSync(join(CHART, 'crds', `secrets.hashicorp.com_${plural}.yaml`), 'utf8'),
      ) as {
        spec: { versions: { schema: { openAPIV3Schema: object } }[] };
      };
      // The schema the apiserver enforces for the kind, as the chart installs it.
      return new Ajv({ strict: false, allErrors: true, formats: { int64: true, 'date-time': true } }).compile(
        crd.spec.versions[0]!.schema.openAPIV3Schema,
      );
    };

    it('renders VaultConnection "default" in the release namespace, valid against its CRD', () => {
      const vc = one(objs, 'VaultConnection') as Obj & { spec: VaultConnectionSpec };
      assert.equal(vc.apiVersion, 'secrets.hashicorp.com/v1beta1');
      assert.deepEqual([vc.metadata.name, vc.metadata.namespace], ['default', NAMESPACE]);
      assert.deepEqual(vc.spec, {
        address: 'https://vault.vault.svc:8200',
        skipTLSVerify: false,
        caCertSecretRef: 'vault-ca',
        tlsServerName: 'vault.vault.svc',
        headers: { 'X-Team': 'platform' },
      });
      const v = crdSchema('vaultconnections');
      assert.ok(v(vc), JSON.stringify(v.errors));
      assert.deepEqual(validateVaultConnection(vc.spec), []);
    });

    it('renders VaultAuth "default" in the release namespace, valid against its CRD', () => {
      const va = one(objs, 'VaultAuth') as Obj & { spec: VaultAuthSpec };
      assert.deepEqual([va.metadata.name, va.metadata.namespace], ['default', NAMESPACE]);
      assert.deepEqual(va.spec, {
        namespace: 'team-a',
        allowedNamespaces: ['*'],
        method: 'kubernetes',
        mount: 'k8s',
        kubernetes: { role: 'ferry', serviceAccount: 'vault-auth', audiences: ['vault'] },
        params: { p: 'v' },
      });
      const v = crdSchema('vaultauths');
      assert.ok(v(va), JSON.stringify(v.errors));
      assert.deepEqual(validateVaultAuth(va.spec), []);
    });

    it('renders other methods and a VaultAuthGlobal reference', () => {
      const objs = render({
        defaultAuthMethod: {
          enabled: true,
          method: 'appRole',
          mount: 'approle',
          appRole: { roleId: 'r-1', secretRef: 'approle-secret' },
          vaultAuthGlobalRef: { enabled: true, name: 'global', allowDefault: true },
        },
      });
      const va = one(objs, 'VaultAuth') as Obj & { spec: VaultAuthSpec };
      assert.deepEqual(va.spec, {
        method: 'appRole',
        mount: 'approle',
        appRole: { roleId: 'r-1', secretRef: 'approle-secret' },
        vaultAuthGlobalRef: {
          name: 'global',
          allowDefault: true,
          mergeStrategy: { headers: 'none', params: 'none' },
        },
      });
      const v = crdSchema('vaultauths');
      assert.ok(v(va), JSON.stringify(v.errors));
    });

    it('helm lint passes with them enabled', () => {
      lint(values);
    });
  });

  it('optional ServiceMonitor and PodDisruptionBudget select the operator pods', () => {
    const objs = render({
      telemetry: { serviceMonitor: { enabled: true, selectors: { release: 'prometheus' } } },
      controller: { podDisruptionBudget: { enabled: true, minAvailable: 1 } },
    });
    const podLabels = podLabelsOf(objs);
    const sm = one(objs, 'ServiceMonitor') as Obj & {
      spec: {
        selector: { matchLabels: Record<string, string> };
        endpoints: { port: string; path: string }[];
      };
    };
    assert.equal(sm.metadata.labels?.release, 'prometheus');
    assert.deepEqual(
      sm.spec.endpoints.map((e) => [e.port, e.path]),
      [['metrics', '/metrics']],
    );
    const svc = one(objs, 'Service') as Obj & { metadata: { labels: Record<string, string> } };
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels))
      assert.equal(svc.metadata.labels[k], v, k);
    const pdb = one(objs, 'PodDisruptionBudget') as Obj & {
      spec: {
        minAvailable?: number;
        maxUnavailable?: number;
        selector: { matchLabels: Record<string, string> };
      };
    };
    assert.equal(pdb.spec.minAvailable, 1);
    assert.equal(pdb.spec.maxUnavailable, undefined);
    for (const [k, v] of Object.entries(pdb.spec.selector.matchLabels)) assert.equal(podLabels[k], v, k);
  });

  it('refuses inconsistent values', () => {
    assert.match(
      renderFails({ controller: { replicas: 2, manager: { leaderElect: false } } }),
      /leaderElect/,
    );
    assert.match(renderFails({ controller: { manager: { logging: { level: 'loud' } } } }), /logging\.level/);
    assert.match(
      renderFails({ controller: { manager: { maxConcurrentReconciles: 0 } } }),
      /positive integer/,
    );
    assert.match(renderFails({ defaultVaultConnection: { enabled: true } }), /address is required/);
    assert.match(
      renderFails({ defaultAuthMethod: { enabled: true, method: 'ldap' } }),
      /defaultAuthMethod\/method/,
    );
  });

  it('helm lint --strict passes with default values', () => {
    lint();
  });
});
