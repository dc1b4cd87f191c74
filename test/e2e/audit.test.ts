// `ferry audit` against the real stack, run as users run it: a least-privilege role passes (exit 0),
// an over-permissioned one that reaches a prod folder and another team's namespace is flagged
// (exit 1). The audit only asks capabilities: a canary in the reachable prod secret never shows.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuditReport } from '../../src/command/audit.ts';
import { DEFAULT_DRIVER_NAME } from '../../src/consts/labels.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { CSIDrivers } from '../../src/k8s/resources.ts';
import { csiSecretsManifest } from '../../stack/lib/csi.ts';
import {
  adminClient,
  apply,
  assertNotIn,
  canary,
  ensureNamespace,
  kubernetesVaultAuth,
  kvSecret,
  tenant,
  VaultAdmin,
} from '../../stack/lib/fixtures.ts';
import { ferry as run, type StackEnv, uniqueName, useStack } from './harness.ts';

describe('ferry audit', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let teamA: string;
  let teamB: string;
  const canaries: string[] = [];

  const ferry = (...args: string[]) => run(env, ...args);

  before(async () => {
    env = await useStack();
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    // Both "dev" by their names; the audit's default environment mapping reads it from there.
    teamA = uniqueName('team-a-dev');
    teamB = uniqueName('team-b-dev');
    for (const ns of [teamA, teamB]) {
      await tenant(env, kube, vault, ns);
      await apply(kube, kvSecret(ns, 'app'));
    }
    await vault.kvPut('kvv2', `prod/${teamA}/db`, { password: canary('audit-prod', canaries) });
  });
  after(async () => {
    await vault.close();
    await kube.close();
  });

  it('a least-privilege role passes with exit code 0', async () => {
    const r = await ferry('audit', '-n', teamA, '-o', 'json');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout) as AuditReport;
    assert.deepEqual(
      report.units.map((u) => [u.namespace, u.auth, u.environment, u.login]),
      [[teamA, `${teamA}/auth`, 'dev', 'ok']],
    );
    const paths = report.units[0]?.paths ?? [];
    assert.ok(paths.some((p) => p.path === `kvv2/data/${teamA}/app` && p.own && !p.finding));
    // The tenant's policy globs its own folder: reported, not a finding that fails the audit.
    assert.equal(paths.find((p) => p.path === `kvv2/data/${teamA}/`)?.finding?.rule, 'own-folder');
    assert.equal(report.summary.errors + report.summary.warnings, 0);
    const table = await ferry('audit', '-n', teamA);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /no findings/);
  });

  it('a role reaching prod and another namespace is flagged with exit code 1, without reading a secret', async () => {
    await vault.policy(
      `wide-${teamA}`,
      [
        'path "kvv2/data/prod/*" { capabilities = ["read"] }',
        `path "kvv2/data/${teamB}/*" { capabilities = ["read", "update"] }`,
        'path "kvv2/metadata/*" { capabilities = ["list"] }',
        // Any credentials of a database engine nothing in the cluster uses.
        `path "db-${teamA}/creds/*" { capabilities = ["read"] }`,
        // Its own rules are readable: the audit shows them.
        `path "sys/policy/wide-${teamA}" { capabilities = ["read"] }`,
      ].join('\n'),
    );
    await vault.call('POST', `sys/mounts/db-${teamA}`, { type: 'database' });
    await vault.kubernetesRole(`wide-${teamA}`, {
      serviceAccount: 'app',
      namespace: teamA,
      policies: [`t-${teamA}`, `wide-${teamA}`],
    });
    await apply(kube, kubernetesVaultAuth(env, teamA, 'wide', { role: `wide-${teamA}` }));
    const r = await ferry('audit', '-n', teamA, '-o', 'json');
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout) as AuditReport;
    const wide = report.units.find((u) => u.auth === `${teamA}/wide`);
    assert.equal(wide?.login, 'ok');
    assert.deepEqual(
      wide?.policies.find((p) => p.name === `wide-${teamA}`)?.rules?.map((x) => x.path),
      [
        'kvv2/data/prod/*',
        `kvv2/data/${teamB}/*`,
        'kvv2/metadata/*',
        `db-${teamA}/creds/*`,
        `sys/policy/wide-${teamA}`,
      ],
    );
    const path = (p: string) => wide?.paths.find((x) => x.path === p);
    assert.equal(path('kvv2/data/prod/')?.finding?.rule, 'other-environment');
    // Found by listing the mount's metadata, folded into the folder whose glob grants it.
    assert.ok(path('kvv2/data/prod/')?.includes?.includes(`kvv2/data/prod/${teamA}/db`));
    assert.equal(path(`kvv2/data/${teamB}/`)?.finding?.rule, 'other-namespace');
    assert.match(path(`kvv2/data/${teamB}/`)?.finding?.message ?? '', /read and write on paths of namespace/);
    assert.deepEqual(path(`kvv2/data/${teamB}/`)?.includes, [`kvv2/data/${teamB}/app`]);
    assert.equal(path('kvv2/metadata/')?.finding?.severity, 'error');
    assert.ok(wide?.mounts.includes(`db-${teamA}`));
    assert.equal(path(`db-${teamA}/creds/`)?.finding?.rule, 'beyond-own');
    // The least-privilege VaultAuth beside it stays clean.
    const narrow = report.units.find((u) => u.auth === `${teamA}/auth`);
    assert.ok(
      narrow?.paths.every((p) => p.finding?.severity !== 'error' && p.finding?.severity !== 'warning'),
    );

    const table = await ferry('audit', '-n', teamA);
    assert.equal(table.code, 1);
    assert.match(table.stdout, new RegExp(`kvv2/data/${teamB}/\\s+read,update\\s+error other-namespace`));
    assert.match(table.stdout, /fix: narrow the policies/);
    assertNotIn(canaries, r.stdout + table.stdout + r.stderr, 'ferry audit output');

    // An explicit mapping: teamB counted as prod makes the other-namespace reach also cross-environment.
    const dir = mkdtempSync(join(tmpdir(), 'ferry-audit-'));
    const file = join(dir, 'environments.yaml');
    writeFileSync(file, `namespaces:\n  ${teamA}: dev\n  team-b-*: prod\n`);
    const mapped = JSON.parse(
      (await ferry('audit', '-n', teamA, '-o', 'json', '--environments', file)).stdout,
    ) as AuditReport;
    const b = mapped.units
      .find((u) => u.auth === `${teamA}/wide`)
      ?.paths.find((p) => p.path === `kvv2/data/${teamB}/`);
    assert.deepEqual(b?.environments, ['prod']);
    writeFileSync(file, 'namespace: {}\n');
    const bad = await ferry('audit', '-n', teamA, '--environments', file);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown key "namespace"/);
  });

  it('a VaultAuth whose role does not exist is a login failure with its fix, exit code 2', async () => {
    const ns = uniqueName('audit-broken');
    await tenant(env, kube, vault, ns);
    await apply(kube, kubernetesVaultAuth(env, ns, 'auth', { role: `missing-${ns}` }));
    const r = await ferry('audit', '-n', ns, '-o', 'json');
    assert.equal(r.code, 2, r.stdout + r.stderr);
    const unit = (JSON.parse(r.stdout) as AuditReport).units[0];
    assert.equal(unit?.login, 'failed');
    assert.match(unit?.fix ?? '', /role/);
  });
  it("a CSISecrets is checked as the CSI driver logs in: as its pods' ServiceAccounts, each refusal with its fix", async () => {
    const ns = uniqueName('team-c-dev');
    await tenant(env, kube, vault, ns); // the role accepts ServiceAccounts app and web
    await ensureNamespace(kube, ns, ['web', 'api']);
    const csi = (name: string, serviceAccountPattern: string) =>
      csiSecretsManifest(ns, name, {
        vaultAuthRef: { name: 'auth' },
        accessControl: { serviceAccountPattern },
        secrets: { vaultStaticSecrets: [{ mount: 'kvv2', path: `${ns}/app`, type: 'kv-v2' }] },
      });
    for (const [name, pattern] of [
      ['web', 'web'],
      ['api', 'a.i'],
      ['nobody', 'nobody-.*'],
    ] as const)
      await apply(kube, csi(name, pattern));
    const r = await ferry('audit', '-n', ns, '-o', 'json');
    assert.equal(r.code, 2, r.stdout + r.stderr);
    const units = (JSON.parse(r.stdout) as AuditReport).units;
    const as = (sa: string) => units.find((u) => u.identity?.startsWith(`ServiceAccount ${ns}/${sa} `));
    assert.equal(as('web')?.login, 'ok', JSON.stringify(units));
    assert.match(as('web')?.identity ?? '', /pod's ServiceAccount .* audience "vault"/);
    assert.equal(as('api')?.login, 'failed');
    assert.match(
      as('api')?.fix ?? '',
      new RegExp(`role t-${ns} must accept ServiceAccount ${ns}/api.*tokenRequestLogin=true`),
    );
    const none = units.find((u) => /needs a concrete one/.test(u.error ?? ''));
    assert.equal(none?.login, 'failed');
    assert.match(none?.error ?? '', /"nobody-\.\*".*needs a concrete one/);
    // doctor's login check for one CSISecrets is the same login.
    const d = await ferry('doctor', 'csisecrets/api', '-n', ns);
    assert.equal(d.code, 1, d.stdout + d.stderr);
    assert.match(d.stdout, new RegExp(`login .* as ServiceAccount ${ns}/api .*failed: .*403`));
    assert.match(d.stdout, /fix: the Vault role .* or set csi\.driver\.tokenRequestLogin=true/);
  });

  it('a CSISecrets whose VaultAuth wants an audience the CSIDriver does not request is flagged with the chart value', async (t) => {
    const driver = await kube.getIfExists(CSIDrivers, DEFAULT_DRIVER_NAME);
    if (!driver) return t.skip('no CSIDriver installed (the stack runs without the chart)');
    const ns = uniqueName('team-d-dev');
    await tenant(env, kube, vault, ns);
    await apply(kube, kubernetesVaultAuth(env, ns, 'sts', { role: `t-${ns}`, audiences: ['sts'] }));
    await apply(
      kube,
      csiSecretsManifest(ns, 'sts', {
        vaultAuthRef: { name: 'sts' },
        accessControl: { serviceAccountPattern: 'app' },
        secrets: { vaultStaticSecrets: [{ mount: 'kvv2', path: `${ns}/app`, type: 'kv-v2' }] },
      }),
    );
    const r = await ferry('audit', '-n', ns, '-o', 'json');
    assert.equal(r.code, 2, r.stdout + r.stderr);
    const unit = (JSON.parse(r.stdout) as AuditReport).units.find((u) => u.auth === `${ns}/sts`);
    assert.equal(unit?.login, 'failed', JSON.stringify(unit));
    assert.match(unit?.error ?? '', /requests no pod token for audience "sts"/);
    assert.match(unit?.fix ?? '', /add "sts" to the chart value csi\.driver\.tokenAudiences/);
  });
});
