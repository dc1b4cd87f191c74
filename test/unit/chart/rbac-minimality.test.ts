// RBAC minimality: every (group, resource, verb) that deploy/rbac.yaml and deploy/csi/rbac.yaml grant
// (the chart renders exactly these, chart.test.ts and csi.test.ts) is one the code uses, with the
// call that uses it found in src. A grant without a use fails ("granted but unused: drop it"), and
// so does a use whose call is gone. Missing grants show up in the end-to-end suite, which runs both
// components under these files against the real API server.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type Obj, ROOT, readDocs } from './helm.ts';

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
  {
    resource: '/secrets',
    verbs: ['get'],
    at: ['src/delivery/vault-access.ts', /getRequired<Secret>\(client, Secrets/],
  },
  { resource: '/events', verbs: ['create', 'patch'], at: ['src/k8s/events.ts', /client\.patch\(Events/] },
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
