// RBAC minimality: every (group, resource, verb) that deploy/rbac.yaml and deploy/csi/rbac.yaml grant
// (the chart renders exactly these, chart.test.ts and csi.test.ts) is one the code uses, with the
// call that uses it found in src. A grant without a use fails ("granted but unused: drop it"), and
// so does a use whose call is gone. Missing grants show up in the end-to-end suite, which runs both
// components under these files against the real API server.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type Obj, ROOT, readDocs, render, skip } from './helm.ts';

interface Use {
  /** `group/resource` ('' for the core group, `resource/subresource` for a subresource). */
  resource: string;
  verbs: string[];
  /** Where the code makes the call: a file under src/ and a pattern in it. */
  at: [file: string, call: RegExp];
}

const CRDS = [
  'vaultconnections',
  'vaultauths',
  'vaultauthglobals',
  'vaultstaticsecrets',
  'vaultdynamicsecrets',
  'vaultpkisecrets',
  'secrettransformations',
  'csisecrets',
];
const informerOf = (kinds: string[], at: Use['at']): Use[] =>
  kinds.map((k) => ({ resource: `secrets.hashicorp.com/${k}`, verbs: ['list', 'watch'], at }));

/** Logging in as a VaultAuth's ServiceAccount: its UID keys the session, TokenRequest mints the JWT. */
const TOKEN_REQUEST_LOGIN: Use[] = [
  {
    resource: '/serviceaccounts',
    verbs: ['get'],
    at: ['src/delivery/vault-access.ts', /getRequired<KubeObject>\(this\.#deps\.client, ServiceAccounts/],
  },
  {
    resource: '/serviceaccounts/token',
    verbs: ['create'],
    at: ['src/delivery/vault-access.ts', /client\.createToken\(/],
  },
];

const OPERATOR: Use[] = [
  {
    resource: '/secrets',
    verbs: ['get'],
    at: ['src/controllers/shared/destination-writer.ts', /getIfExists<Secret>\(Secrets/],
  },
  {
    resource: '/secrets',
    verbs: ['list', 'watch'],
    at: ['src/controllers/setup.ts', /informer<KubeObject>\(Secrets/],
  },
  {
    resource: '/secrets',
    verbs: ['create', 'update'],
    at: ['src/controllers/shared/destination.ts', /client\.replace<Secret>\(Secrets/],
  },
  { resource: '/secrets', verbs: ['delete'], at: ['src/vault/persistence.ts', /client\.delete\(Secrets/] },
  ...TOKEN_REQUEST_LOGIN,
  { resource: '/events', verbs: ['create', 'patch'], at: ['src/k8s/events.ts', /client\.patch\(Events/] },
  // Rollout restarts patch the pod template; nothing reads the workload first.
  ...['apps/deployments', 'apps/statefulsets', 'apps/daemonsets', 'argoproj.io/rollouts'].map((resource) => ({
    resource,
    verbs: ['patch'],
    at: ['src/controllers/shared/restart.ts', /ctx\.client\.patch\(patch\.resource/] as Use['at'],
  })),
  ...informerOf(CRDS, ['src/controllers/setup.ts', /manager\.informer<T>\(spec\.resource/]),
  // VSO's HCP kinds: Ferry reconciles neither, but `ferry doctor` requires watch on every kind of the API.
  ...informerOf(
    ['hcpauths', 'hcpvaultsecretsapps'],
    ['src/command/doctor.ts', /verb: 'watch', group: GROUP/],
  ),
  // Finalizers are JSON patches of the object; status is a merge patch of the subresource.
  ...CRDS.map((k) => ({
    resource: `secrets.hashicorp.com/${k}`,
    verbs: ['patch'],
    at: ['src/controllers/shared/status.ts', /ops, 'json'\)/] as Use['at'],
  })),
  ...['hcpauths', 'hcpvaultsecretsapps'].map((k) => ({
    resource: `secrets.hashicorp.com/${k}`,
    verbs: ['patch'],
    at: ['src/controllers/shared/status.ts', /ops, 'json'\)/] as Use['at'],
  })),
  {
    resource: 'secrets.hashicorp.com/*/status',
    verbs: ['patch'],
    at: ['src/controllers/shared/status.ts', /subresource: 'status'/],
  },
  {
    resource: 'coordination.k8s.io/leases',
    verbs: ['get', 'create', 'update'],
    at: ['src/runtime/leader.ts', /client\.replace<Lease>\(Leases/],
  },
];

const CSI_DRIVER: Use[] = [
  ...informerOf(
    ['csisecrets', 'vaultauths', 'vaultauthglobals', 'vaultconnections', 'secrettransformations'],
    ['src/delivery/setup.ts', /manager\.informer<VaultConnection>\(VaultConnections\)/],
  ),
  {
    resource: 'secrets.hashicorp.com/csisecrets',
    verbs: ['get'],
    at: ['src/csi/publisher.ts', /getIfExists\(CSISecretsResource/],
  },
  { resource: '/pods', verbs: ['get'], at: ['src/csi/publisher.ts', /getIfExists<Pod>\(Pods/] },
  { resource: '/pods', verbs: ['list', 'watch'], at: ['src/csi/driver.ts', /informer<Pod>\(Pods/] },
  {
    resource: 'authentication.k8s.io/tokenreviews',
    verbs: ['create'],
    at: ['src/csi/publisher.ts', /\/tokenreviews'/],
  },
  { resource: '/events', verbs: ['create', 'patch'], at: ['src/k8s/events.ts', /client\.patch\(Events/] },
];

/** What each CSI opt-in (chart value → driver flag) adds, and the call that needs it. Without the
 * opt-in the driver refuses the call itself (VaultAccessDeps.withheld) with the fix in the error. */
const CSI_OPT_INS: { value: string; flag: string; uses: Use[] }[] = [
  {
    value: 'tokenRequestLogin',
    flag: '--token-request-login',
    uses: TOKEN_REQUEST_LOGIN,
  },
  {
    value: 'readSecrets',
    flag: '--read-secrets',
    uses: [
      {
        resource: '/secrets',
        verbs: ['get'],
        at: ['src/delivery/vault-access.ts', /getRequired<Secret>\(client, Secrets/],
      },
    ],
  },
];

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };

/** `group/resource verb` for every rule of every Role and ClusterRole in the file. */
function grants(objs: Obj[]): string[] {
  const out = new Set<string>();
  for (const o of objs.filter((x) => x.kind === 'ClusterRole' || x.kind === 'Role')) {
    for (const r of (o as unknown as { rules: Rule[] }).rules) {
      for (const g of r.apiGroups)
        for (const res of r.resources) for (const v of r.verbs) out.add(`${g}/${res} ${v}`);
    }
  }
  return [...out].sort();
}

const used = (uses: Use[]): string[] =>
  [...new Set(uses.flatMap((u) => u.verbs.map((v) => `${u.resource} ${v}`)))].sort();

for (const [name, file, uses] of [
  ['operator', ['deploy', 'rbac.yaml'], OPERATOR],
  ['CSI driver', ['deploy', 'csi', 'rbac.yaml'], CSI_DRIVER],
] as const) {
  describe(`${name} RBAC is what the code uses`, () => {
    it('grants nothing unused and everything used', () => {
      const granted = grants(readDocs(...file));
      const needed = used([...uses]);
      assert.deepEqual(
        granted.filter((g) => !needed.includes(g)),
        [],
        'granted but unused: drop the grant',
      );
      assert.deepEqual(
        needed.filter((n) => !granted.includes(n)),
        [],
        'used but not granted',
      );
    });

    it('every use is a call found in src', () => {
      for (const u of uses) {
        const [path, call] = u.at;
        assert.match(readFileSync(join(ROOT, path), 'utf8'), call, `${u.resource} ${u.verbs}: ${path}`);
      }
    });
  });
}

describe('CSI driver RBAC opt-ins (chart csi.driver.*)', { skip }, () => {
  const role = (objs: Obj[]) =>
    objs.filter((o) => o.kind === 'ClusterRole' && o.metadata.name?.endsWith('-csi-driver-role'));
  const argsOf = (objs: Obj[]): string[] => {
    const ds = objs.find((o) => o.kind === 'DaemonSet') as unknown as {
      spec: { template: { spec: { containers: { name: string; args?: string[] }[] } } };
    };
    return ds.spec.template.spec.containers.find((c) => c.name === 'driver')?.args ?? [];
  };
  const base = skip ? [] : render({ csi: { enabled: true } });

  it('by default: exactly deploy/csi/rbac.yaml, and no opt-in flag', () => {
    assert.deepEqual(grants(role(base)), grants(readDocs('deploy', 'csi', 'rbac.yaml')));
    for (const o of CSI_OPT_INS) assert.ok(!argsOf(base).includes(o.flag), o.flag);
  });

  it('watchPods=false drops pods list and watch, which only the pod informer needs, and passes --no-pod-watch', () => {
    const objs = render({ csi: { enabled: true, driver: { watchPods: false } } });
    const dropped = grants(role(base)).filter((g) => !grants(role(objs)).includes(g));
    assert.deepEqual(dropped, ['/pods list', '/pods watch']);
    assert.ok(argsOf(objs).includes('--no-pod-watch'));
    assert.match(readFileSync(join(ROOT, 'src/csi/driver.ts'), 'utf8'), /cfg\.watchPods === false/);
  });

  for (const o of CSI_OPT_INS) {
    it(`${o.value}=true adds exactly the grants its calls need, and ${o.flag}`, () => {
      const objs = render({ csi: { enabled: true, driver: { [o.value]: true } } });
      const added = grants(role(objs)).filter((g) => !grants(role(base)).includes(g));
      assert.deepEqual(added, used(o.uses));
      assert.ok(argsOf(objs).includes(o.flag));
      for (const u of o.uses) assert.match(readFileSync(join(ROOT, u.at[0]), 'utf8'), u.at[1]);
    });
  }
});
