import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CODES, FerryError, isFerryError } from '../../../src/errors.ts';
import { KubeClient } from '../../../src/k8s/client.ts';
import { K8sApiError } from '../../../src/k8s/errors.ts';
import { ConfigMaps, Namespaces, Secrets } from '../../../src/k8s/resources.ts';
import type { ConfigMap, Secret, WatchEvent } from '../../../src/k8s/types.ts';
import { json, loopback } from './loopback.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups) await c();
});

async function setup(handler: Parameters<typeof loopback>[0], token = 'sekret-token') {
  const srv = await loopback(handler);
  const client = new KubeClient(
    { server: srv.url, namespace: 'default', token },
    { userAgent: 'ferry-test' },
  );
  cleanups.push(() => client.close(), srv.close);
  return { srv, client };
}

describe('KubeClient requests', () => {
  it('GETs an object with bearer token, user agent and JSON accept', async () => {
    const { srv, client } = await setup((_r, res) => json(res, 200, { metadata: { name: 'x' } }));
    const got = await client.get<ConfigMap>(ConfigMaps, 'x', 'ns');
    assert.equal(got.metadata.name, 'x');
    const r = srv.received[0];
    assert.equal(r?.url.pathname, '/api/v1/namespaces/ns/configmaps/x');
    assert.equal(r?.headers.authorization, 'Bearer sekret-token');
    assert.equal(r?.headers['user-agent'], 'ferry-test');
    assert.equal(r?.headers.accept, 'application/json');
  });

  it('lists with selectors, paging and metadata-only Accept', async () => {
    const { srv, client } = await setup((_r, res) => json(res, 200, { metadata: {}, items: [] }));
    await client.list(Secrets, {
      namespace: 'ns',
      labelSelector: 'a=b',
      fieldSelector: 'type=x',
      limit: 10,
      continue: 'tok',
      metadataOnly: true,
    });
    const r = srv.received[0];
    assert.equal(r?.url.pathname, '/api/v1/namespaces/ns/secrets');
    assert.deepEqual(Object.fromEntries(r?.url.searchParams ?? []), {
      labelSelector: 'a=b',
      fieldSelector: 'type=x',
      limit: '10',
      continue: 'tok',
    });
    assert.equal(
      r?.headers.accept,
      'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/json',
    );
    await client.list(Namespaces);
    assert.equal(srv.received[1]?.url.pathname, '/api/v1/namespaces');
  });

  it('creates, replaces status, and deletes with options', async () => {
    const { srv, client } = await setup((r, res) =>
      r.method === 'DELETE'
        ? json(res, 200, { kind: 'Status', status: 'Success' })
        : json(res, 200, JSON.parse(r.body)),
    );
    const cm: ConfigMap = { metadata: { name: 'a', namespace: 'ns' }, data: { k: 'v' } };
    await client.create(ConfigMaps, cm, { fieldManager: 'ferry', dryRun: true });
    await client.replace(ConfigMaps, cm, { subresource: 'status' });
    await client.delete(ConfigMaps, 'a', 'ns', {
      propagationPolicy: 'Foreground',
      preconditions: { uid: 'u1' },
    });
    const [c, p, d] = srv.received;
    assert.equal(c?.method, 'POST');
    assert.equal(c?.url.pathname, '/api/v1/namespaces/ns/configmaps');
    assert.equal(c?.url.search, '?fieldManager=ferry&dryRun=All');
    assert.equal(c?.headers['content-type'], 'application/json');
    assert.equal(p?.method, 'PUT');
    assert.equal(p?.url.pathname, '/api/v1/namespaces/ns/configmaps/a/status');
    assert.equal(d?.method, 'DELETE');
    assert.deepEqual(JSON.parse(d?.body ?? ''), {
      apiVersion: 'v1',
      kind: 'DeleteOptions',
      propagationPolicy: 'Foreground',
      preconditions: { uid: 'u1' },
    });
  });

  it('maps patch types to content types; apply needs a field manager and may force', async () => {
    const { srv, client } = await setup((_r, res) => json(res, 200, { metadata: {} }));
    await client.patch(ConfigMaps, 'a', 'ns', { data: {} }, 'merge');
    await client.patch(ConfigMaps, 'a', 'ns', [{ op: 'test', path: '/x', value: 1 }], 'json');
    await client.patch(ConfigMaps, 'a', 'ns', {}, 'strategic', { subresource: 'status' });
    await client.patch(ConfigMaps, 'a', 'ns', { apiVersion: 'v1' }, 'apply', {
      fieldManager: 'ferry',
      force: true,
    });
    assert.deepEqual(
      srv.received.map((r) => r.headers['content-type']),
      [
        'application/merge-patch+json',
        'application/json-patch+json',
        'application/strategic-merge-patch+json',
        'application/apply-patch+yaml',
      ],
    );
    assert.equal(srv.received[2]?.url.pathname, '/api/v1/namespaces/ns/configmaps/a/status');
    assert.equal(srv.received[3]?.url.search, '?fieldManager=ferry&force=true');
    assert.deepEqual(JSON.parse(srv.received[3]?.body ?? ''), { apiVersion: 'v1' });
    await assert.rejects(
      client.patch(ConfigMaps, 'a', 'ns', {}, 'apply'),
      (e: unknown) => e instanceof FerryError,
    );
  });

  it('parses metav1.Status into K8sApiError without leaking the request body', async () => {
    const { client } = await setup((_r, res) =>
      json(
        res,
        422,
        {
          kind: 'Status',
          status: 'Failure',
          code: 422,
          reason: 'Invalid',
          message: 'Secret "s" is invalid',
          details: { causes: [{ field: 'data[bad key]', reason: 'FieldValueInvalid', message: 'bad key' }] },
        },
        { 'retry-after': '3' },
      ),
    );
    const secret: Secret = { metadata: { name: 's', namespace: 'ns' }, data: { password: 'aHVudGVyMg==' } };
    const err = await client.create(Secrets, secret).then(
      () => assert.fail('expected an error'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof K8sApiError);
    assert.equal(err.code, CODES.K8S_API);
    assert.equal(err.status, 422);
    assert.ok(err.isInvalid());
    assert.equal(err.retryAfterSeconds, 3);
    assert.deepEqual(err.causes, [
      { field: 'data[bad key]', reason: 'FieldValueInvalid', message: 'bad key' },
    ]);
    assert.match(err.message, /POST \/api\/v1\/namespaces\/ns\/secrets: 422 Invalid: Secret "s" is invalid/);
    assert.doesNotMatch(err.message, /aHVudGVyMg|sekret-token/);
  });

  it('reports transport failures as K8S_TRANSPORT with a cause and no token', async () => {
    const srv = await loopback(() => {});
    await srv.close(); // nothing listens there any more
    const client = new KubeClient({ server: srv.url, namespace: 'default', token: 'sekret-token' });
    cleanups.push(() => client.close());
    const err = await client.get(ConfigMaps, 'x', 'ns').then(
      () => assert.fail('expected an error'),
      (e: unknown) => e,
    );
    assert.ok(isFerryError(err));
    assert.equal(err.code, CODES.K8S_TRANSPORT);
    assert.ok(err.cause);
    assert.doesNotMatch(err.message, /sekret-token/);
  });

  it('rejects a non-JSON success body without echoing it', async () => {
    const { client } = await setup((_r, res) => {
      res.writeHead(200);
      res.end('password=hunter2');
    });
    await assert.rejects(client.get(Secrets, 's', 'ns'), (e: unknown) => {
      assert.ok(isFerryError(e));
      assert.doesNotMatch(e.message, /hunter2/);
      return true;
    });
  });

  it('creates a TokenRequest', async () => {
    const { srv, client } = await setup((_r, res) =>
      json(res, 201, { status: { token: 'jwt', expirationTimestamp: '2030-01-01T00:00:00Z' } }),
    );
    const tok = await client.createToken('ns', 'sa', { audiences: ['vault'], expirationSeconds: 600 });
    assert.deepEqual(tok, { token: 'jwt', expirationTimestamp: '2030-01-01T00:00:00Z' });
    assert.equal(srv.received[0]?.url.pathname, '/api/v1/namespaces/ns/serviceaccounts/sa/token');
    assert.deepEqual(JSON.parse(srv.received[0]?.body ?? ''), {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences: ['vault'], expirationSeconds: 600 },
    });
  });

  it('re-reads a token file after the refresh period, and at once after a 401', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-token-'));
    const file = join(dir, 'token');
    writeFileSync(file, 'one\n');
    let status = 200;
    const srv = await loopback((_r, res) => json(res, status, { metadata: {} }));
    let now = 0;
    const client = new KubeClient(
      { server: srv.url, namespace: 'default', tokenFile: file },
      { clock: { now: () => now, setTimeout: () => ({ cancel() {} }) } },
    );
    cleanups.push(() => client.close(), srv.close);
    await client.get(ConfigMaps, 'x', 'ns');
    writeFileSync(file, 'two\n');
    now = 59_000;
    await client.get(ConfigMaps, 'x', 'ns');
    now = 60_000;
    await client.get(ConfigMaps, 'x', 'ns');
    writeFileSync(file, 'three\n');
    status = 401;
    await assert.rejects(client.get(ConfigMaps, 'x', 'ns'), (e: unknown) => e instanceof K8sApiError);
    status = 200;
    await client.get(ConfigMaps, 'x', 'ns');
    assert.deepEqual(
      srv.received.map((r) => r.headers.authorization),
      ['Bearer one', 'Bearer one', 'Bearer two', 'Bearer two', 'Bearer three'],
    );
  });
});

describe('KubeClient.watch', () => {
  it('parses newline-delimited events split across chunks, including multi-byte characters', async () => {
    const lines = [
      { type: 'ADDED', object: { metadata: { name: 'ä', resourceVersion: 'x1' } } },
      { type: 'BOOKMARK', object: { metadata: { resourceVersion: 'x2' } } },
      { type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } },
    ]
      .map((l) => `${JSON.stringify(l)}\n`)
      .join('');
    const bytes = Buffer.from(lines);
    const { srv, client } = await setup((_r, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      // Split inside the two-byte "ä" and mid-line to exercise the decoder and line buffer.
      const cut = bytes.indexOf(Buffer.from('ä')) + 1;
      res.write(bytes.subarray(0, cut));
      setTimeout(() => res.end(bytes.subarray(cut)), 20);
    });
    const got: WatchEvent<ConfigMap>[] = [];
    for await (const ev of client.watch<ConfigMap>(
      ConfigMaps,
      {
        namespace: 'ns',
        resourceVersion: 'x0',
        allowWatchBookmarks: true,
        timeoutSeconds: 5,
        metadataOnly: true,
      },
      new AbortController().signal,
    )) {
      got.push(ev);
    }
    assert.deepEqual(
      got.map((e) => e.type),
      ['ADDED', 'BOOKMARK', 'ERROR'],
    );
    assert.equal(got[0]?.type === 'ADDED' && got[0].object.metadata.name, 'ä');
    const r = srv.received[0];
    assert.deepEqual(Object.fromEntries(r?.url.searchParams ?? []), {
      watch: 'true',
      resourceVersion: 'x0',
      timeoutSeconds: '5',
      allowWatchBookmarks: 'true',
    });
    assert.equal(
      r?.headers.accept,
      'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json',
    );
  });

  it('throws K8sApiError for a non-2xx watch response', async () => {
    const { client } = await setup((_r, res) =>
      json(res, 410, { kind: 'Status', code: 410, reason: 'Gone' }),
    );
    const it = client.watch(ConfigMaps, { namespace: 'ns' }, new AbortController().signal);
    await assert.rejects(it.next(), (e: unknown) => e instanceof K8sApiError && e.isGone());
  });

  it('fails a malformed line with K8S_WATCH without quoting it', async () => {
    const { client } = await setup((_r, res) => {
      res.writeHead(200);
      res.end('{"type":"ADDED","object":{"data":{"p":"hunter2"}\n');
    });
    const it = client.watch(Secrets, { namespace: 'ns' }, new AbortController().signal);
    await assert.rejects(it.next(), (e: unknown) => {
      assert.ok(isFerryError(e));
      assert.equal(e.code, CODES.K8S_WATCH);
      assert.doesNotMatch(e.message, /hunter2/);
      return true;
    });
  });

  it('ends cleanly when the signal aborts mid-stream', async () => {
    const { client } = await setup((_r, res) => {
      res.writeHead(200);
      res.write(`${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a' } } })}\n`);
    });
    const ac = new AbortController();
    const seen: string[] = [];
    for await (const ev of client.watch<ConfigMap>(ConfigMaps, { namespace: 'ns' }, ac.signal)) {
      seen.push(ev.type);
      ac.abort();
    }
    assert.deepEqual(seen, ['ADDED']);
  });
});
