// The GKE metadata cache: one request per value until it expires, shared by concurrent logins, and
// no failure kept. A loopback server stands in for the metadata server.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type GcpEndpoints, GcpMetadata } from '../../../src/vault/auth/gcp.ts';
import { ManualClock } from './helpers.ts';

describe('GcpMetadata', () => {
  let server: Server;
  let endpoints: GcpEndpoints;
  const hits: string[] = [];
  let up = true;

  before(async () => {
    server = createServer((req, res) => {
      hits.push(req.url ?? '');
      if (!up) {
        res.writeHead(503);
        return res.end();
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`value-of-${req.url}`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    endpoints = { sts: `${base}/sts`, iamCredentials: `${base}/iam`, metadata: `${base}/m` };
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('asks once per value until it expires, and concurrent logins share the request', async () => {
    hits.length = 0;
    const clock = new ManualClock();
    const m = new GcpMetadata(endpoints, clock, 60_000);
    const [a, b] = await Promise.all([m.get('project/project-id'), m.get('project/project-id')]);
    assert.equal(a, 'value-of-/m/project/project-id');
    assert.equal(b, a);
    await clock.advance(59_999);
    assert.equal(await m.get('project/project-id'), a);
    assert.deepEqual(hits, ['/m/project/project-id']);
    await clock.advance(1);
    await m.get('project/project-id');
    assert.equal(hits.length, 2, 'asked again once expired');
  });

  it('does not keep a failure', async () => {
    hits.length = 0;
    const m = new GcpMetadata(endpoints, new ManualClock());
    up = false;
    await assert.rejects(m.get('instance/attributes/cluster-name'), /answered HTTP 503/);
    up = true;
    assert.equal(
      await m.get('instance/attributes/cluster-name'),
      'value-of-/m/instance/attributes/cluster-name',
    );
    assert.equal(hits.length, 2);
  });
});
