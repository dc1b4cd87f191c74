// The state directory as untrusted input: what a tampered node can plant there is dropped with a
// report, never followed, never waited on, never a crash.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { keyOf, StateStore, type VolumeRecord } from '../../../src/csi/state.ts';
import { testGrant } from './grant.ts';

const ROOT = '/var/lib/kubelet/pods';
const target = `${ROOT}/uid-1/volumes/kubernetes.io~csi/secrets/mount`;
const record = (over: Partial<VolumeRecord> = {}): VolumeRecord => ({
  volumeId: 'v1',
  targetPath: target,
  fingerprint: 'f',
  who: 'pod a/b',
  podUid: 'uid-1',
  grant: testGrant(1, {}),
  fetchedAt: 0,
  items: [{ ref: { kind: 'static', index: 0 }, names: ['static_secret_0_password'] }],
  ...over,
});
const below = (p: string) => p.startsWith(`${ROOT}/`);

describe('StateStore.load', () => {
  let dir: string;
  let outside: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-state-'));
    outside = await mkdtemp(join(tmpdir(), 'ferry-state-outside-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  it('round-trips what it saved', async () => {
    const s = new StateStore(join(dir, 'ok'));
    await s.saveVolume(record());
    await s.saveOrphans([{ who: 'pod a/b', grant: testGrant(1, {}), held: [], attempts: 2 }]);
    const got = await s.load(() => assert.fail('nothing to drop'), below);
    assert.deepEqual(got.volumes, [record()]);
    assert.equal(got.orphans[0]?.attempts, 2);
    const t = `${ROOT}/uid-7/mount`;
    const pending = {
      payload: '..2026_01_01_00_00_00.0123456789',
      next: record({ targetPath: t, fetchedAt: 1 }),
    };
    await s.saveVolume(record({ targetPath: t, pending }));
    const again = await s.load(() => assert.fail('nothing to drop'), below);
    assert.deepEqual(again.volumes.find((v) => v.targetPath === t)?.pending, pending, 'a write under way');
  });

  it('drops links, FIFOs, oversized, malformed and forged records, and removes them', async () => {
    const d = join(dir, 'tampered');
    const s = new StateStore(d);
    await s.saveVolume(record());
    const secret = join(outside, 'secret');
    await writeFile(secret, JSON.stringify(record()));
    const name = (c: string) => `volume-${c.repeat(32)}.json`;
    await symlink(secret, join(d, name('a')));
    execFileSync('mkfifo', [join(d, name('b'))]);
    await writeFile(join(d, name('c')), `"${'x'.repeat(300 * 1024)}"`);
    await writeFile(join(d, name('d')), '{not json');
    await writeFile(join(d, name('e')), JSON.stringify(record())); // name does not match its target
    const forged = (over: Partial<VolumeRecord>) => {
      const r = record(over);
      return writeFile(join(d, `volume-${keyOf(r.targetPath)}.json`), JSON.stringify(r));
    };
    await forged({ targetPath: '/etc' });
    await forged({
      targetPath: `${ROOT}/uid-2/mount`,
      items: [{ ref: { kind: 'static', index: 0 }, names: ['../../etc/shadow'] }],
    });
    await forged({
      targetPath: `${ROOT}/uid-3/mount`,
      grant: { ...testGrant(1, {}), ownership: { uid: 65532, fileMode: 0o666, dirMode: 0o777 } },
    });
    // A write under way whose payload the driver would not name, or whose record is for another
    // target or nests another write.
    const payload = '..2026_01_01_00_00_00.0123456789';
    await forged({
      targetPath: `${ROOT}/uid-4/mount`,
      pending: { payload: '..', next: record({ targetPath: `${ROOT}/uid-4/mount` }) },
    });
    await forged({ targetPath: `${ROOT}/uid-5/mount`, pending: { payload, next: record() } });
    await forged({
      targetPath: `${ROOT}/uid-6/mount`,
      pending: {
        payload,
        next: { ...record({ targetPath: `${ROOT}/uid-6/mount` }), pending: { payload, next: record() } },
      },
    });
    await symlink(secret, join(d, 'orphans.json'));
    // A temporary file a crash left before its rename goes without a report.
    await writeFile(join(d, `.volume-${keyOf(target)}.json.0a1b2c3d`), '{');
    const dropped: string[] = [];
    const got = await s.load((file) => dropped.push(file), below);
    assert.deepEqual(got.volumes, [record()]);
    assert.deepEqual(got.orphans, []);
    assert.equal(dropped.length, 12);
    assert.deepEqual(await readdir(d), [`volume-${keyOf(target)}.json`]);
    assert.equal(await readFile(secret, 'utf8'), JSON.stringify(record()), 'the link target is untouched');
  });

  // Found by test/fuzz/csi.test.ts: records with a field of the wrong type or an unknown kind were
  // kept and resumed as if the driver had written them.
  it('drops a record with a forged field, and orphans that hold no lease or certificate', async () => {
    const leased = (): VolumeRecord =>
      record({
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
      });
    const kept = new StateStore(join(dir, 'leased'));
    await kept.saveVolume(leased());
    assert.deepEqual((await kept.load(() => assert.fail('dropped'), below)).volumes, [leased()]);
    const forgeries: ((r: VolumeRecord) => void)[] = [
      (r) => Object.assign(r, { fetchedAt: 'soon' }),
      (r) => Object.assign(r, { volumeId: '' }),
      (r) => Object.assign(r.items[0]!.ref, { kind: 'shell' }),
      (r) => Object.assign(r.items[0]!.ref, { index: -1 }),
      (r) => delete (r.items[0]!.held as { leaseId?: string }).leaseId,
      (r) => Object.assign(r.items[0]!.held!, { kind: 'token' }),
      (r) => Object.assign(r.grant.csiSecrets, { generation: '1' }),
      (r) => delete (r.grant.snapshot as { spec?: unknown }).spec,
      (r) => Object.assign(r.grant, { consumer: [] }),
    ];
    for (const [i, forge] of forgeries.entries()) {
      const d = join(dir, `forged-${i}`);
      const r = leased();
      forge(r);
      await new StateStore(d).saveVolume(leased());
      await writeFile(join(d, `volume-${keyOf(target)}.json`), JSON.stringify(r));
      const dropped: string[] = [];
      assert.deepEqual(
        (await new StateStore(d).load((f) => dropped.push(f), below)).volumes,
        [],
        `forgery ${i}`,
      );
      assert.equal(dropped.length, 1, `forgery ${i}`);
      assert.deepEqual(await readdir(d), [], `forgery ${i}`);
    }
    const o = new StateStore(join(dir, 'orphans'));
    await o.saveOrphans([{ who: 'pod a/b', grant: testGrant(1, {}), held: [{ kind: 'cert' } as never] }]);
    const dropped: string[] = [];
    assert.deepEqual((await o.load((f) => dropped.push(f), below)).orphans, []);
    assert.deepEqual(dropped, ['orphans.json']);
  });
});
