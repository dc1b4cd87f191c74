// Regressions for what the fuzz suite (test/fuzz/csi.test.ts) found in the state loader: records
// whose fields had the wrong type or an unknown kind were kept, and resumed as if the driver had
// written them (a held lease without an id, a fetch time that is a string, an item kind no list has).
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { keyOf, StateStore, type VolumeRecord } from '../../../src/csi/state.ts';
import { testGrant } from './grant.ts';

const target = '/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~csi/secrets/mount';
const record: VolumeRecord = {
  volumeId: 'v1',
  targetPath: target,
  fingerprint: 'f',
  who: 'pod a/b',
  podUid: 'uid-1',
  grant: testGrant(1, {}),
  fetchedAt: 0,
  items: [
    {
      ref: { kind: 'dynamic', index: 0 },
      names: ['dynamic_secret_0_password'],
      held: {
        kind: 'lease',
        leaseId: 'l',
        clientId: 'c',
        durationS: 60,
        renewable: true,
        startedAtMs: 0,
        revoke: true,
      },
    },
  ],
};

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-state-forged-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const FORGED: [string, (r: VolumeRecord) => void][] = [
  ['a fetch time that is a string', (r) => Object.assign(r, { fetchedAt: 'soon' })],
  ['an empty volume id', (r) => Object.assign(r, { volumeId: '' })],
  ['an item kind no list has', (r) => Object.assign(r.items[0]!.ref, { kind: 'shell' })],
  ['a negative item index', (r) => Object.assign(r.items[0]!.ref, { index: -1 })],
  ['a held lease without an id', (r) => delete (r.items[0]!.held as { leaseId?: string }).leaseId],
  ['held of an unknown kind', (r) => Object.assign(r.items[0]!.held!, { kind: 'token' })],
  ['a generation that is a string', (r) => Object.assign(r.grant.csiSecrets, { generation: '1' })],
  ['a snapshot without a spec', (r) => delete (r.grant.snapshot as { spec?: unknown }).spec],
  ['an array for the consumer', (r) => Object.assign(r.grant, { consumer: [] })],
];

test("the driver's own record is kept; one with a forged field is dropped and removed", async () => {
  const genuine = new StateStore(join(dir, 'genuine'));
  await genuine.saveVolume(record);
  assert.deepEqual((await genuine.load(() => assert.fail('dropped'))).volumes, [record]);
  for (const [what, forge] of FORGED) {
    const d = join(dir, what.replaceAll(' ', '-'));
    const r = structuredClone(record);
    forge(r);
    await new StateStore(d).saveVolume(record);
    await writeFile(join(d, `volume-${keyOf(target)}.json`), JSON.stringify(r));
    const dropped: string[] = [];
    const got = await new StateStore(d).load((f) => dropped.push(f));
    assert.deepEqual(got.volumes, [], `kept a record with ${what}`);
    assert.equal(dropped.length, 1, what);
    assert.deepEqual(await readdir(d), [], what);
  }
});

test('orphans whose held items are not leases or certificates are dropped', async () => {
  const d = join(dir, 'orphans');
  const s = new StateStore(d);
  await s.saveOrphans([{ who: 'pod a/b', grant: testGrant(1, {}), held: [{ kind: 'cert' } as never] }]);
  const dropped: string[] = [];
  assert.deepEqual((await s.load((f) => dropped.push(f))).orphans, []);
  assert.deepEqual(dropped, ['orphans.json']);
});
