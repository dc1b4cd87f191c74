// The tmpfs mount path runs for real where this machine permits mounting (root with CAP_SYS_ADMIN);
// elsewhere it is skipped with the reason `mount` gave.
import assert from 'node:assert/strict';
import { lstat, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeAtomic } from '../../../src/csi/atomic-writer.ts';
import { canMountTmpfs, DirMounter, mountPoints, TmpfsMounter } from '../../../src/csi/mounter.ts';

const dir = await mkdtemp(join(tmpdir(), 'ferry-mnt-'));
const probe = await canMountTmpfs(join(dir, 'probe'));
const skip = probe.ok ? false : `cannot mount tmpfs here: ${probe.reason}`;

describe('mountPoints', () => {
  it('decodes octal escapes of /proc/self/mountinfo', async () => {
    const f = join(dir, 'mountinfo');
    await writeFile(
      f,
      '36 35 98:0 / /mnt/with\\040space rw,noatime master:1 - tmpfs tmpfs rw\n' +
        '37 35 98:0 / /other rw - ext4 /dev/sda1 rw\n',
    );
    const m = await mountPoints(f);
    assert.equal(m.get('/mnt/with space'), 'tmpfs');
    assert.equal(m.get('/other'), 'ext4');
  });
});

describe('DirMounter', () => {
  it('creates and removes a plain directory volume', async () => {
    const m = new DirMounter();
    const t = join(dir, 'plain', 'mount');
    assert.equal(await m.isSetUp(t), false);
    await m.setup(t);
    assert.equal(await m.isSetUp(t), true);
    await writeAtomic(t, [{ name: 'a', data: Buffer.from('1') }], { fileMode: 0o400, dirMode: 0o700 });
    await m.teardown(t);
    await m.teardown(t);
    await assert.rejects(lstat(t), { code: 'ENOENT' });
  });
});

describe('TmpfsMounter', { skip }, () => {
  const m = new TmpfsMounter({ size: '1m' });
  const t = join(dir, 'pods', 'uid', 'volumes', 'mount');
  before(async () => {
    await m.setup(t);
  });
  after(async () => {
    await m.teardown(t).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });

  it('mounts an in-memory filesystem (nosuid,nodev,noexec) at the target, once', async () => {
    assert.equal(await m.isSetUp(t), true);
    const info = await readFile('/proc/self/mountinfo', 'utf8');
    const line = info.split('\n').find((l) => l.split(' ')[4] === t);
    assert.ok(line, 'mountinfo lists the target');
    for (const opt of ['nosuid', 'nodev', 'noexec']) assert.ok(line.includes(opt), `${opt} in ${line}`);
    await m.setup(t); // idempotent: no stacked mount
    assert.equal(info.split('\n').filter((l) => l.split(' ')[4] === t).length, 1);
  });

  it('holds the atomically written files with their modes; teardown unmounts and removes', async () => {
    await writeAtomic(t, [{ name: 'static_secret_0_password', data: Buffer.from('s3cret') }], {
      fileMode: 0o440,
      dirMode: 0o750,
      uid: 0,
      gid: 3000,
    });
    const st = await stat(join(t, 'static_secret_0_password'));
    assert.equal(st.mode & 0o777, 0o440);
    assert.equal(st.gid, 3000);
    assert.equal((await stat(t)).gid, 3000);
    await m.teardown(t);
    assert.equal((await mountPoints()).has(t), false);
    await assert.rejects(lstat(t), { code: 'ENOENT' });
    await m.teardown(t); // idempotent
  });
});

after(async () => {
  if (!probe.ok) await rm(dir, { recursive: true, force: true });
});
