// The chart's CSI node driver (csi.enabled), rendered and linted by the real helm binary. Guards:
// the CSIDriver, the DaemonSet and the RBAC rules never drift from the plain manifests in
// deploy/csi (the e2e suite runs the driver under deploy/csi/rbac.yaml), every flag passed to the
// driver is one it parses, and values land where VSO's chart puts them.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  type Container,
  cliFlags,
  flagsOf,
  lint,
  NAMESPACE,
  type Obj,
  one,
  ROOT,
  readDocs,
  render,
  renderFails,
  skip,
  type Workload,
} from './helm.ts';

const CSI_FLAGS = cliFlags('csi-driver.ts');
const PLAIN = {
  driver: () => one(readDocs('deploy', 'csi', 'csidriver.yaml'), 'CSIDriver'),
  daemonSet: () => one<Workload>(readDocs('deploy', 'csi', 'daemonset.yaml'), 'DaemonSet'),
  rbac: () => readDocs('deploy', 'csi', 'rbac.yaml'),
};
type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
type Binding = Obj & {
  roleRef: { apiGroup: string; kind: string; name: string };
  subjects: { kind: string; name: string; namespace: string }[];
};
type CSIDriver = Obj & {
  spec: { tokenRequests: { audience: string; expirationSeconds?: number }[] } & Record<string, unknown>;
};

const ON = { csi: { enabled: true } };
const isCsi = (o: Obj) => o.metadata.labels?.['app.kubernetes.io/component'] === 'csi-driver';
const daemonSet = (objs: Obj[]) => one<Workload>(objs, 'DaemonSet');
const container = (objs: Obj[], name: string): Container => {
  const c = daemonSet(objs).spec.template.spec.containers.find((x) => x.name === name);
  assert.ok(c, `container ${name}`);
  return c;
};
const hostPath = (objs: Obj[], volume: string) =>
  daemonSet(objs).spec.template.spec.volumes.find((v) => v.name === volume)?.hostPath?.path;

describe('chart CSI driver', { skip }, () => {
  it('reads the driver flags table', () => {
    for (const f of [
      'endpoint',
      'nodeid',
      'driver-name',
      'tmpfs-size',
      'log-level',
      'client-cache-size',
      'client-cache-namespace-quota',
    ]) {
      assert.ok(CSI_FLAGS.has(f), f);
    }
  });

  it('is not rendered by default', () => {
    const objs = render();
    assert.deepEqual(objs.filter(isCsi), []);
    assert.equal(objs.filter((o) => o.kind === 'CSIDriver' || o.kind === 'DaemonSet').length, 0);
  });

  describe('csi.enabled=true', () => {
    const base = skip ? [] : render();
    const objs = skip ? [] : render(ON);

    it('adds the CSIDriver, the DaemonSet, its ServiceAccount, ClusterRole and binding', () => {
      const added = objs.filter(isCsi);
      assert.equal(objs.length, base.length + added.length, 'only CSI objects are added');
      assert.deepEqual(added.map((o) => `${o.kind}/${o.metadata.name}`).sort(), [
        'CSIDriver/csi.vso.hashicorp.com',
        'ClusterRole/ferry-csi-driver-role',
        'ClusterRoleBinding/ferry-csi-driver-role',
        'DaemonSet/ferry-csi-node',
        'ServiceAccount/ferry-csi',
      ]);
      for (const o of added) {
        const namespaced = o.kind === 'DaemonSet' || o.kind === 'ServiceAccount';
        assert.equal(o.metadata.namespace, namespaced ? NAMESPACE : undefined, `${o.kind} namespace`);
      }
    });

    it('CSIDriver is exactly deploy/csi/csidriver.yaml (labels aside)', () => {
      const got = structuredClone(one(objs, 'CSIDriver'));
      const want = PLAIN.driver();
      delete got.metadata.labels;
      delete want.metadata.labels;
      assert.deepEqual(got, want);
    });

    it('ClusterRole rules are exactly deploy/csi/rbac.yaml', () => {
      const want = PLAIN.rbac();
      assert.deepEqual(want.map((o) => o.kind).sort(), [
        'ClusterRole',
        'ClusterRoleBinding',
        'ServiceAccount',
      ]);
      const rules = (o: Obj) => (o as Obj & { rules: Rule[] }).rules;
      assert.deepEqual(
        rules(one(objs, 'ClusterRole', 'ferry-csi-driver-role')),
        rules(one(want, 'ClusterRole')),
      );
    });

    it('binds the ClusterRole to the DaemonSet ServiceAccount, as the plain manifest does', () => {
      const sa = one(objs, 'ServiceAccount', 'ferry-csi');
      const role = one(objs, 'ClusterRole', 'ferry-csi-driver-role');
      const b = one<Binding>(objs, 'ClusterRoleBinding', 'ferry-csi-driver-role');
      assert.deepEqual(b.roleRef, {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'ClusterRole',
        name: role.metadata.name,
      });
      assert.deepEqual(b.subjects, [
        { kind: 'ServiceAccount', name: sa.metadata.name, namespace: NAMESPACE },
      ]);
      assert.equal(daemonSet(objs).spec.template.spec.serviceAccountName, sa.metadata.name);
      // The plain binding has the same shape.
      const plain = one<Binding>(PLAIN.rbac(), 'ClusterRoleBinding');
      assert.equal(plain.roleRef.name, one(PLAIN.rbac(), 'ClusterRole').metadata.name);
      assert.deepEqual(
        plain.subjects.map((s) => s.name),
        [one(PLAIN.rbac(), 'ServiceAccount').metadata.name],
      );
    });

    it('DaemonSet is deploy/csi/daemonset.yaml: containers, flags, probes, volumes, security, scheduling', () => {
      const got = structuredClone(daemonSet(objs));
      const want = PLAIN.daemonSet();
      // Differences by design: labels and selectors are the chart's, the ServiceAccount is named
      // after the release, pull policies come from values, and the chart passes --log-level.
      assert.equal(got.metadata.name, want.metadata.name);
      assert.equal(got.metadata.namespace, want.metadata.namespace);
      const pod = got.spec.template.spec;
      pod.serviceAccountName = want.spec.template.spec.serviceAccountName;
      for (const c of pod.containers) delete c.imagePullPolicy;
      const driver = pod.containers.find((c) => c.name === 'driver')!;
      assert.equal(driver.args.at(-1), '--log-level=info');
      driver.args.pop();
      assert.deepEqual(got.spec.updateStrategy, want.spec.updateStrategy);
      assert.deepEqual(pod, want.spec.template.spec);
      assert.deepEqual(got.spec.selector.matchLabels, got.spec.template.metadata.labels);
      assert.equal(
        got.spec.template.metadata.annotations?.['kubectl.kubernetes.io/default-container'],
        'driver',
      );
    });

    it('the driver is the operator image running the Ferry CLI csi-driver entry, with flags it knows', () => {
      const c = container(objs, 'driver');
      const manager = one<Workload>(objs, 'Deployment').spec.template.spec.containers[0]!;
      assert.equal(c.image, manager.image);
      assert.equal(c.image, 'ferry:0.1.0');
      assert.equal(c.imagePullPolicy, manager.imagePullPolicy);
      assert.deepEqual(c.command, ['node', 'src/cli/csi-driver.ts']);
      assert.ok(existsSync(join(ROOT, c.command![1]!)));
      for (const f of flagsOf(c.args).keys()) assert.ok(CSI_FLAGS.has(f), `unknown driver flag --${f}`);
    });

    it('pods are not selected by the operator Service or PodDisruptionBudget', () => {
      const withPdb = render({ ...ON, controller: { podDisruptionBudget: { enabled: true } } });
      const podLabels = daemonSet(withPdb).spec.template.metadata.labels;
      const svc = one(withPdb, 'Service') as Obj & { spec: { selector: Record<string, string> } };
      const pdb = one(withPdb, 'PodDisruptionBudget') as Obj & {
        spec: { selector: { matchLabels: Record<string, string> } };
      };
      for (const sel of [svc.spec.selector, pdb.spec.selector.matchLabels]) {
        assert.ok(
          Object.entries(sel).some(([k, v]) => podLabels[k] !== v),
          `selector ${JSON.stringify(sel)} matches the CSI pods`,
        );
      }
    });

    it('with the ServiceMonitor, a PodMonitor scrapes the driver pods on their health port', () => {
      const objs = render({
        ...ON,
        telemetry: { serviceMonitor: { enabled: true, selectors: { release: 'p' } } },
      });
      const pm = one(objs, 'PodMonitor') as Obj & {
        spec: {
          selector: { matchLabels: Record<string, string> };
          podMetricsEndpoints: { port: string; path: string }[];
        };
      };
      assert.equal(pm.metadata.labels?.release, 'p');
      const ds = daemonSet(objs);
      for (const [k, v] of Object.entries(pm.spec.selector.matchLabels))
        assert.equal(ds.spec.template.metadata.labels[k], v, k);
      const driver = ds.spec.template.spec.containers.find((c) => c.name === 'driver');
      const [endpoint] = pm.spec.podMetricsEndpoints;
      assert.deepEqual([endpoint?.port, endpoint?.path], ['health', '/metrics']);
      assert.ok(
        driver?.ports?.some((p) => p.name === 'health'),
        'the driver names the port',
      );
      assert.equal(
        render({ telemetry: { serviceMonitor: { enabled: true } } }).filter((o) => o.kind === 'PodMonitor')
          .length,
        0,
      );
    });

    it('helm lint --strict passes', () => lint(ON));
  });

  it('the driver image follows controller.manager.image unless csi.driver.image is set', () => {
    const controller = {
      manager: { image: { repository: 'registry.example/ferry', tag: 'v9', pullPolicy: 'Always' } },
    };
    let c = container(render({ ...ON, controller }), 'driver');
    assert.equal(c.image, 'registry.example/ferry:v9');
    assert.equal(c.imagePullPolicy, 'Always');
    c = container(
      render({ controller, csi: { enabled: true, driver: { image: { tag: 'v10' } } } }),
      'driver',
    );
    assert.equal(c.image, 'registry.example/ferry:v10');
    c = container(
      render({
        controller,
        csi: {
          enabled: true,
          driver: { image: { repository: 'mirror/ferry', tag: 'v11', pullPolicy: 'Never' } },
        },
      }),
      'driver',
    );
    assert.equal(c.image, 'mirror/ferry:v11');
    assert.equal(c.imagePullPolicy, 'Never');
  });

  it('maps values to the driver, its sidecars and the pod', () => {
    const resources = (cpu: string) => ({ requests: { cpu, memory: '1Mi' }, limits: { cpu, memory: '2Mi' } });
    const objs = render({
      csi: {
        enabled: true,
        securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
        hostAliases: [{ ip: '192.0.2.10', hostnames: ['vault.example.com'] }],
        nodeSelector: { 'node-role.example/secrets': 'true' },
        tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'secrets', effect: 'NoSchedule' }],
        affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [] } },
        priorityClassName: '',
        imagePullSecrets: [{ name: 'pull' }],
        extraLabels: { team: 'platform' },
        annotations: { 'example.com/note': 'csi' },
        updateStrategy: { type: 'OnDelete' },
        driver: {
          name: 'csi.ferry.example.com',
          extraEnv: [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=128' }],
          extraArgs: ['--registration-dir=/extra'],
          logging: { level: 'debug-extended' },
          tmpfsSize: '16m',
          maxVolumes: 40,
          refreshInterval: 0,
          clientCache: { size: 50, namespaceQuota: 5 },
          securityContext: { seLinuxOptions: { type: 'spc_t' } },
          resources: resources('300m'),
        },
        nodeDriverRegistrar: {
          image: { repository: 'mirror/registrar', tag: 'v2.15.0', pullPolicy: 'Always' },
          extraArgs: ['--v=5'],
          resources: resources('20m'),
        },
        livenessProbe: {
          image: { repository: 'mirror/livenessprobe', tag: 'v2.17.0' },
          extraArgs: ['-v=2'],
          resources: resources('30m'),
        },
      },
    });

    // The driver name reaches every place that must agree on it.
    const drv = one<CSIDriver>(objs, 'CSIDriver');
    assert.equal(drv.metadata.name, 'csi.ferry.example.com');
    assert.deepEqual(
      drv.spec.tokenRequests.map((t) => t.audience),
      ['csi.ferry.example.com', '', 'vault'],
    );
    const d = container(objs, 'driver');
    const flags = flagsOf(d.args);
    assert.equal(flags.get('driver-name'), 'csi.ferry.example.com');
    assert.equal(hostPath(objs, 'plugin-dir'), '/var/lib/kubelet/plugins/csi.ferry.example.com');
    assert.ok(
      container(objs, 'node-driver-registrar').args.includes(
        '--kubelet-registration-path=/var/lib/kubelet/plugins/csi.ferry.example.com/csi.sock',
      ),
    );

    // Driver container.
    assert.deepEqual(Object.fromEntries(flags), {
      endpoint: 'unix:///csi/csi.sock',
      nodeid: '$(KUBE_NODE_NAME)',
      'driver-name': 'csi.ferry.example.com',
      mount: 'tmpfs',
      'tmpfs-size': '16m',
      'max-volumes': '40',
      'target-root': '/var/lib/kubelet/pods',
      'state-dir': '/run/ferry-csi',
      'refresh-interval': '0',
      'client-cache-size': '50',
      'client-cache-namespace-quota': '5',
      'health-probe-bind-address': ':8081',
      'log-level': 'trace',
      'registration-dir': '/extra',
    });
    for (const f of flags.keys()) assert.ok(CSI_FLAGS.has(f), `unknown driver flag --${f}`);
    assert.deepEqual(
      d.env.map((e) => e.name),
      ['KUBE_NODE_NAME', 'OPERATOR_NAMESPACE', 'NODE_OPTIONS'],
    );
    assert.equal(d.env.at(-1)?.value, '--max-old-space-size=128');
    // Values merge into the defaults: the driver stays privileged.
    assert.deepEqual(d.securityContext, {
      privileged: true,
      runAsUser: 0,
      runAsGroup: 0,
      readOnlyRootFilesystem: true,
      seLinuxOptions: { type: 'spc_t' },
    });
    assert.deepEqual(d.resources, resources('300m'));

    // Sidecars.
    const reg = container(objs, 'node-driver-registrar');
    assert.equal(reg.image, 'mirror/registrar:v2.15.0');
    assert.equal(reg.imagePullPolicy, 'Always');
    assert.equal(reg.args.at(-1), '--v=5');
    assert.deepEqual(reg.resources, resources('20m'));
    const probe = container(objs, 'liveness-probe');
    assert.equal(probe.image, 'mirror/livenessprobe:v2.17.0');
    assert.equal(probe.imagePullPolicy, 'IfNotPresent');
    assert.equal(probe.args.at(-1), '-v=2');
    assert.deepEqual(probe.resources, resources('30m'));

    // Pod and DaemonSet.
    const ds = daemonSet(objs);
    const pod = ds.spec.template.spec;
    assert.deepEqual(pod.securityContext, { seccompProfile: { type: 'RuntimeDefault' } });
    assert.deepEqual(pod.hostAliases, [{ ip: '192.0.2.10', hostnames: ['vault.example.com'] }]);
    // Maps merge with the defaults (kubernetes.io/os stays); lists replace them.
    assert.deepEqual(pod.nodeSelector, { 'kubernetes.io/os': 'linux', 'node-role.example/secrets': 'true' });
    assert.deepEqual(pod.tolerations, [
      { key: 'dedicated', operator: 'Equal', value: 'secrets', effect: 'NoSchedule' },
    ]);
    assert.deepEqual(pod.affinity, { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [] } });
    assert.equal(pod.priorityClassName, undefined);
    assert.deepEqual(pod.imagePullSecrets, [{ name: 'pull' }]);
    assert.equal(ds.spec.template.metadata.labels.team, 'platform');
    assert.equal(ds.spec.template.metadata.annotations?.['example.com/note'], 'csi');
    assert.deepEqual(ds.spec.updateStrategy, { type: 'OnDelete' });
    for (const [k, v] of Object.entries(ds.spec.selector.matchLabels)) {
      assert.equal(ds.spec.template.metadata.labels[k], v, k);
    }
  });

  it('CSIDriver: kubelet issues the pod tokens the Vault login uses and republishes with fresh ones', () => {
    const spec = (values: object) => one<CSIDriver>(render(values), 'CSIDriver').spec;
    const def = spec(ON);
    assert.equal(def.requiresRepublish, true);
    assert.equal(def.podInfoOnMount, true);
    assert.deepEqual(def.tokenRequests, [
      { audience: 'csi.vso.hashicorp.com', expirationSeconds: 600 },
      { audience: '', expirationSeconds: 600 },
      { audience: 'vault', expirationSeconds: 600 },
    ]);
    // The driver's own audience is never listed twice (the API server refuses duplicates).
    const custom = spec({
      csi: {
        enabled: true,
        driver: { tokenAudiences: ['https://vault.example.com', 'csi.vso.hashicorp.com'] },
      },
    });
    assert.deepEqual(
      custom.tokenRequests.map((t) => t.audience),
      ['csi.vso.hashicorp.com', 'https://vault.example.com'],
    );
    assert.deepEqual(
      spec({ csi: { enabled: true, driver: { tokenAudiences: [] } } }).tokenRequests.map((t) => t.audience),
      ['csi.vso.hashicorp.com'],
    );
    assert.match(
      renderFails({ csi: { enabled: true, driver: { tokenAudiences: 'vault' } } }),
      /tokenAudiences/,
    );
  });

  it('accepts VSO values it has no use for (backoffOnSecretSourceError)', () => {
    const backoff = { initialInterval: '5s', maxInterval: '60s', maxElapsedTime: '0s', multiplier: 1.5 };
    const objs = render({ csi: { enabled: true, driver: { backoffOnSecretSourceError: backoff } } });
    assert.ok(!container(objs, 'driver').args.some((a) => a.includes('backoff')));
  });

  it('names follow the release', () => {
    const objs = render(ON, { release: 'sec', namespace: 'ops' });
    assert.deepEqual(
      objs
        .filter(isCsi)
        .map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`)
        .sort(),
      [
        'CSIDriver//csi.vso.hashicorp.com',
        'ClusterRole//sec-ferry-csi-driver-role',
        'ClusterRoleBinding//sec-ferry-csi-driver-role',
        'DaemonSet/ops/sec-ferry-csi-node',
        'ServiceAccount/ops/sec-ferry-csi',
      ],
    );
    const b = one<Binding>(objs, 'ClusterRoleBinding', 'sec-ferry-csi-driver-role');
    assert.deepEqual(b.subjects, [{ kind: 'ServiceAccount', name: 'sec-ferry-csi', namespace: 'ops' }]);
  });

  it('runs without sidecars: the driver registers with kubelet itself and answers its own liveness probe', () => {
    const values = {
      csi: {
        enabled: true,
        hostNetwork: true,
        kubeletRootDir: '/data/kubelet/',
        nodeDriverRegistrar: { enabled: false },
        livenessProbe: { enabled: false },
        driver: { stateDir: '/run/other', healthProbePort: 9100 },
      },
    };
    lint(values);
    const objs = render(values);
    const spec = daemonSet(objs).spec.template.spec as { hostNetwork?: boolean; containers: Container[] };
    assert.deepEqual(
      spec.containers.map((c) => c.name),
      ['driver'],
    );
    assert.equal(spec.hostNetwork, true);
    const driver = container(objs, 'driver');
    const flags = flagsOf(driver.args);
    for (const f of flags.keys()) assert.ok(CSI_FLAGS.has(f), `--${f} is a driver flag`);
    assert.equal(
      flags.get('kubelet-registration-path'),
      '/data/kubelet/plugins/csi.vso.hashicorp.com/csi.sock',
    );
    assert.equal(flags.get('registration-dir'), '/registration');
    assert.equal(flags.get('target-root'), '/data/kubelet/pods');
    assert.equal(flags.get('state-dir'), '/run/other');
    assert.equal(flags.get('health-probe-bind-address'), ':9100');
    assert.equal(driver.livenessProbe.httpGet.port, 'health');
    assert.deepEqual(driver.volumeMounts.map((m) => m.mountPath).sort(), [
      '/csi',
      '/data/kubelet/pods',
      '/registration',
      '/run/other',
    ]);
    assert.equal(hostPath(objs, 'registration-dir'), '/data/kubelet/plugins_registry');
    assert.equal(hostPath(objs, 'mountpoint-dir'), '/data/kubelet/pods');
    assert.match(
      renderFails({ csi: { enabled: true, kubeletRootDir: 'relative/dir' } }),
      /csi\.kubeletRootDir/,
    );
  });

  it('refuses inconsistent values', () => {
    const csi = (driver: unknown) => ({ csi: { enabled: true, driver } });
    assert.match(renderFails(csi({ name: 'Not_A_Name' })), /csi\.driver\.name/);
    assert.match(renderFails(csi({ name: `${'a'.repeat(60)}.example` })), /csi\.driver\.name/);
    assert.match(renderFails(csi({ tmpfsSize: '8 MB' })), /csi\.driver\.tmpfsSize/);
    assert.match(renderFails(csi({ refreshInterval: -1 })), /csi\.driver\.refreshInterval/);
    // The schema refuses it before the template does, naming the value as a JSON pointer.
    assert.match(renderFails(csi({ refreshInterval: 1.5 })), /csi\/driver\/refreshInterval/);
    assert.match(renderFails(csi({ logging: { level: 'loud' } })), /csi\.driver\.logging\.level/);
    assert.match(
      renderFails(csi({ clientCache: { namespaceQuota: 0 } })),
      /csi\.driver\.clientCache\.namespaceQuota/,
    );
    assert.match(renderFails(csi({ clientCache: { size: 0 } })), /csi\.driver\.clientCache\.size/);
    assert.match(renderFails(csi({ clientCache: { size: 'many' } })), /csi\/driver\/clientCache\/size/);
    // Not validated while the driver is off.
    render({ csi: { driver: { name: 'Not_A_Name' } } });
  });
});
