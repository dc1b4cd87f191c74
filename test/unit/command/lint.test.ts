import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type ClusterLookup, lintManifests } from '../../../src/command/lint.ts';
import { parseManifests, readManifests } from '../../../src/command/manifests.ts';
import type { ResourceType } from '../../../src/k8s/resources.ts';

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures');
const LINT = join(FIXTURES, 'lint');
const noStdin = () => Promise.reject(new Error('no stdin'));
const counted = (severity: string) => severity !== 'info';

/** `# expect: <rule> [field]` lines, per document (documents split at `---`). */
function expectations(text: string): { doc: number; finding: string }[] {
  let doc = 0;
  const out: { doc: number; finding: string }[] = [];
  for (const line of text.split('\n')) {
    if (line === '---') doc++;
    const m = /^# expect: (.+)$/.exec(line);
    if (m?.[1]) out.push({ doc, finding: m[1].trim() });
  }
  return out;
}

function docOfLine(text: string, line: number): number {
  return text
    .split('\n')
    .slice(0, line - 1)
    .filter((l) => l === '---').length;
}

describe('ferry lint: the corpus', () => {
  it('good manifests (and every sample of the API) have no errors or warnings', async () => {
    for (const dir of [join(LINT, 'good'), join(FIXTURES, 'api')]) {
      const { findings } = await lintManifests(await readManifests(dir, noStdin));
      const counted_ = findings.filter((f) => counted(f.severity) && f.rule !== 'refresh-load');
      assert.deepEqual(counted_, [], dir);
    }
  });

  for (const name of readdirSync(join(LINT, 'bad'))) {
    it(`bad/${name}: exactly the findings each document declares`, async () => {
      const file = join(LINT, 'bad', name);
      const text = readFileSync(file, 'utf8');
      const { findings } = await lintManifests(await readManifests(file, noStdin));
      const got = findings
        .map((f) => ({ doc: docOfLine(text, f.line), finding: [f.rule, f.field].filter(Boolean).join(' ') }))
        .sort((a, b) => a.doc - b.doc || a.finding.localeCompare(b.finding));
      const want = expectations(text).sort((a, b) => a.doc - b.doc || a.finding.localeCompare(b.finding));
      assert.deepEqual(got, want);
    });
  }

  it('adds up the Vault polling the manifests imply', async () => {
    const r = await lintManifests(await readManifests(join(LINT, 'bad', 'costly.yaml'), noStdin));
    assert.equal(r.vaultPollsPerHour, 3600 / 2 + 60); // refreshAfter 2s and 1m; unset and CSISecrets add nothing
  });

  it('a dialect finding names the real field or kind', async () => {
    const { findings } = await lintManifests(await readManifests(join(LINT, 'bad', 'dialect.yaml'), noStdin));
    const message = (field: string) => findings.find((f) => f.field === field)?.message ?? '';
    assert.match(message('kind'), /use VaultStaticSecret/);
    assert.match(message('spec.rollout'), /use spec\.rolloutRestartTargets/);
    assert.match(message('spec.revocationDuration'), /use spec\.revoke/);
    assert.match(message('spec.allowedKubernetesNamespaces'), /use allowedNamespaces/);
    assert.match(message('spec.tlsSecretRef'), /use caCertSecretRef/);
    assert.match(
      message('spec.kubernetes.tokenReviewerServiceAccount'),
      /use spec\.kubernetes\.serviceAccount/,
    );
  });
});

describe('ferry lint: input', () => {
  it('reads a directory recursively, skipping hidden folders and node_modules', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-lint-dir-'));
    for (const sub of ['a/b', '.git', 'node_modules/x']) mkdirSync(join(dir, sub), { recursive: true });
    for (const f of [
      'a/one.yaml',
      'a/b/two.yml',
      'a/b/three.json',
      'a/notes.txt',
      '.git/x.yaml',
      'node_modules/x/y.yaml',
    ]) {
      writeFileSync(join(dir, f), '{}\n');
    }
    const files = await readManifests(dir, noStdin);
    assert.deepEqual(
      files.map((f) => f.file.slice(dir.length + 1)),
      ['a/b/three.json', 'a/b/two.yml', 'a/one.yaml'],
    );
  });

  it('a document that does not parse is a finding with its line; the others are still checked', async () => {
    const text =
      'kind: VaultSecret\napiVersion: secrets.hashicorp.com/v1beta1\n---\nmetadata: {name: broken\n';
    const { findings } = await lintManifests([parseManifests('x.yaml', text)]);
    assert.deepEqual(
      findings.map((f) => `${f.line} ${f.rule}`),
      ['1 dialect', '4 yaml'],
    );
  });
});

describe('ferry lint: List documents', () => {
  // What `kubectl get -o yaml` writes: a v1 List whose items are the objects.
  const list = `apiVersion: v1
kind: List
items:
  - apiVersion: secrets.hashicorp.com/v1beta1
    kind: VaultStaticSecret
    metadata: {name: good}
    spec: {mount: kv, type: kv-v2, path: app, destination: {name: app, create: true}}
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: other}
  - apiVersion: secrets.hashicorp.com/v1beta1
    kind: VaultStaticSecret
    metadata: {name: bad}
    spec:
      mount: kv
      type: kv-v2
      path: app
      refreshInterval: 60s
      destination: {name: existing, create: false}
`;

  it('lints each item, named List[i] Kind/name, at its own line', async () => {
    const { findings } = await lintManifests([parseManifests('l.yaml', list)]);
    assert.deepEqual(
      findings.map((f) => `${f.line} ${f.object} ${f.rule} ${f.field}`),
      [
        '18 List[2] VaultStaticSecret/bad dialect spec.refreshInterval',
        '19 List[2] VaultStaticSecret/bad create-false spec.destination.create',
      ],
    );
  });

  it("fixes land in the List, and its items count as the manifests' own objects", async () => {
    const { corrected } = await lintManifests([parseManifests('l.yaml', list)]);
    assert.match(corrected[0]?.text ?? '', /^kind: List\n/m);
    assert.match(corrected[0]?.text ?? '', /path: app\n {6}refreshAfter: 60s\n/);
    const secret = `---
apiVersion: v1
kind: SecretList
items: [{apiVersion: v1, kind: Secret, metadata: {name: existing, namespace: team}}]
`;
    const { findings } = await lintManifests([parseManifests('l.yaml', list + secret)], {
      defaultNamespace: 'team',
      exists: async () => false,
    });
    assert.deepEqual(
      findings.filter((f) => f.rule === 'create-false'),
      [],
    );
  });
});

describe('ferry lint: corrections', () => {
  it('the corrected YAML lints clean of dialect, keeps comments and field order', async () => {
    const text = readFileSync(join(LINT, 'bad', 'dialect.yaml'), 'utf8');
    const { corrected } = await lintManifests([parseManifests('d.yaml', text)]);
    assert.equal(corrected.length, 1);
    const fixed = corrected[0]?.text ?? '';
    assert.match(fixed, /kind: VaultStaticSecret/);
    assert.match(fixed, /allowedNamespaces: \[ app \] # the namespaces that may use it/);
    assert.match(fixed, /kubernetes:\n {4}role: app\n {4}serviceAccount: vault-auth/);
    assert.match(fixed, /revoke: true/);
    assert.match(fixed, /apiVersion: secrets.hashicorp.com\/v1beta1\nkind: VaultConnection/);
    assert.match(fixed, /caCertSecretRef: vault-ca/);
    const again = await lintManifests([parseManifests('d.yaml', fixed)]);
    // `rollout: pods` needs a workload name only the user knows: it stays a finding.
    assert.deepEqual(
      again.findings.filter((f) => counted(f.severity)).map((f) => f.field),
      ['spec.rollout'],
    );
  });
});

describe('ferry lint --cluster', () => {
  const manifest = `apiVersion: secrets.hashicorp.com/v1beta1
kind: VaultStaticSecret
metadata: {name: app}
spec:
  mount: secret
  type: kv-v2
  path: app
  destination: {name: existing, create: false}
  rolloutRestartTargets:
    - {kind: Deployment, name: web}
    - {kind: StatefulSet, name: db}
    - {kind: Deployment, name: local}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: local, namespace: team}
`;
  function cluster(present: string[]): ClusterLookup & { asked: string[] } {
    const asked: string[] = [];
    return {
      defaultNamespace: 'team',
      asked,
      async exists(rt: ResourceType, namespace: string, name: string) {
        asked.push(`${rt.kind} ${namespace}/${name}`);
        return present.includes(`${rt.kind} ${namespace}/${name}`);
      },
    };
  }

  it('reports a missing create:false Secret and missing rollout targets; manifests count as present', async () => {
    const c = cluster(['Deployment team/web']);
    const { findings } = await lintManifests([parseManifests('m.yaml', manifest)], c);
    assert.deepEqual(
      findings.map((f) => `${f.rule} ${f.field}`),
      ['create-false spec.destination.create', 'rollout-target spec.rolloutRestartTargets[1].name'],
    );
    assert.match(findings[0]?.message ?? '', /Secret team\/existing does not exist/);
    assert.ok(!c.asked.includes('Deployment team/local'), 'an object in the manifests is not looked up');
  });

  it('passes when everything exists', async () => {
    const c = cluster(['Secret team/existing', 'Deployment team/web', 'StatefulSet team/db']);
    const { findings } = await lintManifests([parseManifests('m.yaml', manifest)], c);
    assert.deepEqual(findings, []);
  });

  it('checks references as the operator resolves them, the empty ones in the operator namespace', async () => {
    const refs = `apiVersion: secrets.hashicorp.com/v1beta1
kind: VaultStaticSecret
metadata: {name: a}
spec:
  vaultAuthRef: auth
  mount: secret
  type: kv-v2
  path: app
  destination:
    name: a
    create: true
    transformation:
      transformationRefs: [{name: shared, namespace: platform}, {name: local}]
---
apiVersion: secrets.hashicorp.com/v1beta1
kind: VaultStaticSecret
metadata: {name: b}
spec: {mount: secret, type: kv-v2, path: app, destination: {name: b, create: true}}
---
apiVersion: secrets.hashicorp.com/v1beta1
kind: VaultAuth
metadata: {name: other}
spec:
  vaultConnectionRef: ops/vault
  method: kubernetes
  mount: kubernetes
  kubernetes: {role: r, serviceAccount: app}
---
apiVersion: secrets.hashicorp.com/v1beta1
kind: VaultConnection
metadata: {name: vc}
spec: {address: 'https://vault:8200', caCertSecretRef: vault-ca}
---
apiVersion: secrets.hashicorp.com/v1beta1
kind: SecretTransformation
metadata: {name: local}
spec: {templates: {x: {text: y}}}
`;
    const c = { ...cluster(['VaultConnection ops/vault']), operatorNamespace: 'ops' };
    const { findings } = await lintManifests([parseManifests('r.yaml', refs)], c);
    assert.deepEqual(
      findings.map((f) => `${f.object} ${f.field}: ${f.message.split(' does not')[0]}`),
      [
        'VaultStaticSecret/a spec.vaultAuthRef: VaultAuth team/auth',
        'VaultStaticSecret/a spec.destination.transformation.transformationRefs[0].name: SecretTransformation platform/shared',
        'VaultStaticSecret/b spec.vaultAuthRef: VaultAuth ops/default',
        'VaultConnection/vc spec.caCertSecretRef: Secret team/vault-ca',
      ],
    );
  });
});
