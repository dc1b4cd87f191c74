import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { kvChangeOf, LineSplitter, peerList, runAuditStream } from '../../../src/vault/audit-stream.ts';

// Response entries of `PUT secret/data/foo` captured from the stack's Vault 1.21.4 and OpenBao 2.7.2
// socket audit devices; the value written was a canary, which the entries carry only as an HMAC.
const captured = readFileSync(new URL('./fixtures/audit-kv-write.jsonl', import.meta.url), 'utf8')
  .split('\n')
  .filter(Boolean);
// OpenBao 2.7.2 (file audit device): response entries of kv-v2 writes in namespace ns1 (the namespace
// in the X-Vault-Namespace header, then in the URL: `ns1/kvv2/data/y`) and ns1/child; canary values.
const capturedNs = readFileSync(
  new URL('./fixtures/audit-kv-write-namespaces.jsonl', import.meta.url),
  'utf8',
)
  .split('\n')
  .filter(Boolean);
const kvChangesOf = (line: string): string[] => kvChangeOf(line)?.keys ?? [];

const entry = (over: Record<string, unknown>, req: Record<string, unknown> = {}): string =>
  JSON.stringify({
    type: 'response',
    ...over,
    request: {
      operation: 'update',
      mount_type: 'kv',
      mount_point: 'secret/',
      path: 'secret/data/a/b',
      ...req,
    },
  });

describe('kvChangeOf', () => {
  it('finds the secret in real Vault and OpenBao entries, which hold no value', () => {
    assert.equal(captured.length, 2);
    for (const line of captured) {
      assert.deepEqual(kvChangeOf(line), { namespace: '', keys: ['secret/data/foo', 'secret/foo'] });
      assert.ok(!line.includes('canary'));
    }
  });

  it('says the Vault namespace of a write, and the mount relative to it', () => {
    assert.deepEqual(
      capturedNs.map((l) => kvChangeOf(l)),
      [
        { namespace: 'ns1', keys: ['kvv2/data/x', 'kvv2/x'] },
        { namespace: 'ns1', keys: ['kvv2/data/y', 'kvv2/y'] },
        { namespace: 'ns1/child', keys: ['kvv2/data/x', 'kvv2/x'] },
      ],
    );
    for (const line of capturedNs) assert.ok(!/canary/i.test(line));
  });

  it('reads kv-v2 API prefixes and kv-v1 paths', () => {
    assert.deepEqual(kvChangesOf(entry({}, { path: 'secret/metadata/x' })), [
      'secret/metadata/x',
      'secret/x',
    ]);
    assert.deepEqual(kvChangesOf(entry({}, { path: 'secret/destroy/x', operation: 'update' })), [
      'secret/destroy/x',
      'secret/x',
    ]);
    assert.deepEqual(
      kvChangesOf(entry({}, { mount_point: 'kv1/', path: 'kv1/app/db', operation: 'delete' })),
      ['kv1/app/db'],
    );
  });

  it('ignores requests, reads, failures, other engines and junk', () => {
    for (const line of [
      entry({ type: 'request' }),
      entry({}, { operation: 'read' }),
      entry({}, { operation: 'list' }),
      entry({ error: 'permission denied' }),
      entry({}, { mount_type: 'pki' }),
      entry({}, { path: 'other/data/x' }),
      entry({}, { path: 'secret/' }),
      '{',
      'null',
      '[]',
      '"x"',
    ])
      assert.deepEqual(kvChangesOf(line), [], line);
  });
});

describe('LineSplitter', () => {
  it('yields the same lines however the stream is chunked, and skips over-long ones', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: fc.constantFrom('a', 'b', 'é'), maxLength: 40 }), { maxLength: 20 }),
        fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 10 }),
        (lines, cuts) => {
          const max = 24;
          const bytes = Buffer.from(lines.map((l) => `${l}\n`).join(''));
          const out: string[] = [];
          const s = new LineSplitter(max);
          let at = 0;
          for (let i = 0; at < bytes.length; i++) {
            const n = cuts[i % cuts.length] ?? 1;
            s.push(bytes.subarray(at, at + n), (l) => out.push(l));
            at += n;
          }
          assert.deepEqual(
            out,
            lines.filter((l) => l !== '' && Buffer.byteLength(l) <= max),
          );
        },
      ),
    );
  });
});

describe('peerList', () => {
  it('accepts addresses and CIDRs and rejects anything else', () => {
    const l = peerList(['10.0.0.0/8', '127.0.0.1', '::1']);
    assert.ok(l.check('10.2.3.4', 'ipv4'));
    assert.ok(l.check('127.0.0.1', 'ipv4'));
    assert.ok(!l.check('11.0.0.1', 'ipv4'));
    for (const bad of ['vault', '10.0.0.0/33', '1.2.3.4/x', ''])
      assert.throws(() => peerList([bad]), RangeError, bad);
  });
});

describe('runAuditStream', () => {
  const open = (port: number): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(s));
      s.on('error', reject);
    });
  const closed = (s: Socket): Promise<void> => new Promise((r) => s.on('close', () => r()));

  it('reports changes, bounds connections and refuses peers not allowed', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const changes: string[][] = [];
    const events: string[] = [];
    const ac = new AbortController();
    let run = runAuditStream(
      { host: '127.0.0.1', port, allowedPeers: ['127.0.0.1'], maxConnections: 1, maxLineBytes: 4096 },
      {
        onChange: (c) => changes.push([...c.keys]),
        onConnect: () => events.push('connect'),
        onRefused: (_p, why) => events.push(why),
      },
      ac.signal,
    );
    await new Promise((r) => setTimeout(r, 50));
    const a = await open(port);
    a.write(
      `${captured[0]}\n${entry({}, { path: 'secret/data/', operation: 'read' })}\n${'x'.repeat(5000)}\n`,
    );
    a.write(entry({}, { path: 'secret/data/z' }).slice(0, 30));
    const b = await open(port);
    await closed(b); // over maxConnections
    a.write(`${entry({}, { path: 'secret/data/z' }).slice(30)}\n`);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(changes, [
      ['secret/data/foo', 'secret/foo'],
      ['secret/data/z', 'secret/z'],
    ]);
    assert.deepEqual(events, ['connect', 'too many connections']);
    ac.abort();
    await run;
    await closed(a).catch(() => {});

    const ac2 = new AbortController();
    run = runAuditStream(
      { host: '127.0.0.1', port, allowedPeers: ['10.0.0.0/8'] },
      {
        onChange: () => assert.fail('refused peer reached onChange'),
        onConnect: () => assert.fail('connect'),
      },
      ac2.signal,
    );
    await new Promise((r) => setTimeout(r, 50));
    const c = await open(port);
    c.write(`${captured[0]}\n`);
    await closed(c);
    ac2.abort();
    await run;
  });

  it('rejects when the port is taken, so that the caller retries', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const port = (taken.address() as AddressInfo).port;
    await assert.rejects(
      runAuditStream(
        { host: '127.0.0.1', port, allowedPeers: [] },
        { onChange: () => {}, onConnect: () => {} },
        new AbortController().signal,
      ),
      /EADDRINUSE/,
    );
    taken.close();
  });
});
