// Vault responses (src/vault): a tenant names the Vault address, so every answer is hostile. A
// loopback server answers each request with a generated status and body: well-formed Vault JSON
// with fields of the wrong type, random bytes, truncated or deeply nested JSON, bodies past the cap.
// The client and the engine helpers (KV v1/v2, dynamic credentials, PKI, leases, seal status) return
// typed values or fail with a FerryError of a Vault code; a body past the cap fails as
// VAULT_RESPONSE_TOO_LARGE and nothing below it does; no error message carries a secret value or
// the token; timings derived from what Vault says are finite and never negative.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { CODES, isFerryError } from '../../src/errors.ts';
import { type VaultApi, VaultClient } from '../../src/vault/client.ts';
import { requestCredentials } from '../../src/vault/dynamic.ts';
import { readKV } from '../../src/vault/kv.ts';
import { lookupLease, renewalHorizonMs, renewLease } from '../../src/vault/leases.ts';
import { issueCertificate, parseIssueResponse } from '../../src/vault/pki.ts';
import { planNext } from '../../src/vault/session.ts';
import { budget, CANARY } from './budget.ts';

const CAP = 64 * 1024;
const TOKEN = `hvs.${'T'.repeat(24)}`;
const VAULT_CODES: string[] = [CODES.VAULT_API, CODES.VAULT_TRANSPORT, CODES.VAULT_RESPONSE_TOO_LARGE];

interface Answer {
  status: number;
  body: Buffer;
}
let answer: Answer = { status: 200, body: Buffer.alloc(0) };
let address = '';
const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  req.resume();
  res.writeHead(answer.status, { 'content-type': 'application/json' });
  res.end(answer.body);
});
let client: VaultClient;
let api: VaultApi;

before(async () => {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  client = new VaultClient({
    address,
    maxResponseBytes: CAP,
    timeoutMs: 5000,
    retry: { maxRetries: 0, minDelayMs: 0, maxDelayMs: 0 },
  });
  api = client.withToken(TOKEN);
});
after(async () => {
  await client.close();
  server.close();
});

// A value of the right type now and then, any JSON otherwise; strings carry the canary.
const secretString = fc.string({ maxLength: 8 }).map((s) => `${CANARY}${s}`);
const json = fc.jsonValue({ maxDepth: 3 });
const maybe = <T>(a: fc.Arbitrary<T>) => fc.oneof(a, json, fc.constant(undefined));
const numberish = fc.oneof(
  fc.integer(),
  fc.constantFrom(0, -1, 1e12, 1e300, -1e300, 2 ** 53 + 1, 0.5),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const data = fc.oneof(
  fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(secretString, json), { maxKeys: 4 }),
  fc.record(
    {
      data: maybe(fc.dictionary(fc.string({ maxLength: 6 }), secretString, { maxKeys: 3 })),
      metadata: maybe(
        fc.record(
          { version: numberish, destroyed: fc.boolean(), deletion_time: fc.string() },
          { requiredKeys: [] },
        ),
      ),
    },
    { requiredKeys: [] },
  ),
  fc.record(
    {
      serial_number: maybe(fc.string({ maxLength: 10 })),
      expiration: maybe(fc.oneof(numberish, numberish.map(String))),
      certificate: maybe(secretString),
      private_key: maybe(secretString),
      issuing_ca: maybe(secretString),
      ca_chain: maybe(fc.array(fc.oneof(secretString, json), { maxLength: 3 })),
      id: maybe(fc.string({ maxLength: 8 })),
      ttl: maybe(numberish),
      renewable: maybe(fc.boolean()),
    },
    { requiredKeys: [] },
  ),
);
const vaultBody = fc
  .record(
    {
      request_id: maybe(fc.uuid()),
      lease_id: maybe(fc.string({ maxLength: 12 })),
      renewable: maybe(fc.boolean()),
      lease_duration: maybe(numberish),
      data: fc.oneof(data, fc.constant(null), json),
      auth: maybe(
        fc.record(
          {
            client_token: fc.constant(CANARY),
            accessor: maybe(fc.string({ maxLength: 8 })),
            policies: maybe(fc.array(fc.string({ maxLength: 5 }))),
            lease_duration: maybe(numberish),
            renewable: maybe(fc.boolean()),
            metadata: maybe(fc.dictionary(fc.string({ maxLength: 4 }), json)),
          },
          { requiredKeys: [] },
        ),
      ),
      wrap_info: maybe(fc.record({ token: fc.constant(CANARY), ttl: numberish })),
      warnings: maybe(fc.array(fc.oneof(fc.string({ maxLength: 10 }), json), { maxLength: 2 })),
      // Vault's own error strings are shown (redacted of anything token-like, and cut).
      errors: maybe(
        fc.array(
          fc.oneof(
            fc.string({ maxLength: 20 }),
            fc.constant(`permission denied for ${TOKEN}`),
            fc.constant('x'.repeat(5000)),
          ),
          { maxLength: 3 },
        ),
      ),
      sealed: maybe(fc.boolean()),
      initialized: maybe(fc.boolean()),
    },
    { requiredKeys: [] },
  )
  .map((b) => Buffer.from(JSON.stringify(b)));

/** How a body is made: generated bodies past the cap are described, not printed, in a failure. */
type BodySpec = { json: string } | { bytes: number[] } | { nested: number } | { large: number };
function build(b: BodySpec): Buffer {
  if ('json' in b) return Buffer.from(b.json);
  if ('bytes' in b) return Buffer.from(b.bytes);
  if ('nested' in b) return Buffer.from(`{"data":${'['.repeat(b.nested)}${']'.repeat(b.nested)}}`);
  return Buffer.from(`{"data":{"k":"${CANARY}${'x'.repeat(Math.max(0, b.large - 40))}"}}`);
}
const body: fc.Arbitrary<BodySpec> = fc.oneof(
  { weight: 6, arbitrary: vaultBody.map((b) => ({ json: b.toString() })) },
  {
    weight: 1,
    arbitrary: vaultBody.chain((b) => fc.nat(b.length).map((n) => ({ json: b.subarray(0, n).toString() }))),
  },
  { weight: 1, arbitrary: fc.array(fc.nat(255), { maxLength: 300 }).map((bytes) => ({ bytes })) },
  { weight: 1, arbitrary: fc.nat(60_000).map((nested) => ({ nested })) },
  { weight: 1, arbitrary: fc.integer({ min: CAP - 64, max: 3 * CAP }).map((large) => ({ large })) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('', ' ', 'null', '[]', '1e400', '{"data":1e400}', '{"lease_duration":-0}')
      .map((json) => ({ json })),
  },
);
const status = fc.oneof(
  { weight: 4, arbitrary: fc.constant(200) },
  { weight: 2, arbitrary: fc.constantFrom(204, 400, 403, 404, 412, 429, 500, 503) },
  { weight: 1, arbitrary: fc.integer({ min: 200, max: 599 }) },
);

type Call = (a: VaultApi) => Promise<unknown>;
const CALLS: [string, Call][] = [
  ['read', (a) => a.read('secret/data/x')],
  ['list', (a) => a.list('secret/metadata/')],
  ['write', (a) => a.write('auth/kubernetes/login', { jwt: 'j' })],
  ['delete', (a) => a.delete('secret/x')],
  ['kv-v1', (a) => readKV(a, { mount: 'kv', path: 'x', type: 'kv-v1' })],
  ['kv-v2', (a) => readKV(a, { mount: 'secret', path: 'x', type: 'kv-v2', version: 2 })],
  ['dynamic GET', (a) => requestCredentials(a, { mount: 'db', path: 'creds/r' })],
  ['dynamic PUT', (a) => requestCredentials(a, { mount: 'db', path: 'creds/r', params: { ttl: '1h' } })],
  ['pki issue', (a) => issueCertificate(a, { mount: 'pki', role: 'r', commonName: 'x' } as never)],
  ['lease renew', (a) => renewLease(a, 'db/creds/r/1', 3600)],
  ['lease lookup', (a) => lookupLease(a, 'db/creds/r/1')],
  ['seal status', () => client.sealStatus()],
];

/** Anything an outcome shows (a result is logged or written to status only in part, but its JSON
 * form must not expose the token either). */
function checkError(e: unknown, what: string, size: number): void {
  assert.ok(isFerryError(e), `${what}: not a FerryError: ${e instanceof Error ? e.stack : String(e)}`);
  assert.ok(VAULT_CODES.includes(e.code), `${what}: code ${e.code}: ${e.message}`);
  assert.ok(!e.message.includes(CANARY), `${what}: message echoes a value: ${e.message.slice(0, 200)}`);
  assert.ok(!e.message.includes(TOKEN), `${what}: message shows the token`);
  assert.ok(e.message.length <= 1200, `${what}: message of ${e.message.length} characters`);
  if (e.code === CODES.VAULT_RESPONSE_TOO_LARGE)
    assert.ok(size > CAP, `${what}: ${size} bytes refused as too large`);
}

test('every call on a hostile answer returns a typed value or a Vault error', async () => {
  const seen = { ok: 0, failed: 0, tooLarge: 0 };
  await fc.assert(
    fc.asyncProperty(status, body, fc.nat(CALLS.length - 1), async (st, spec, i) => {
      const [what, call] = CALLS[i]!;
      // A 204 has no body on the wire.
      const b = st === 204 ? Buffer.alloc(0) : build(spec);
      answer = { status: st, body: b };
      const label = `${what} ← ${st} ${JSON.stringify(b.subarray(0, 120).toString())}`;
      let result: unknown;
      try {
        result = await call(api);
      } catch (e) {
        seen.failed++;
        if (isFerryError(e) && e.code === CODES.VAULT_RESPONSE_TOO_LARGE) seen.tooLarge++;
        return checkError(e, label, b.length);
      }
      seen.ok++;
      // Only a body the client read whole can have given a value.
      assert.ok(b.length <= CAP, `${label}: ${b.length} bytes accepted past the cap`);
      assert.ok(!(JSON.stringify(result) ?? '').includes(TOKEN), `${label}: result shows the token`);
      if (what === 'lease renew') {
        const r = result as { durationS: number };
        assert.equal(typeof r.durationS, 'number');
        const h = renewalHorizonMs(r.durationS, undefined, () => 0.5);
        assert.ok(Number.isFinite(h) && h >= 0, `${label}: horizon ${h}`);
      }
      if (what === 'write') {
        const auth = (result as { auth?: { lease_duration: number; renewable: boolean } } | undefined)?.auth;
        if (auth) {
          const step = planNext(
            {
              ttlSeconds: auth.lease_duration,
              renewable: auth.renewable,
              loginTtlSeconds: auth.lease_duration,
            },
            () => 0.5,
          );
          if (step.action !== 'none')
            assert.ok(Number.isFinite(step.delayMs) && step.delayMs >= 0, `${label}: ${step.delayMs}`);
        }
      }
    }),
    budget(600),
  );
  process.stderr.write(
    `fuzz: Vault answers: ${seen.ok} values, ${seen.failed} errors (${seen.tooLarge} too large)\n`,
  );
  assert.ok(seen.ok > 0 && seen.tooLarge > 0, JSON.stringify(seen));
});

test('PKI issue responses: a certificate with a serial and a finite expiry, or a Vault error', () => {
  fc.assert(
    fc.property(fc.oneof(data, json), (d) => {
      let cert: ReturnType<typeof parseIssueResponse>;
      try {
        cert = parseIssueResponse('pki/issue/r', d);
      } catch (e) {
        return checkError(e, JSON.stringify(d), 0);
      }
      assert.ok(cert.serialNumber !== '' && cert.certificate !== '');
      assert.ok(
        Number.isSafeInteger(cert.expiration) && cert.expiration > 0,
        `expiration ${cert.expiration}`,
      );
      assert.ok(cert.caChain.every((c) => typeof c === 'string' && c !== ''));
    }),
    budget(1000),
  );
});
