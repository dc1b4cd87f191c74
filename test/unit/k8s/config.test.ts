import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CODES, isFerryError } from '../../../src/errors.ts';
import { fromKubeconfigText, loadInCluster, loadKubeConnection } from '../../../src/k8s/config.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const tmp = () => mkdtempSync(join(tmpdir(), 'ferry-kubeconfig-'));
const isKubeconfigError = (e: unknown) => isFerryError(e) && e.code === CODES.KUBECONFIG;

const twoContexts = (dir: string) => `
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: c1
  cluster:
    server: https://one.example:6443/
    certificate-authority-data: ${b64('CA-ONE')}
- name: c2
  cluster:
    server: https://two.example
    certificate-authority: ca.pem
    insecure-skip-tls-verify: true
users:
- name: u1
  user:
    client-certificate-data: ${b64('CERT')}
    client-key-data: ${b64('KEY')}
- name: u2
  user:
    token: tok
- name: u3
  user:
    tokenFile: ${join(dir, 'tokfile')}
- name: u4
  user:
    client-certificate: certs/c.pem
    client-key: certs/k.pem
contexts:
- name: dev
  context: { cluster: c1, user: u1, namespace: team }
- name: prod
  context: { cluster: c2, user: u2 }
- name: tf
  context: { cluster: c1, user: u3 }
- name: files
  context: { cluster: c1, user: u4 }
- name: nouser
  context: { cluster: c1 }
- name: broken
  context: { cluster: missing, user: u1 }
`;

describe('kubeconfig', () => {
  it('resolves current-context with inline data, namespace and trailing-slash server', () => {
    const dir = tmp();
    const conn = fromKubeconfigText(twoContexts(dir), dir);
    assert.deepEqual(conn, {
      server: 'https://one.example:6443',
      namespace: 'team',
      caPem: 'CA-ONE',
      certPem: 'CERT',
      keyPem: 'KEY',
    });
  });

  it('reads file references relative to the kubeconfig, tokens and insecure-skip-tls-verify', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'ca.pem'), 'CA-TWO');
    mkdirSync(join(dir, 'certs'));
    writeFileSync(join(dir, 'certs', 'c.pem'), 'C');
    writeFileSync(join(dir, 'certs', 'k.pem'), 'K');
    const text = twoContexts(dir);
    assert.deepEqual(fromKubeconfigText(text, dir, 'prod'), {
      server: 'https://two.example',
      namespace: 'default',
      caPem: 'CA-TWO',
      insecureSkipTLSVerify: true,
      token: 'tok',
    });
    assert.equal(fromKubeconfigText(text, dir, 'tf').tokenFile, join(dir, 'tokfile'));
    const files = fromKubeconfigText(text, dir, 'files');
    assert.equal(files.certPem, 'C');
    assert.equal(files.keyPem, 'K');
    assert.equal(fromKubeconfigText(text, dir, 'nouser').token, undefined);
  });

  it('fails with KUBECONFIG errors for missing contexts, clusters and files', () => {
    const dir = tmp();
    const text = twoContexts(dir);
    assert.throws(() => fromKubeconfigText(text, dir, 'nope'), isKubeconfigError);
    assert.throws(() => fromKubeconfigText(text, dir, 'broken'), isKubeconfigError);
    assert.throws(() => fromKubeconfigText(text, dir, 'files'), isKubeconfigError); // certs/ absent
    assert.throws(() => fromKubeconfigText('a: [', dir), isKubeconfigError);
    assert.throws(() => fromKubeconfigText('clusters: {}', dir), isKubeconfigError);
    assert.throws(() => fromKubeconfigText('contexts: []', dir), isKubeconfigError); // no current-context
    const exec = `current-context: x
clusters: [{name: c, cluster: {server: "https://x"}}]
users: [{name: u, user: {exec: {command: aws}}}]
contexts: [{name: x, context: {cluster: c, user: u}}]`;
    assert.throws(() => fromKubeconfigText(exec, dir), isKubeconfigError);
  });

  it('prefers an explicit path, then $KUBECONFIG (merged, first wins), then ~/.kube/config', () => {
    const dir = tmp();
    const a = join(dir, 'a.yaml');
    const b = join(dir, 'b.yaml');
    writeFileSync(
      a,
      `current-context: one
clusters: [{name: c, cluster: {server: "https://a"}}]`,
    );
    writeFileSync(
      b,
      `current-context: two
clusters: [{name: c, cluster: {server: "https://b"}}, {name: d, cluster: {server: "https://d"}}]
contexts: [{name: one, context: {cluster: c}}, {name: two, context: {cluster: d}}]`,
    );
    const env = { KUBECONFIG: `${a}:${join(dir, 'missing')}:${b}`, HOME: dir };
    assert.equal(loadKubeConnection({ env }).server, 'https://a');
    assert.equal(loadKubeConnection({ env, context: 'two' }).server, 'https://d');
    assert.equal(loadKubeConnection({ env, kubeconfig: b }).server, 'https://d');
    assert.throws(() => loadKubeConnection({ env, kubeconfig: join(dir, 'missing') }), isKubeconfigError);

    mkdirSync(join(dir, '.kube'));
    writeFileSync(
      join(dir, '.kube', 'config'),
      `current-context: h
clusters: [{name: c, cluster: {server: "https://home"}}]
contexts: [{name: h, context: {cluster: c}}]`,
    );
    assert.equal(loadKubeConnection({ env: { HOME: dir } }).server, 'https://home');
    assert.throws(() => loadKubeConnection({ env: { HOME: tmp() } }), isKubeconfigError);
  });
});

describe('in-cluster config', () => {
  it('reads the service account mount and KUBERNETES_SERVICE_HOST/PORT', () => {
    const sa = tmp();
    writeFileSync(join(sa, 'token'), 'jwt');
    writeFileSync(join(sa, 'ca.crt'), 'CA');
    writeFileSync(join(sa, 'namespace'), 'ferry-system\n');
    const env = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443', HOME: tmp() };
    const conn = loadKubeConnection({ env, serviceAccountDir: sa });
    assert.deepEqual(conn, {
      server: 'https://10.0.0.1:443',
      tokenFile: join(sa, 'token'),
      caPem: 'CA',
      namespace: 'ferry-system',
    });
    assert.equal(
      loadInCluster({ ...env, KUBERNETES_SERVICE_HOST: 'fd00::1' }, sa).server,
      'https://[fd00::1]:443',
    );
  });

  it('fails clearly without the mount or the environment', () => {
    const env = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' };
    assert.throws(() => loadInCluster(env, tmp()), isKubeconfigError);
    assert.throws(() => loadInCluster({}, tmp()), isKubeconfigError);
  });
});
