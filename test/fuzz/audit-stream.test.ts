// The audit-stream listener (src/vault/audit-stream.ts) is an unauthenticated TCP input: any peer
// allowed to connect sends any bytes. The line splitter gives, for any chunking of any byte stream,
// exactly the non-empty lines within the cap (a longer line is skipped, never buffered whole); the
// parser gives only the KV secrets a successful KV write names, nothing for anything else; and only
// VaultStaticSecrets indexed under such a secret are triggered. Over a real loopback socket, hostile
// bytes never crash the listener.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import type { VaultStaticSecret } from '../../src/api/v1beta1/vaultstaticsecret.ts';
import { INSTANT_INDEX, instantIndex } from '../../src/controllers/vaultstaticsecret/instant.ts';
import { createStore } from '../../src/runtime/store.ts';
import { kvChangeOf, kvSecretKey, LineSplitter, runAuditStream } from '../../src/vault/audit-stream.ts';
import { budget } from './budget.ts';

const MAX = 64;

/** The KV secrets a line names as written (none for anything else). */
const kvChangesOf = (l: string): string[] => kvChangeOf(l)?.keys ?? [];

/** The lines a reader of the whole stream sees: non-empty, at most MAX bytes, ended by a newline. */
function model(stream: Buffer): string[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (let nl = stream.indexOf(0x0a); nl >= 0; nl = stream.indexOf(0x0a, start)) {
    parts.push(stream.subarray(start, nl));
    start = nl + 1;
  }
  return parts.filter((p) => p.length > 0 && p.length <= MAX).map((p) => p.toString('utf8'));
}

const byte = fc.oneof(
  { weight: 3, arbitrary: fc.nat(255) },
  { weight: 1, arbitrary: fc.constant(0x0a) },
  { weight: 1, arbitrary: fc.constantFrom(0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80) },
);
const stream = fc.oneof(
  fc.array(byte, { maxLength: 400 }).map((b) => Buffer.from(b)),
  fc
    .array(fc.oneof(fc.nat(2 * MAX), fc.constant(MAX), fc.constant(MAX + 1)), { maxLength: 8 })
    .map((lens) =>
      Buffer.from(lens.map((n) => `${'é'.repeat(n >> 2)}${'x'.repeat(n - 2 * (n >> 2))}\n`).join('')),
    ),
);

test('the line splitter yields the same lines for every chunking, within the cap', () => {
  fc.assert(
    fc.property(stream, fc.array(fc.nat(60), { maxLength: 20 }), (s, cuts) => {
      const splitter = new LineSplitter(MAX);
      const got: string[] = [];
      let at = 0;
      for (const c of cuts) {
        splitter.push(s.subarray(at, at + c), (l) => got.push(l));
        at += c;
      }
      splitter.push(s.subarray(at), (l) => got.push(l));
      assert.deepEqual(got, model(s));
    }),
    budget(3000),
  );
});

test('a giant line is skipped without being held', () => {
  // 64 MiB of one line in 64 KiB chunks, then a good line: only the good line comes out, and the
  // splitter keeps at most the cap (the heap does not grow by the line).
  const splitter = new LineSplitter(256 * 1024);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const got: string[] = [];
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < 1024; i++) splitter.push(chunk, (l) => got.push(l));
  splitter.push(Buffer.from('\n{"ok":1}\n'), (l) => got.push(l));
  assert.deepEqual(got, ['{"ok":1}']);
  assert.ok(process.memoryUsage().heapUsed - before < 32 << 20);
});

// Audit entries: successful KV writes with the mount and path a resource names, and everything a
// peer could send instead.
const segment = fc.oneof(
  fc.constantFrom('secret', 'kv', 'app', 'data', 'metadata', 'a b', '', '..'),
  fc.stringMatching(/^[a-z]{1,6}$/),
);
const mountName = fc.oneof(fc.constantFrom('secret', 'kv', 'secret/nested', '/'), segment);
const relPath = fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join('/'));
const entry = fc
  .record({
    type: fc.constantFrom('response', 'request', 'other', 1),
    error: fc.constantFrom(undefined, '', 'permission denied', 7),
    mount_type: fc.constantFrom('kv', 'pki', 'database', undefined),
    operation: fc.constantFrom('create', 'update', 'delete', 'patch', 'read', 'list', undefined, {}),
    mount: mountName,
    prefix: fc.constantFrom('', 'data/', 'metadata/', 'delete/', 'undelete/', 'destroy/', 'config'),
    rel: relPath,
    pathOverride: fc.option(fc.oneof(fc.string({ maxLength: 10 }), fc.constant(42)), { freq: 5 }),
  })
  .map((e) => ({
    type: e.type,
    ...(e.error === undefined ? {} : { error: e.error }),
    request: {
      mount_type: e.mount_type,
      operation: e.operation,
      mount_point: `${e.mount}/`,
      path: e.pathOverride ?? `${e.mount}/${e.prefix}${e.rel}`,
    },
  }));
const line = fc.oneof(
  { weight: 4, arbitrary: entry.map((e) => JSON.stringify(e)) },
  {
    weight: 1,
    arbitrary: entry.chain((e) => fc.nat(JSON.stringify(e).length).map((n) => JSON.stringify(e).slice(0, n))),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '{"__proto__":{"type":"response"}}',
      '{"type":"response","request":{"mount_type":"kv","operation":"update","mount_point":"","path":"x"}}',
    ),
  },
);

const vss = fc
  .record({
    mount: mountName,
    path: relPath,
    instantUpdates: fc.boolean(),
    name: fc.stringMatching(/^[a-z]{1,5}$/),
  })
  .map(
    ({ mount, path, instantUpdates, name }): VaultStaticSecret =>
      ({
        apiVersion: 'secrets.hashicorp.com/v1beta1',
        kind: 'VaultStaticSecret',
        metadata: { namespace: 'a', name },
        spec: { mount, path, type: 'kv-v2', destination: { name: 'd' }, syncConfig: { instantUpdates } },
      }) as VaultStaticSecret,
  );

test('a line triggers only the resources indexed under the KV secret a successful write names', () => {
  fc.assert(
    fc.property(fc.array(vss, { maxLength: 6 }), fc.array(line, { maxLength: 6 }), (objs, lines) => {
      const { store, writer } = createStore<VaultStaticSecret>({
        indexes: { [INSTANT_INDEX]: instantIndex },
      });
      for (const o of objs) writer.apply({ type: 'apply', object: o });
      for (const l of lines) {
        const keys = kvChangesOf(l);
        assert.ok(keys.length <= 2);
        let parsed: { type?: unknown; error?: unknown; request?: Record<string, unknown> } | undefined;
        try {
          parsed = JSON.parse(l);
        } catch {}
        const req = parsed?.request;
        const write =
          typeof parsed === 'object' &&
          parsed?.type === 'response' &&
          !(typeof parsed.error === 'string' && parsed.error !== '') &&
          req?.mount_type === 'kv' &&
          ['create', 'update', 'delete', 'patch'].includes(req.operation as string);
        if (!write) assert.deepEqual(keys, [], l);
        for (const k of keys) {
          // Every key is the line's own mount and a path below it.
          const mount = String(req?.mount_point);
          assert.ok(k.startsWith(`${kvSecretKey(mount, '')}`), `${k} is not below ${mount}`);
          for (const o of store.byIndex(INSTANT_INDEX, k)) {
            assert.equal(
              o.spec?.syncConfig?.instantUpdates,
              true,
              'a resource without instantUpdates was triggered',
            );
            assert.equal(kvSecretKey(o.spec?.mount ?? '', o.spec?.path ?? ''), k);
          }
        }
      }
    }),
    budget(2000),
  );
});

test('over a loopback socket, hostile bytes never crash the listener, and only KV writes trigger', async () => {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as { port: number }).port;
  probe.close();
  const ac = new AbortController();
  const changes: string[][] = [];
  let connects = 0;
  const running = runAuditStream(
    { host: '127.0.0.1', port, allowedPeers: ['127.0.0.1'], maxLineBytes: 1024 },
    { onChange: (c) => changes.push([...c.keys]), onConnect: () => connects++ },
    ac.signal,
  );
  await new Promise((r) => setTimeout(r, 50));
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            line,
            stream.map((b) => b.toString('latin1')),
          ),
          { maxLength: 8 },
        ),
        async (ls) => {
          changes.length = 0;
          const text = `${ls.join('\n')}\n`;
          const want = ls
            .join('\n')
            .split('\n')
            .flatMap((l) => (Buffer.byteLength(l) <= 1024 ? kvChangesOf(l) : []));
          const sock = connect(port, '127.0.0.1');
          await once(sock, 'connect');
          sock.end(text);
          await once(sock, 'close');
          await new Promise((r) => setImmediate(r));
          assert.deepEqual(changes.flat(), want);
        },
      ),
      budget(100),
    );
    assert.ok(connects > 0);
  } finally {
    ac.abort();
    await running;
  }
});
