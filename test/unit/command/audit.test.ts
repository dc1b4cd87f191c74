import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type AuditReport, renderAudit } from '../../../src/command/audit.ts';
import {
  type AuditSubject,
  covers,
  defaultEnvironmentMap,
  engineProbes,
  folderProbes,
  judgePath,
  judgePaths,
  namespaceEnvironment,
  namespaceSegments,
  parseEnvironmentMap,
  parsePolicy,
  pathEnvironment,
  pathUses,
  policyProbes,
  type World,
} from '../../../src/command/audit-rules.ts';

const envs = defaultEnvironmentMap();

function world(usedBy: Record<string, string[]>, namespaces: string[] = []): World {
  return {
    usedBy: new Map(Object.entries(usedBy).map(([p, nss]) => [p, new Set(nss)])),
    namespaces: new Set([...namespaces, ...Object.values(usedBy).flat()]),
    environments: envs,
  };
}

const shopDev: AuditSubject = {
  namespace: 'shop-dev',
  environment: 'dev',
  uses: [{ path: 'kv/data/shop-dev/app', need: 'read' }],
};

describe('ferry audit: paths a resource uses', () => {
  it('builds them as the operator requests them', () => {
    assert.deepEqual(pathUses('VaultStaticSecret', { mount: 'kv/', path: '/app/config', type: 'kv-v2' }), [
      { path: 'kv/data/app/config', need: 'read' },
    ]);
    assert.deepEqual(pathUses('VaultStaticSecret', { mount: 'kv1', path: 'app', type: 'kv-v1' }), [
      { path: 'kv1/app', need: 'read' },
    ]);
    assert.deepEqual(pathUses('VaultDynamicSecret', { mount: 'db', path: 'creds/app' }), [
      { path: 'db/creds/app', need: 'read' },
    ]);
    assert.deepEqual(
      pathUses('VaultDynamicSecret', { mount: 'aws', path: 'sts/app', params: { ttl: '1h' } }),
      [{ path: 'aws/sts/app', need: 'update' }],
    );
    assert.deepEqual(pathUses('VaultPKISecret', { mount: 'pki', role: 'web', issuerRef: 'r1' }), [
      { path: 'pki/issuer/r1/issue/web', need: 'update' },
    ]);
    assert.deepEqual(
      pathUses('CSISecrets', {
        secrets: {
          vaultStaticSecrets: [{ mount: 'kv', path: 'a', type: 'kv-v2' }],
          vaultAppRoleSecretIDs: [{ mount: 'approle', role: 'r', syncRoleID: true }],
          vaultPKISecrets: [{ mount: 'pki', role: 'web' }],
        },
      }).map((u) => `${u.need} ${u.path}`),
      [
        'read kv/data/a',
        'update pki/issue/web',
        'update auth/approle/role/r/secret-id',
        'read auth/approle/role/r/role-id',
      ],
    );
  });

  it('leaves out what the operator would refuse to request', () => {
    assert.deepEqual(pathUses('VaultStaticSecret', { mount: '', path: 'x', type: 'kv-v2' }), []);
    assert.deepEqual(pathUses('VaultPKISecret', { mount: 'pki' }), []);
    assert.deepEqual(pathUses('VaultAuth', { method: 'kubernetes' }), []);
  });
});

describe('ferry audit: environments', () => {
  it('takes a namespace environment from an explicit mapping, a glob, then its name', () => {
    const { map, problems } = parseEnvironmentMap({
      namespaces: { legacy: 'prod', 'team-*': 'staging' },
    });
    assert.deepEqual(problems, []);
    assert.equal(namespaceEnvironment('legacy', map), 'prod');
    assert.equal(namespaceEnvironment('team-x-dev', map), 'staging');
    assert.equal(namespaceEnvironment('shop-production', map), 'prod');
    assert.equal(namespaceEnvironment('payments', map), undefined);
    // The glob is anchored and its dots literal.
    assert.equal(
      namespaceEnvironment('x.team-a', parseEnvironmentMap({ namespaces: { 'team-*': 'a' } }).map),
      undefined,
    );
  });

  it('takes a path environment from the first segment with a word that names one', () => {
    assert.equal(pathEnvironment('kv/data/prod/db', envs), 'prod');
    assert.equal(pathEnvironment('kv-staging/data/db', envs), 'staging');
    assert.equal(pathEnvironment('kv/data/app_qa/x', envs), 'test');
    assert.equal(pathEnvironment('kv/data/product/db', envs), undefined, 'a word, not a prefix');
  });

  it('lets a file replace the words and reports what it cannot use', () => {
    const { map } = parseEnvironmentMap({ environments: { live: ['p'] } });
    assert.equal(pathEnvironment('kv/data/p/x', map), 'live');
    assert.equal(pathEnvironment('kv/data/prod/x', map), undefined);
    assert.deepEqual(parseEnvironmentMap({ namespace: {}, environments: { a: 'b' } }).problems, [
      'unknown key "namespace" (namespaces, environments)',
      'environments.a: must be a list of words',
    ]);
    assert.deepEqual(parseEnvironmentMap([]).problems, ['must be a mapping']);
    assert.deepEqual(parseEnvironmentMap(null).problems, []);
  });
});

describe('ferry audit: what to ask Vault', () => {
  it('probes the root and the namespace and environment folders of each KV mount', () => {
    assert.deepEqual(
      folderProbes(
        [
          { mount: 'kv', version: 2 },
          { mount: 'old', version: 1 },
        ],
        ['prod'],
      ),
      ['kv/data/', 'kv/metadata/', 'kv/data/prod/', 'kv/metadata/prod/', 'old/', 'old/prod/'],
    );
  });

  it('probes the folders other engines issue credentials from', () => {
    assert.deepEqual(engineProbes(['db']), [
      'db/',
      'db/creds/',
      'db/static-creds/',
      'db/sts/',
      'db/issue/',
      'db/sign/',
    ]);
  });

  it('reads HCL and JSON policies', () => {
    const hcl = `# comment\npath "kv/data/prod/*" {\n  capabilities = ["read", "list"]\n}\npath "kv/data/+/app" { capabilities = ["update"] }`;
    assert.deepEqual(parsePolicy(hcl), [
      { path: 'kv/data/prod/*', capabilities: ['read', 'list'] },
      { path: 'kv/data/+/app', capabilities: ['update'] },
    ]);
    assert.deepEqual(parsePolicy('{"path": {"kv/x": {"capabilities": ["read"]}}}'), [
      { path: 'kv/x', capabilities: ['read'] },
    ]);
    assert.deepEqual(parsePolicy('{not json'), []);
  });

  it('turns policy globs into concrete paths, bounded', () => {
    assert.deepEqual(policyProbes('kv/data/prod/*', ['a']), ['kv/data/prod/']);
    assert.deepEqual(policyProbes('kv/data/+/app', ['a', 'b']), ['kv/data/a/app', 'kv/data/b/app']);
    assert.equal(policyProbes('+/+/+', ['a', 'b', 'c', 'd', 'e'], 10).length, 10);
    assert.deepEqual(policyProbes('*', ['a']), []);
    assert.deepEqual(policyProbes('kv/+/x', ['+']), ['kv/+/x'], 'a word is not expanded again');
  });

  it('a folder covers exactly the paths under it', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z]{1,4}(\/[a-z]{1,4}){0,3}$/),
        fc.stringMatching(/^[a-z/]{0,12}$/),
        (base, rest) => {
          assert.equal(covers(`${base}/`, `${base}/${rest}`), true);
          assert.equal(covers(base, `${base}/${rest}`), false);
          assert.equal(covers(base, base), true);
          assert.equal(covers(`${base}/`, `${base}x/${rest}`), false);
        },
      ),
    );
  });

  it('attributes a path to a namespace by its mount or first folder only', () => {
    assert.deepEqual(namespaceSegments('kv/data/team-a/app'), ['kv', 'team-a']);
    assert.deepEqual(namespaceSegments('team-a/db/creds'), ['team-a', 'db']);
    assert.deepEqual(namespaceSegments('kv/metadata/'), ['kv']);
  });
});

describe('ferry audit: findings', () => {
  it('passes the paths its own resources use', () => {
    const r = judgePath(
      shopDev,
      'kv/data/shop-dev/app',
      ['read'],
      world({ 'kv/data/shop-dev/app': ['shop-dev'] }),
    );
    assert.equal(r.own, true);
    assert.equal(r.finding, undefined);
  });

  it('flags another namespace, by its resources or its folder', () => {
    const w = world({ 'kv/data/shop-dev/app': ['shop-dev'], 'kv/data/billing/db': ['billing-dev'] }, [
      'billing',
    ]);
    assert.equal(judgePath(shopDev, 'kv/data/billing/db', ['read'], w).finding?.rule, 'other-namespace');
    const folder = judgePath(shopDev, 'kv/data/billing/', ['read', 'update'], w);
    assert.deepEqual(folder.namespaces, ['billing', 'billing-dev']);
    assert.equal(folder.finding?.severity, 'error');
    assert.match(
      folder.finding?.message ?? '',
      /^read and write on paths of namespaces billing, billing-dev$/,
    );
  });

  it("flags another environment's paths, and says nothing of environments it cannot tell", () => {
    const w = world({});
    const prod = judgePath(shopDev, 'kv/data/prod/', ['list'], w);
    assert.deepEqual([prod.finding?.rule, prod.environments], ['other-environment', ['prod']]);
    assert.match(prod.finding?.message ?? '', /^list on prod paths from a dev namespace$/);
    const unknown = judgePath({ ...shopDev, environment: undefined }, 'kv/data/prod/', ['read'], w);
    assert.equal(unknown.finding?.rule, 'beyond-own');
    assert.equal(judgePath(shopDev, 'kv/data/dev/', ['read'], w).finding?.rule, 'beyond-own');
  });

  it('reports its own folder as info, and write on a path it only reads as a warning', () => {
    const w = world({ 'kv/data/shop-dev/app': ['shop-dev'] });
    assert.deepEqual(judgePath(shopDev, 'kv/data/shop-dev/', ['read'], w).finding?.severity, 'info');
    const write = judgePath(shopDev, 'kv/data/shop-dev/app', ['read', 'update', 'delete'], w);
    assert.deepEqual([write.finding?.rule, write.finding?.severity], ['write', 'warning']);
    assert.match(write.finding?.message ?? '', /update, delete/);
    assert.equal(judgePath(shopDev, 'kv/data/shop-dev/', ['read', 'update'], w).finding?.rule, 'beyond-own');
  });

  it('folds paths into the granted folder above them, keeping its own paths', () => {
    const w = world({ 'kv/data/shop-dev/app': ['shop-dev'], 'kv/data/billing/db': ['billing'] });
    const reports = judgePaths(
      shopDev,
      new Map([
        ['kv/data/', ['read']],
        ['kv/data/billing/', ['read']],
        ['kv/data/billing/db', ['read']],
        ['kv/data/prod/', ['read']],
        ['kv/data/shop-dev/app', ['read']],
        ['kv/metadata/billing/', ['deny']],
        ['kv/data/shop-dev/', ['read', 'update']],
      ]),
      w,
    );
    assert.deepEqual(
      reports.map((r) => [r.path, r.finding?.rule, r.includes]),
      [
        ['kv/data/', 'other-namespace', ['kv/data/billing/', 'kv/data/billing/db', 'kv/data/prod/']],
        ['kv/data/shop-dev/', 'beyond-own', undefined],
        ['kv/data/shop-dev/app', undefined, undefined],
      ],
    );
    assert.deepEqual(reports[0]?.environments, ['prod']);
  });
});

describe('ferry audit: output', () => {
  const noPaint = (_s: string, t: string): string => t;
  it('one section per login, findings with the fix, a failed login with its own', () => {
    const report: AuditReport = {
      units: [
        {
          namespace: 'shop-dev',
          auth: 'shop-dev/auth',
          environment: 'dev',
          login: 'ok',
          policies: [
            { name: 'default' },
            { name: 'shop', rules: [{ path: 'kv/data/prod/*', capabilities: ['read'] }] },
          ],
          mounts: ['kv'],
          paths: [
            judgePath(shopDev, 'kv/data/prod/', ['read'], world({})),
            judgePath(
              shopDev,
              'kv/data/shop-dev/app',
              ['read'],
              world({ 'kv/data/shop-dev/app': ['shop-dev'] }),
            ),
          ],
        },
        {
          namespace: 'other',
          auth: 'other/auth',
          login: 'failed',
          error: 'Vault PUT auth/kubernetes/login failed with status 400: invalid role name "x"',
          fix: 'create the role',
          policies: [],
          mounts: [],
          paths: [],
        },
      ],
      summary: { errors: 1, warnings: 0, info: 0, loginFailures: 1 },
    };
    const out = renderAudit(report, noPaint);
    assert.match(
      out,
      /^shop-dev \(dev\) through VaultAuth shop-dev\/auth\n {2}policies: default, shop \(1 rules\); mounts: kv\n/,
    );
    assert.match(
      out,
      /\n {2}kv\/data\/prod\/ +read +error other-environment: read on prod paths from a dev namespace\n/,
    );
    assert.match(
      out,
      /\n {2}kv\/data\/shop-dev\/app +read +used by its resources\n {2}fix: narrow the policies/,
    );
    assert.match(
      out,
      /\nother through VaultAuth other\/auth\n {2}login failed: .*invalid role name "x"\n {2}fix: create the role\n/,
    );
    assert.match(out, /\n1 error\(s\), 0 warning\(s\), 0 info, 1 login failure\(s\) in 2 login\(s\)\n$/);
  });
});
