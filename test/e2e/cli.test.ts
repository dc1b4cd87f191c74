// The `ferry` command against the real stack, run as users run it (node src/cli/ferry.ts, the
// image's entry): status reads status and Events only (a canary proves no value is printed), status
// --watch re-renders on change and ends cleanly on SIGINT, lint --cluster finds what is missing,
// doctor finds a broken connection and a role Vault refuses (by the consumers' Events and its own
// login). audit.test.ts has `ferry audit`.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { VaultStaticSecrets } from '../../src/api/resources.ts';
import type { Check } from '../../src/command/doctor.ts';
import type { StatusRow } from '../../src/command/status.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { Secrets } from '../../src/k8s/resources.ts';
import type { Secret } from '../../src/k8s/types.ts';
import {
  adminClient,
  apply,
  assertNoLeak,
  assertNotIn,
  canary,
  deployment,
  eventually,
  kubernetesVaultAuth,
  kvSecret,
  type Manifest,
  tenant,
  VaultAdmin,
  vss,
} from '../../stack/lib/fixtures.ts';
import { ferry as run, type StackEnv, uniqueName, useStack } from './harness.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const NODE = process.execPath;
const FERRY = join(ROOT, 'src', 'cli', 'ferry.ts');

describe('ferry command', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  const canaries: string[] = [];

  const ferry = (...args: string[]) => run(env, ...args);

  before(async () => {
    env = await useStack();
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('cli');
    await tenant(env, kube, vault, ns);
  });
  after(async () => {
    await assertNoLeak(env, kube, ns, VaultStaticSecrets, canaries);
    await kube.close();
  });

  it('status lists synced and failing secrets, failing first, and never prints a value', async () => {
    const password = canary('status', canaries);
    await vault.kvPut('kvv2', `${ns}/app`, { password });
    await apply(
      kube,
      kvSecret(ns, 'app', {
        refreshAfter: '1m',
        destination: { name: 'app-creds', create: true },
      }),
    );
    // The tenant's policy does not reach this path: the sync fails with a Vault error.
    await apply(
      kube,
      kvSecret(ns, 'denied', {
        path: 'elsewhere/app',
        destination: { name: 'denied-creds', create: true },
      }),
    );
    await eventually('app synced', () => kube.getIfExists<Secret>(Secrets, 'app-creds', ns));
    const rows = await eventually('both rows settled', async () => {
      const r = await ferry('status', '-n', ns, '-o', 'json');
      const parsed = JSON.parse(r.stdout) as StatusRow[];
      const denied = parsed.find((x) => x.name === 'denied');
      const ok = parsed.find((x) => x.name === 'app');
      return r.code === 1 && denied?.ready === 'False' && ok?.ready === 'True' && ok.lastSync
        ? parsed
        : undefined;
    });
    assert.deepEqual(
      rows.map((r) => r.name),
      ['denied', 'app'],
    );
    const app = rows[1];
    assert.equal(app?.destination, 'app-creds');
    assert.equal(app?.source, `kvv2/${ns}/app`);
    assert.equal(app?.refresh, 'every 1m');
    assert.ok(Date.now() - Date.parse(app?.lastSync ?? '') < 5 * 60_000, 'last sync is recent');
    assert.notEqual(rows[0]?.reason, 'Ready');

    const table = await ferry('status', '-n', ns);
    assert.equal(table.code, 1);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(
      lines[0] ?? '',
      /^KIND\s+NAME\s+DESTINATION\s+SOURCE\s+LAST SYNC\s+NEXT REFRESH\s+EXPIRES\s+READY\s+REASON/,
    );
    assert.match(
      lines[1] ?? '',
      /^VaultStaticSecret\s+denied\s+denied-creds\s+kvv2\/elsewhere\/app\s+.*False/,
    );
    assert.match(
      lines[2] ?? '',
      /^VaultStaticSecret\s+app\s+app-creds\s+.*\d+[smh] ago\s+every 1m\s+-\s+True\s+/,
    );
    const yaml = await ferry('status', '-n', ns, '-o', 'yaml');
    assert.equal((parse(yaml.stdout) as StatusRow[]).length, 2);
    const all = await ferry('status', '-A', '-o', 'json');
    assert.ok((JSON.parse(all.stdout) as StatusRow[]).some((r) => r.namespace === ns && r.name === 'app'));
    for (const out of [rows, table, yaml, all])
      assertNotIn(canaries, JSON.stringify(out), 'ferry status output');
  });

  it('status --watch prints again when something changes and exits 0 on SIGINT', async () => {
    const child: ChildProcess = spawn(
      NODE,
      [FERRY, 'status', '--watch', '-n', ns, '-o', 'json', '--kubeconfig', env.kubeconfig],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await eventually('first rendering', async () => (out.includes('"name": "app"') ? true : undefined));
      const before = out.length;
      await vault.kvPut('kvv2', `${ns}/later`, { x: '1' });
      await apply(kube, kvSecret(ns, 'later'));
      await eventually('a new rendering with the new object', async () =>
        out.slice(before).includes('"name": "later"') ? true : undefined,
      );
    } finally {
      child.kill('SIGINT');
    }
    assert.equal(await exited, 0);
  });

  it('lint --cluster finds a missing create:false Secret, rollout target and VaultAuth, then passes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-lint-'));
    const file = join(dir, 'app.yaml');
    const manifest: Manifest = kvSecret(ns, 'preexisting', {
      path: `${ns}/app`,
      refreshAfter: '1m',
      destination: { name: 'made-by-hand', create: false },
      rolloutRestartTargets: [{ kind: 'Deployment', name: 'web' }],
    });
    const other: Manifest = vss(ns, 'other', {
      vaultAuthRef: 'ghost',
      mount: 'kvv2',
      type: 'kv-v2',
      path: `${ns}/app`,
      destination: { name: 'other', create: true },
    });
    writeFileSync(file, `${JSON.stringify(manifest)}\n---\n${JSON.stringify(other)}\n`);
    const first = await ferry('lint', '--cluster', file, '-o', 'json');
    assert.equal(first.code, 1, first.stderr);
    const findings = (
      JSON.parse(first.stdout) as { findings: { object: string; rule: string; field: string }[] }
    ).findings;
    assert.deepEqual(
      findings.map((f) => `${f.object} ${f.rule} ${f.field}`),
      [
        'VaultStaticSecret/preexisting create-false spec.destination.create',
        'VaultStaticSecret/preexisting rollout-target spec.rolloutRestartTargets[0].name',
        'VaultStaticSecret/other reference spec.vaultAuthRef',
      ],
    );
    await apply(kube, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'made-by-hand', namespace: ns },
    } as Manifest);
    await apply(kube, deployment(ns, 'web'));
    await apply(kube, kubernetesVaultAuth(env, ns, 'ghost', { role: `t-${ns}` }));
    const second = await ferry('lint', '--cluster', file);
    assert.equal(second.code, 0, second.stdout);
    assert.match(second.stdout, /no findings/);
  });

  it('doctor names a broken VaultConnection and a VaultAuth whose role Vault refuses, each with its fix', async () => {
    await apply(kube, {
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'VaultConnection',
      metadata: { name: 'nowhere', namespace: ns },
      spec: { address: 'http://127.0.0.1:1' },
    } as Manifest);
    await apply(kube, kubernetesVaultAuth(env, ns, 'no-role', { role: `missing-${ns}` }));
    await apply(
      kube,
      vss(ns, 'unauthorised', {
        vaultAuthRef: 'no-role',
        mount: 'kvv2',
        type: 'kv-v2',
        path: `${ns}/app`,
        destination: { name: 'unauthorised', create: true },
      }),
    );
    const checks = await eventually('doctor sees both', async () => {
      const sa = `${env.operatorNamespace}/${env.operatorServiceAccount}`;
      const r = await ferry('doctor', '-n', ns, '-o', 'json', '--service-account', sa);
      const parsed = JSON.parse(r.stdout || '[]') as Check[];
      const conn = parsed.find((c) => c.check === 'connection' && c.object === `${ns}/nowhere`);
      const auth = parsed.find((c) => c.check === 'auth' && c.object === `${ns}/no-role`);
      return r.code === 1 && conn?.fix?.includes('address') && auth && !auth.ok ? parsed : undefined;
    });
    const by = (object: string) => checks.find((c) => c.object === object);
    assert.match(by(`${ns}/nowhere`)?.fix ?? '', /VaultConnection address/);
    assert.match(by(`${ns}/no-role`)?.fix ?? '', /the Vault role does not exist/);
    // doctor's own login through each VaultAuth, as the operator makes it.
    const login = (object: string) => checks.find((c) => c.check === 'login' && c.object === object);
    assert.equal(login(`${ns}/no-role`)?.ok, false);
    assert.match(login(`${ns}/no-role`)?.fix ?? '', /the Vault role does not exist/);
    assert.match(login(`${ns}/auth`)?.message ?? '', new RegExp(`logged in to Vault: policies .*t-${ns}`));
    const noLogin = JSON.parse(
      (await ferry('doctor', '-n', ns, '-o', 'json', '--no-login')).stdout,
    ) as Check[];
    assert.ok(!noLogin.some((c) => c.check === 'login'), '--no-login skips the logins');
    assert.ok(checks.find((c) => c.check === 'crds')?.ok);
    assert.ok(checks.find((c) => c.check === 'rbac')?.ok, 'the operator has the permissions it needs');
    assert.ok(
      checks.find((c) => c.check === 'auth' && c.object === `${ns}/auth`)?.ok === false,
      'denied is still failing',
    );
    const table = await ferry('doctor', '-n', ns);
    assert.equal(table.code, 1);
    assert.match(
      table.stdout,
      /FAIL connection\s+\S+\/nowhere: http:\/\/127\.0\.0\.1:1: .*\n\s+fix: check the VaultConnection address/,
    );
    assertNotIn(canaries, table.stdout + JSON.stringify(checks), 'ferry doctor output');

    // One resource: its own failure explained, and the chain it depends on.
    const one = await ferry('doctor', 'vss/unauthorised', '-n', ns, '-o', 'json');
    assert.equal(one.code, 1);
    const chain = JSON.parse(one.stdout) as Check[];
    const own = chain.find((c) => c.check === 'resource' && c.object === `${ns}/unauthorised`);
    assert.equal(own?.ok, false);
    assert.match(own?.fix ?? '', /the Vault role does not exist/);
    assert.ok(
      chain.find((c) => c.check === 'resource' && c.object === `${ns}/no-role`)?.ok,
      'the VaultAuth itself is valid',
    );
    assert.ok(chain.find((c) => c.check === 'connection')?.ok, 'and its connection healthy');
    const chainLogin = chain.find((c) => c.check === 'login' && c.object === `${ns}/no-role`);
    assert.equal(chainLogin?.ok, false, "but doctor's own login through it fails");
    await apply(
      kube,
      vss(ns, 'orphan', {
        vaultAuthRef: 'gone',
        mount: 'kvv2',
        type: 'kv-v2',
        path: `${ns}/app`,
        destination: { name: 'orphan', create: true },
      }),
    );
    const orphan = JSON.parse(
      (await ferry('doctor', 'VaultStaticSecret/orphan', '-n', ns, '-o', 'json')).stdout,
    ) as Check[];
    const missing = orphan.find((c) => c.check === 'reference');
    assert.deepEqual([missing?.object, missing?.ok], [`${ns}/gone`, false]);
    assert.match(missing?.fix ?? '', /correct spec\.vaultAuthRef/);
  });

  it('a cluster it cannot reach is exit code 2 with one line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-kc-'));
    const kc = join(dir, 'config');
    writeFileSync(
      kc,
      `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`,
    );
    const r = await promisify(execFile)(NODE, [FERRY, 'status', '--kubeconfig', kc]).catch(
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal((r as { code: number }).code, 2);
    assert.equal((r as { stderr: string }).stderr.trim().split('\n').length, 1);
  });
});
