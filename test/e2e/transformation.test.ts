// Transformations on the real stack: a VaultStaticSecret with destination.transformation templates
// and a SecretTransformation reference (templateRefs + keyOverride, sourceTemplates, excludes),
// rendered into the destination Secret by the operator; a SecretTransformation edit re-syncs the
// referrer; an invalid SecretTransformation reports status.valid=false and a TransformationError
// Event. Uses the stack's operator, or starts one for this file when the stack runs without it.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SecretTransformations } from '../../src/api/resources.ts';
import type { SecretTransformation } from '../../src/api/v1beta1/secrettransformation.ts';
import { Secrets } from '../../src/k8s/resources.ts';
import type { Secret } from '../../src/k8s/types.ts';
import {
  adminClient,
  apply,
  condition,
  decodeData,
  eventsOf,
  eventually,
  type Manifest,
  tenant,
  VaultAdmin,
  vss,
} from '../../stack/lib/fixtures.ts';
import { uniqueName, useStack } from './harness.ts';

const env = await useStack();
const kube = adminClient(env);
const vault = new VaultAdmin(env);
const ns = uniqueName('tf');
let operator: ChildProcess | undefined;

const shared = (urlTemplate: string): Manifest =>
  ({
    apiVersion: 'secrets.hashicorp.com/v1beta1',
    kind: 'SecretTransformation',
    metadata: { name: 'shared', namespace: ns },
    spec: {
      sourceTemplates: [{ name: 'helpers', text: '{{ define "hostport" }}{{ .host }}:{{ .port }}{{ end }}' }],
      templates: {
        url: { text: urlTemplate },
        unused: { text: 'not selected' },
      },
      excludes: ['^password$'],
    },
  }) as Manifest;

describe('transformations end to end', () => {
  before(async () => {
    if (!env.operator) {
      operator = spawn(
        process.execPath,
        [
          join(import.meta.dirname, '..', '..', 'src', 'cli', 'operator.ts'),
          `--kubeconfig=${env.operatorKubeconfig}`,
          `--operator-namespace=${env.operatorNamespace}`,
          '--health-probe-bind-address=0',
          '--metrics-bind-address=0',
        ],
        { stdio: 'ignore' },
      );
    }
    await tenant(env, kube, vault, ns);
    await vault.kvPut('kvv2', `${ns}/db`, {
      username: 'admin',
      password: 's3cr3t',
      host: 'db.internal',
      port: 5432,
    });
  });

  after(async () => {
    if (operator?.pid !== undefined) operator.kill('SIGTERM');
    await kube.close();
  });

  it('renders inline and referenced templates into the destination Secret', async () => {
    await apply(kube, shared('postgres://{{ .Secrets.username }}@{{ template "hostport" .Secrets }}'));
    await apply(
      kube,
      vss(
        ns,
        'db',
        {
          mount: 'kvv2',
          type: 'kv-v2',
          path: `${ns}/db`,
          refreshAfter: '1h',
          destination: {
            name: 'db-creds',
            create: true,
            transformation: {
              excludeRaw: true,
              templates: {
                USER: { text: '{{ .Secrets.username | upper }}' },
                OWNER: { text: '{{ .Annotations.team }}/{{ .Labels.app }}/v{{ .Metadata.version }}' },
              },
              transformationRefs: [{ name: 'shared', templateRefs: [{ name: 'url', keyOverride: 'DSN' }] }],
            },
          },
        },
        { labels: { app: 'web' }, annotations: { team: 'payments' } },
      ),
    );

    const data = await eventually('the templated destination Secret', async () => {
      const s = await kube.getIfExists<Secret>(Secrets, 'db-creds', ns);
      const d = decodeData(s?.data);
      return d.DSN !== undefined ? d : undefined;
    });
    assert.deepEqual(data, {
      DSN: 'postgres://admin@db.internal:5432',
      OWNER: 'payments/web/v1',
      USER: 'ADMIN',
      host: 'db.internal',
      port: '5432',
      username: 'admin',
    });
  });

  it('re-syncs the referrer when the SecretTransformation changes', async () => {
    await apply(kube, shared('postgresql://{{ template "hostport" .Secrets }}/app'));
    await eventually('the new DSN', async () => {
      const s = await kube.getIfExists<Secret>(Secrets, 'db-creds', ns);
      return decodeData(s?.data).DSN === 'postgresql://db.internal:5432/app';
    });
  });

  it('reports an invalid SecretTransformation in status and with a Warning Event', async () => {
    await apply(kube, {
      apiVersion: 'secrets.hashicorp.com/v1beta1',
      kind: 'SecretTransformation',
      metadata: { name: 'broken', namespace: ns },
      spec: { templates: { bad: { text: '{{ nosuchfunc .Secrets }}' } } },
    } as Manifest);
    const st = await eventually('status.valid=false', async () => {
      const o = await kube.getIfExists<SecretTransformation>(SecretTransformations, 'broken', ns);
      return o?.status?.valid === false ? o : undefined;
    });
    assert.match(st.status?.error ?? '', /template: bad:1: function "nosuchfunc" not defined/);
    assert.equal(condition(st, 'Healthy')?.status, 'False');
    await eventually('a TransformationError Event', async () => {
      const evs = await eventsOf(kube, ns);
      return evs.some(
        (e) =>
          e.reason === 'TransformationError' && e.type === 'Warning' && e.involvedObject?.name === 'broken',
      );
    });
    const good = await kube.get<SecretTransformation>(SecretTransformations, 'shared', ns);
    assert.equal(good.status?.valid, true);
  });
});
