// The tmpfs mount path runs for real where this machine permits mounting (root with CAP_SYS_ADMIN);
// elsewhere it is skipped with the reason `mount` gave.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeAtomic } from '../../../src/csi/atomic-writer.ts';
import {
  canMountTmpfs,
  DirMounter,
  ensureRealDir,
  mountPoints,
  SCRATCH,
  TmpfsMounter,
  tmpfsSizeBytes,
} from '../../../src/csi/mounter.ts';

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
    assert.deepEqual(m.get('/mnt/with space'), { dev: '98:0', fstype: 'tmpfs', ro: false });
    assert.equal(m.get('/other')?.fstype, 'ext4');
  });
});

describe('tmpfsSizeBytes', () => {
  it('reads mount sizes and refuses anything else', () => {
    assert.equal(tmpfsSizeBytes('8m'), 8 * 1024 * 1024);
    assert.equal(tmpfsSizeBytes('512k'), 512 * 1024);
    assert.equal(tmpfsSizeBytes('4096'), 4096);
    for (const bad of ['', '0', '8x', '50%', '-1m', '8 m'])
      assert.throws(() => tmpfsSizeBytes(bad), /tmpfs size/);
  });
});

describe('ensureRealDir', () => {
  it('replaces a planted symlink or FIFO by a directory, never following the link', async () => {
    const outside = join(dir, 'outside');
    await mkdir(outside);
    const link = join(dir, 'planted-link');
    await symlink(outside, link);
    await ensureRealDir(link, 0o700);
    assert.ok((await lstat(link)).isDirectory());
    assert.ok((await lstat(outside)).isDirectory(), 'the link target is untouched');
    const fifo = join(dir, 'planted-fifo');
    execFileSync('mkfifo', [fifo]);
    await ensureRealDir(fifo, 0o700);
    assert.ok((await lstat(fifo)).isDirectory());
  });
});

describe('DirMounter', () => {
  it('stages a plain directory with a link at the target; teardown removes both', async () => {
    const m = new DirMounter();
    const s = join(dir, 'plain', 'staging');
    const t = join(dir, 'plain', 'mount');
    assert.equal(await m.isSetUp(s, t), false);
    await m.setup(s, t);
    await m.setup(s, t);
    assert.equal(await m.isSetUp(s, t), true);
    await writeAtomic(s, [{ name: 'a', data: Buffer.from('1') }], { fileMode: 0o400, dirMode: 0o700 });
    assert.equal(await readFile(join(t, 'a'), 'utf8'), '1');
    await m.teardown(s, t);
    await m.teardown(s, t);
    await assert.rejects(lstat(t), { code: 'ENOENT' });
    await assert.rejects(lstat(s), { code: 'ENOENT' });
  });
});

describe('TmpfsMounter', { skip }, () => {
  const m = new TmpfsMounter({ size: '1m' });
  const s = join(dir, 'state', 'volumes', 'key');
  const t = join(dir, 'pods', 'uid', 'volumes', 'mount');
  const lines = async (p: string) =>
    (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.split(' ')[4] === p);
  before(async () => {
    await mkdir(join(dir, 'state', 'volumes'), { recursive: true });
    await m.setup(s, t);
  });
  after(async () => {
    await m.teardown(s, t).catch(() => {});
    await m.release(join(dir, 'state', 'volumes'));
    await rm(dir, { recursive: true, force: true });
  });

  it('stages a tmpfs (nosuid,nodev,noexec) and binds it read-only at the target, once', async () => {
    assert.equal(await m.isSetUp(s, t), true);
    const [line] = await lines(s);
    assert.ok(line, 'mountinfo lists the staging directory');
    for (const opt of ['nosuid', 'nodev', 'noexec']) assert.ok(line.includes(opt), `${opt} in ${line}`);
    const info = (await mountPoints()).get(t);
    assert.equal(info?.ro, true);
    assert.equal(info?.dev, (await mountPoints()).get(s)?.dev);
    await m.setup(s, t); // idempotent: no stacked mount
    assert.equal((await lines(s)).length, 1);
    assert.equal((await lines(t)).length, 1);
  });

  it('the read-only bind is made in a private scratch mount and moved: nothing left there', async () => {
    const scratch = join(dir, 'state', 'volumes', SCRATCH);
    assert.ok((await mountPoints()).has(scratch));
    assert.deepEqual(await readdir(scratch), []);
  });

  it('the target refuses writes even from root; the staging directory takes them', async () => {
    await assert.rejects(writeFile(join(t, 'planted'), 'x'), { code: 'EROFS' });
    await writeAtomic(s, [{ name: 'static_secret_0_password', data: Buffer.from('s3cret') }], {
      fileMode: 0o440,
      dirMode: 0o750,
      uid: 0,
      gid: 3000,
    });
    const st = await stat(join(t, 'static_secret_0_password'));
    assert.equal(st.mode & 0o777, 0o440);
    assert.equal(st.gid, 3000);
    assert.equal(st.uid, 0);
    assert.equal((await stat(t)).gid, 3000);
  });

  it('a target showing something else is replaced by the staging view', async () => {
    await m.teardown(s, t);
    await mkdir(t, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', t]);
    await m.setup(s, t);
    assert.equal(await m.isSetUp(s, t), true);
    assert.equal((await lines(t)).length, 1);
  });

  it('teardown unmounts both and removes only the mount point and the staging directory', async () => {
    await m.teardown(s, t);
    const mp = await mountPoints();
    assert.equal(mp.has(t), false);
    assert.equal(mp.has(s), false);
    await assert.rejects(lstat(t), { code: 'ENOENT' });
    await assert.rejects(lstat(s), { code: 'ENOENT' });
    assert.ok((await lstat(join(dir, 'pods', 'uid', 'volumes'))).isDirectory(), 'the parent stays');
    await m.teardown(s, t); // idempotent
  });

  it('does not mount through a planted symlink at the staging path', async () => {
    const outside = join(dir, 'outside-tmpfs');
    await mkdir(outside);
    await symlink(outside, s);
    await m.setup(s, t);
    assert.equal((await mountPoints()).has(outside), false);
    assert.ok((await lstat(s)).isDirectory());
    await m.teardown(s, t);
  });
});

after(async () => {
  if (!probe.ok) await rm(dir, { recursive: true, force: true });
});
