// CSI node driver inputs (src/csi): what kubelet passes on behalf of a hostile pod (NodePublishVolume
// and NodeUnpublishVolume requests, the volume context the pod's volumeAttributes fill), and what a
// tampered node leaves in the state directory. Validation accepts a request or refuses it with a
// CsiError (INVALID_ARGUMENT), never another exception, never echoing the token; what it accepts is
// bounded and below kubelet's pods directory. The state loader keeps exactly the records the driver
// itself writes and drops (and removes) everything else. Only the pure entry points are used here:
// validate.ts, state.ts, names.ts, plan.ts.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { CsiError } from '../../src/csi/errors.ts';
import { isPayloadName, isValidFileName, payloadName } from '../../src/csi/names.ts';
import { planFetch, planPublish } from '../../src/csi/plan.ts';
import { keyOf, StateStore, type VolumeRecord } from '../../src/csi/state.ts';
import { isValidTarget, validatePublish, validateUnpublish } from '../../src/csi/validate.ts';
import { testGrant } from '../unit/csi/grant.ts';
import { budget, CANARY } from './budget.ts';

const ROOT = '/var/lib/kubelet/pods';
const AUDIENCE = 'csi.vso.hashicorp.com';

const segment = fc.oneof(
  fc.constantFrom(
    'uid-1',
    'volumes',
    'kubernetes.io~csi',
    'secrets',
    'mount',
    '..',
    '.',
    '',
    'a b',
    '\u0000',
  ),
  fc.stringMatching(/^[a-z0-9.~-]{1,12}$/),
);
const path = fc.oneof(
  fc.array(segment, { maxLength: 8 }).map((s) => `${ROOT}/${s.join('/')}`),
  fc.array(segment, { maxLength: 6 }).map((s) => `/${s.join('/')}`),
  fc.constantFrom('', '/', ROOT, `${ROOT}/`, `${ROOT}/../pods/x`, `${ROOT}x/y`, 'relative/x', `${ROOT}/a//b`),
  fc.string({ maxLength: 30 }),
);

const CTX_KEYS = {
  podName: 'csi.storage.k8s.io/pod.name',
  podNamespace: 'csi.storage.k8s.io/pod.namespace',
  podUid: 'csi.storage.k8s.io/pod.uid',
  serviceAccount: 'csi.storage.k8s.io/serviceAccount.name',
  tokens: 'csi.storage.k8s.io/serviceAccount.tokens',
};
const dnsish = fc.oneof(
  fc.stringMatching(/^[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?$/),
  fc.constantFrom('', 'A', '-a', 'a-', 'a'.repeat(254), 'a'.repeat(64), '..', 'a/b', CANARY),
  fc.string({ maxLength: 10 }),
);
const tokens = fc.oneof(
  fc.constant(JSON.stringify({ [AUDIENCE]: { token: CANARY, expirationTimestamp: '2030-01-01T00:00:00Z' } })),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.jsonValue().map((v) => JSON.stringify({ [AUDIENCE]: { token: v } })),
  fc.string({ maxLength: 30 }).map((s) => `${s}${CANARY}`),
  fc.constantFrom(
    '',
    '{',
    'null',
    '[]',
    `{"${AUDIENCE}":{"token":""}}`,
    `{"__proto__":{"token":"${CANARY}"}}`,
  ),
);
const volumeContext = fc
  .record(
    {
      [CTX_KEYS.podName]: dnsish,
      [CTX_KEYS.podNamespace]: dnsish,
      [CTX_KEYS.podUid]: fc.oneof(fc.uuid(), fc.string({ maxLength: 10 }), fc.constant('x'.repeat(200))),
      [CTX_KEYS.serviceAccount]: dnsish,
      [CTX_KEYS.tokens]: tokens,
      csiSecretsName: dnsish,
      csiSecretsNamespace: dnsish,
    },
    { requiredKeys: [] },
  )
  .chain((ctx) =>
    fc
      .dictionary(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }), { maxKeys: 3 })
      .map((extra) => ({ ...extra, ...ctx })),
  );

const capability = fc.option(
  fc.record(
    {
      mount: fc.option(
        fc.record(
          {
            fs_type: fc.constantFrom('', 'ext4', 'tmpfs'),
            mount_flags: fc.array(fc.string({ maxLength: 8 }), { maxLength: 2 }),
            volume_mount_group: fc.oneof(
              fc.nat().map(String),
              fc.constantFrom(
                '',
                '-1',
                '4294967295',
                '4294967296',
                '99999999999',
                '1e3',
                ' 1',
                '0x10',
                '007',
              ),
            ),
          },
          { requiredKeys: [] },
        ),
        { nil: undefined },
      ),
      block: fc.option(fc.constant({}), { nil: undefined }),
      access_type: fc.constantFrom('mount', 'block', undefined),
      access_mode: fc.option(
        fc.record({
          mode: fc.constantFrom(
            'SINGLE_NODE_WRITER',
            'SINGLE_NODE_READER_ONLY',
            'MULTI_NODE_READER_ONLY',
            'MULTI_NODE_SINGLE_WRITER',
            'MULTI_NODE_MULTI_WRITER',
            'UNKNOWN',
          ),
        }),
        { nil: undefined },
      ),
    },
    { requiredKeys: [] },
  ),
  { nil: null },
);

/** What kubelet sends for a pod that mounts a CSISecrets correctly. */
const wellFormed = fc.record({
  volume_id: fc.constant('csi-0123'),
  target_path: fc
    .stringMatching(/^[a-z0-9-]{1,12}$/)
    .map((u) => `${ROOT}/${u}/volumes/kubernetes.io~csi/secrets/mount`),
  volume_capability: fc.constant({ mount: {}, access_mode: { mode: 'SINGLE_NODE_READER_ONLY' } }),
  readonly: fc.constant(true),
  volume_context: fc.record({
    [CTX_KEYS.podName]: fc.constant('web-0'),
    [CTX_KEYS.podNamespace]: fc.constant('team-a'),
    [CTX_KEYS.podUid]: fc.uuid(),
    [CTX_KEYS.serviceAccount]: fc.constant('web'),
    [CTX_KEYS.tokens]: fc.constant(JSON.stringify({ [AUDIENCE]: { token: CANARY } })),
    csiSecretsName: fc.constant('db'),
  }),
});
/** Field by field, either the well-formed value or a hostile one. */
const publishRequest = fc
  .tuple(
    wellFormed,
    fc.record(
      {
        volume_id: fc.oneof(fc.string({ maxLength: 20 }), fc.constant('')),
        target_path: path,
        volume_capability: capability,
        readonly: fc.option(fc.boolean(), { nil: undefined }),
        volume_context: volumeContext,
        secrets: fc.dictionary(fc.string({ maxLength: 5 }), fc.constant(CANARY), { maxKeys: 2 }),
      },
      { requiredKeys: [] },
    ),
    fc.subarray(
      ['volume_id', 'target_path', 'volume_capability', 'readonly', 'volume_context', 'secrets'] as const,
      { maxLength: 2 },
    ),
    fc.array(fc.constantFrom(...Object.keys(CTX_KEYS), 'csiSecretsName', 'csiSecretsNamespace'), {
      maxLength: 2,
    }),
  )
  .map(([good, bad, fields, ctxKeys]) => {
    const req: Record<string, unknown> = { ...good };
    for (const f of fields) if (f in bad) req[f] = bad[f];
    // Now and then only some context keys are hostile, the rest well-formed.
    if (ctxKeys.length > 0 && bad.volume_context) {
      const ctx: Record<string, string> = { ...good.volume_context };
      for (const k of ctxKeys) {
        const key = (CTX_KEYS as Record<string, string>)[k] ?? k;
        const v = bad.volume_context[key];
        if (v === undefined) delete ctx[key];
        else ctx[key] = v;
      }
      req.volume_context = ctx;
    }
    return req as { readonly?: boolean } & Record<string, unknown>;
  });

const below = (p: string): boolean => p.startsWith(`${ROOT}/`) && !p.split('/').includes('..');

/** A refusal must be a CsiError that names no token or secret. */
function refused(e: unknown, what: string): void {
  assert.ok(e instanceof CsiError, `${what}: ${String(e)}`);
  assert.equal(e.code, 'INVALID_ARGUMENT', `${what}: ${e.message}`);
  assert.ok(!e.message.includes(CANARY), `${what}: echoes a secret: ${e.message}`);
}

test('NodePublishVolume: a request is accepted below the pods directory or refused as INVALID_ARGUMENT', () => {
  let accepted = 0;
  fc.assert(
    fc.property(publishRequest, fc.boolean(), (req, rooted) => {
      const opts = { audience: AUDIENCE, ...(rooted ? { targetRoot: ROOT } : {}) };
      let v: ReturnType<typeof validatePublish>;
      try {
        v = validatePublish(req as never, opts);
      } catch (e) {
        return refused(e, JSON.stringify(req));
      }
      accepted++;
      assert.equal(req.readonly, true, 'a read-write publish was accepted');
      assert.ok(v.volumeId !== '' && v.targetPath.startsWith('/'));
      assert.equal(normalize(v.targetPath), v.targetPath);
      if (rooted) assert.ok(below(v.targetPath), `target ${v.targetPath} is not below ${ROOT}`);
      if (v.mountGroup !== undefined)
        assert.ok(Number.isInteger(v.mountGroup) && v.mountGroup >= 0 && v.mountGroup < 2 ** 32);
      for (const x of [
        v.context.pod.name,
        v.context.pod.namespace,
        v.context.pod.serviceAccount,
        v.context.csiSecrets.name,
        v.context.csiSecrets.namespace,
      ])
        assert.match(x, /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/);
      assert.ok(v.context.pod.uid.length <= 128);
      assert.ok(typeof v.context.token === 'string' && v.context.token !== '');
      // What a republish is compared by, and what is published at a target: consistent decisions.
      const plan = planPublish({
        prev: undefined,
        volumeId: v.volumeId,
        fingerprint: 'f',
        mounted: true,
        cached: undefined,
        nowMs: 0,
        refreshIntervalMs: 0,
        volumes: 0,
        maxVolumes: 1,
      });
      assert.deepEqual(plan, { action: 'publish', samePublish: false });
      // A target the validation accepts is one a state record may name.
      if (rooted) assert.ok(isValidTarget(v.targetPath, ROOT));
    }),
    budget(1500),
  );
  process.stderr.write(`fuzz: NodePublishVolume: ${accepted} accepted\n`);
});

test('NodeUnpublishVolume and recorded targets: below the pods directory, normalised, or refused', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 10 }), path, (volume_id, target_path) => {
      try {
        const v = validateUnpublish({ volume_id, target_path }, { targetRoot: ROOT });
        assert.ok(below(v.targetPath) && normalize(v.targetPath) === v.targetPath, v.targetPath);
      } catch (e) {
        refused(e, target_path);
      }
      if (isValidTarget(target_path, ROOT))
        assert.ok(below(target_path) && normalize(target_path) === target_path);
    }),
    budget(1500),
  );
});

test('file and payload names: only names the driver generates are accepted, and never both kinds', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 20 }), fc.stringMatching(/^[.A-Za-z0-9_/-]{0,12}$/)), (n) => {
      if (isValidFileName(n)) {
        assert.ok(!n.includes('/') && !n.startsWith('..') && n !== '.' && n.length <= 253, n);
        assert.ok(!isPayloadName(n), `${n} is both a file and a payload name`);
      }
      if (isPayloadName(n)) assert.ok(n.startsWith('..') && !n.includes('/'));
    }),
    budget(3000),
  );
  fc.assert(
    fc.property(
      fc.date({
        min: new Date('1970-01-01T00:00:00Z'),
        max: new Date('9999-12-31T23:59:59Z'),
        noInvalidDate: true,
      }),
      fc.stringMatching(/^[0-9a-f]{10}$/),
      (d, hex) => {
        const p = payloadName(d, hex);
        assert.ok(isPayloadName(p), p);
        assert.ok(!isValidFileName(p), p);
      },
    ),
    budget(500),
  );
});

// ── The state directory ─────────────────────────────────────────────────────────────────────────

const target = fc
  .stringMatching(/^[a-z0-9-]{1,12}$/)
  .map((u) => `${ROOT}/${u}/volumes/kubernetes.io~csi/secrets/mount`);
const fileName = fc.stringMatching(/^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,20}$/).filter(isValidFileName);
const held = fc.oneof(
  fc.record({
    kind: fc.constant('lease'),
    leaseId: fc.string({ maxLength: 10 }),
    clientId: fc.string({ maxLength: 10 }),
    durationS: fc.nat(),
    renewable: fc.boolean(),
    startedAtMs: fc.nat(),
    revoke: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('cert'),
    mount: fc.string({ maxLength: 10 }),
    serial: fc.string({ maxLength: 10 }),
    expiration: fc.nat(),
    issuedAt: fc.nat(),
    expiryOffsetMs: fc.nat(),
    revoke: fc.boolean(),
  }),
);
/** A record as the driver writes it. */
const goodRecord = fc
  .record({
    volumeId: fc.string({ minLength: 1, maxLength: 10 }),
    targetPath: target,
    fingerprint: fc.stringMatching(/^[0-9a-f]{64}$/),
    who: fc.string({ maxLength: 20 }),
    podUid: fc.uuid(),
    fetchedAt: fc.nat(),
    generation: fc.nat(),
    gid: fc.option(fc.nat({ max: 2 ** 32 - 1 }), { nil: undefined }),
    fileMode: fc.constantFrom(0o400, 0o440, 0o444),
    dirMode: fc.constantFrom(0o500, 0o550, 0o555, 0o700, 0o750, 0o755),
    items: fc.array(
      fc.record(
        {
          ref: fc.record({ kind: fc.constantFrom('static', 'approle', 'dynamic', 'pki'), index: fc.nat(5) }),
          names: fc.array(fileName, { maxLength: 3 }),
          held,
        },
        { requiredKeys: ['ref', 'names'] },
      ),
      { maxLength: 3 },
    ),
  })
  .map(
    ({ generation, gid, fileMode, dirMode, ...r }): VolumeRecord => ({
      ...r,
      grant: {
        ...testGrant(generation, {}),
        ownership: { fileMode, dirMode, ...(gid !== undefined ? { gid } : {}) },
      },
      items: r.items as VolumeRecord['items'],
    }),
  );

type Json = Record<string, unknown>;
/** Ways a record stops being one the driver writes: each must make the loader drop it. */
const FORGERIES: [string, (r: Json) => void][] = [
  [
    'target outside the pods directory',
    (r) => {
      r.targetPath = '/etc/kubernetes/x';
    },
  ],
  [
    'target with ..',
    (r) => {
      r.targetPath = `${ROOT}/a/../../../etc`;
    },
  ],
  [
    'file name with a slash',
    (r) => {
      (r.items as Json[]).push({ ref: { kind: 'static', index: 0 }, names: ['../../etc/passwd'] });
    },
  ],
  [
    'payload-like file name',
    (r) => {
      (r.items as Json[]).push({ ref: { kind: 'static', index: 0 }, names: ['..data'] });
    },
  ],
  [
    'a uid other than root',
    (r) => {
      ((r.grant as Json).ownership as Json).uid = 1000;
    },
  ],
  [
    'group-writable files',
    (r) => {
      ((r.grant as Json).ownership as Json).fileMode = 0o460;
    },
  ],
  [
    'world-writable directories',
    (r) => {
      ((r.grant as Json).ownership as Json).dirMode = 0o757;
    },
  ],
  [
    'a setuid directory',
    (r) => {
      ((r.grant as Json).ownership as Json).dirMode = 0o4755;
    },
  ],
  [
    'a gid beyond 32 bits',
    (r) => {
      ((r.grant as Json).ownership as Json).gid = 2 ** 32;
    },
  ],
  [
    'no grant',
    (r) => {
      delete r.grant;
    },
  ],
  [
    'items not a list',
    (r) => {
      r.items = { 0: 1 };
    },
  ],
  [
    'a volume id that is no string',
    (r) => {
      r.volumeId = 7;
    },
  ],
  [
    'a fetch time that is no number',
    (r) => {
      r.fetchedAt = 'soon';
    },
  ],
  [
    'an item of an unknown kind',
    (r) => {
      (r.items as Json[]).push({ ref: { kind: 'shell', index: 0 }, names: [] });
    },
  ],
  [
    'an item with a negative index',
    (r) => {
      (r.items as Json[]).push({ ref: { kind: 'pki', index: -1 }, names: [] });
    },
  ],
  [
    'a held lease without an id',
    (r) => {
      (r.items as Json[]).push({ ref: { kind: 'dynamic', index: 0 }, names: [], held: { kind: 'lease' } });
    },
  ],
  [
    'held of an unknown kind',
    (r) => {
      (r.items as Json[]).push({
        ref: { kind: 'dynamic', index: 0 },
        names: [],
        held: { kind: 'token', id: 'x' },
      });
    },
  ],
  [
    'a CSISecrets generation that is no number',
    (r) => {
      ((r.grant as Json).csiSecrets as Json).generation = '1';
    },
  ],
];

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-fuzz-state-'));
});
after(() => rm(dir, { recursive: true, force: true }));

test("state records: the driver's own are kept, forged ones dropped and removed", async () => {
  let n = 0;
  await fc.assert(
    fc.asyncProperty(
      goodRecord,
      fc.option(fc.nat(FORGERIES.length - 1), { nil: undefined }),
      async (rec, forgery) => {
        const d = join(dir, `r${n++}`);
        const store = new StateStore(d);
        await store.saveVolume(rec);
        const name = `volume-${keyOf(rec.targetPath)}.json`;
        let label = 'genuine';
        if (forgery !== undefined) {
          const [what, forge] = FORGERIES[forgery]!;
          label = what;
          const forged = structuredClone(rec) as unknown as Json;
          forge(forged);
          await writeFile(join(d, name), JSON.stringify(forged));
        }
        const dropped: string[] = [];
        const got = await store.load(
          (f, err) => {
            assert.ok(!err.includes(CANARY));
            dropped.push(f);
          },
          (p) => isValidTarget(p, ROOT),
        );
        if (forgery === undefined) {
          assert.deepEqual(got.volumes, [JSON.parse(JSON.stringify(rec))], 'a genuine record was dropped');
          assert.deepEqual(dropped, []);
        } else {
          assert.deepEqual(got.volumes, [], `kept a record with ${label}`);
          assert.deepEqual(dropped, [name]);
          assert.deepEqual(await readdir(d), [], 'the forged record was not removed');
        }
        // What survived plans the same as before the restart.
        for (const v of got.volumes) planFetch(v, true, v.grant, []);
      },
    ),
    budget(300),
  );
});

test('state directory: random, truncated, huge and hostile files never make load throw', async () => {
  let n = 0;
  const content = fc.oneof(
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
    goodRecord.chain((r) =>
      fc.nat(JSON.stringify(r).length).map((cut) => Buffer.from(JSON.stringify(r).slice(0, cut))),
    ),
    fc.jsonValue({ maxDepth: 4 }).map((v) => Buffer.from(JSON.stringify(v))),
    fc.nat(20_000).map((depth) => Buffer.from(`${'['.repeat(depth)}${']'.repeat(depth)}`)),
    fc.constantFrom(
      Buffer.from(`"${'x'.repeat(300 * 1024)}"`),
      Buffer.from('{"__proto__":{"volumeId":"x"}}'),
      Buffer.from('\uFEFF{}'),
    ),
  );
  const entry = fc.record({
    name: fc.oneof(
      fc.stringMatching(/^[0-9a-f]{32}$/).map((k) => `volume-${k}.json`),
      fc.constantFrom('orphans.json', '.volume-x.json.tmp', 'volume-.json'),
    ),
    kind: fc.constantFrom('file', 'file', 'file', 'symlink', 'dir'),
    content,
  });
  await fc.assert(
    fc.asyncProperty(fc.array(entry, { maxLength: 5 }), async (entries) => {
      const d = join(dir, `h${n++}`);
      const store = new StateStore(d);
      await store.saveOrphans([]);
      for (const e of entries) {
        const p = join(d, e.name);
        await rm(p, { recursive: true, force: true });
        if (e.kind === 'file') await writeFile(p, e.content);
        else if (e.kind === 'symlink') await symlink('/etc/hostname', p);
        else await (await import('node:fs/promises')).mkdir(p);
      }
      const got = await store.load(
        () => {},
        (p) => isValidTarget(p, ROOT),
      );
      for (const v of got.volumes) {
        assert.ok(isValidTarget(v.targetPath, ROOT));
        assert.ok(v.items.every((i) => i.names.every(isValidFileName)));
      }
      assert.ok(Array.isArray(got.orphans));
    }),
    budget(200),
  );
});
