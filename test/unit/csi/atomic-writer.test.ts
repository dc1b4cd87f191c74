import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DATA_DIR_LINK, publishedNames, readBack, writeAtomic } from '../../../src/csi/atomic-writer.ts';
import { isPayloadName, isValidFileName, payloadName } from '../../../src/csi/names.ts';

const f = (name: string, text: string) => ({ name, data: Buffer.from(text) });
const own = { fileMode: 0o440, dirMode: 0o750 };

describe('writeAtomic', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ferry-aw-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });
  const fresh = async (name: string) => {
    const d = join(root, name);
    await mkdir(d);
    return d;
  };

  it('writes files behind ..data with the requested modes', async () => {
    const d = await fresh('first');
    await writeAtomic(d, [f('a', 'one'), f('b', 'two')], own);
    assert.deepEqual(await publishedNames(d), ['a', 'b']);
    assert.equal(await readFile(join(d, 'a'), 'utf8'), 'one');
    assert.equal(await readlink(join(d, 'a')), join(DATA_DIR_LINK, 'a'));
    const payload = await readlink(join(d, DATA_DIR_LINK));
    assert.match(payload, /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.[0-9a-f]{10}$/);
    assert.equal((await stat(join(d, 'a'))).mode & 0o777, 0o440);
    assert.equal((await stat(d)).mode & 0o777, 0o750);
    assert.equal((await stat(join(d, payload))).mode & 0o777, 0o750);
  });

  it('swaps in place: changed, added and removed names; the old payload goes', async () => {
    const d = await fresh('swap');
    await writeAtomic(d, [f('a', 'one'), f('gone', 'x')], own);
    const first = await readlink(join(d, DATA_DIR_LINK));
    await writeAtomic(d, [f('a', 'uno'), f('new', 'y')], own);
    const second = await readlink(join(d, DATA_DIR_LINK));
    assert.notEqual(first, second);
    assert.deepEqual(await publishedNames(d), ['a', 'new']);
    assert.equal(await readFile(join(d, 'a'), 'utf8'), 'uno');
    const entries = (await readdir(d)).sort();
    assert.deepEqual(entries, [DATA_DIR_LINK, second, 'a', 'new'].sort());
  });

  it('a reader never sees a mixed or partial set during rewrites', async () => {
    const d = await fresh('readers');
    await writeAtomic(d, [f('x', '0'), f('y', '0')], own);
    let stop = false;
    const seen: string[] = [];
    const reader = (async () => {
      while (!stop) {
        // Resolve ..data once, then read both files through that payload: one consistent version.
        try {
          const p = await readlink(join(d, DATA_DIR_LINK));
          const [x, y] = await Promise.all([
            readFile(join(d, p, 'x'), 'utf8'),
            readFile(join(d, p, 'y'), 'utf8'),
          ]);
          seen.push(`${x}${y}`);
        } catch (err) {
          // The payload we resolved may be removed by the next write; that is not a torn read.
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
    })();
    for (let i = 1; i <= 40; i++) await writeAtomic(d, [f('x', String(i)), f('y', String(i))], own);
    stop = true;
    await reader;
    for (const s of seen) {
      assert.equal(s.length % 2, 0, s);
      assert.equal(s.slice(0, s.length / 2), s.slice(s.length / 2), `torn read ${s}`);
    }
    assert.ok(seen.length > 0);
  });

  it('rejects unsafe and duplicate names and leaves the previous payload in place', async () => {
    const d = await fresh('bad');
    await writeAtomic(d, [f('ok', '1')], own);
    const before = await readlink(join(d, DATA_DIR_LINK));
    for (const bad of ['../x', 'a/b', '..data', '', '.', '..hidden']) {
      await assert.rejects(writeAtomic(d, [f(bad, '1')], own));
    }
    await assert.rejects(writeAtomic(d, [f('a', '1'), f('a', '2')], own));
    assert.equal(await readlink(join(d, DATA_DIR_LINK)), before);
    assert.deepEqual(await publishedNames(d), ['ok']);
  });

  it('never leaves a non-link user file behind and replaces a stray file with a link', async () => {
    const d = await fresh('stray');
    await writeAtomic(d, [f('a', '1')], own);
    await rm(join(d, 'a'));
    await mkdir(join(d, 'a'));
    await writeAtomic(d, [f('a', '2')], own);
    assert.ok((await lstat(join(d, 'a'))).isSymbolicLink());
    assert.equal(await readFile(join(d, 'a'), 'utf8'), '2');
  });

  it('chowns to the requested owner and group when running as root', {
    skip: process.getuid?.() !== 0 && 'needs root',
  }, async () => {
    const d = await fresh('owner');
    await writeAtomic(d, [f('a', '1')], { ...own, uid: 0, gid: 4242 });
    const st = await stat(join(d, 'a'));
    assert.equal(st.gid, 4242);
    assert.equal(st.uid, 0);
    assert.equal((await stat(d)).gid, 4242);
  });

  it('file names', () => {
    assert.ok(isValidFileName('static_secret_0_password'));
    assert.ok(isValidFileName('app_role_1_wrap_info.json'));
    assert.ok(!isValidFileName('static_secret_0_a/b'));
    assert.ok(!isValidFileName('..data'));
  });

  it('payload names: only the generated shape', () => {
    const n = payloadName(new Date(Date.UTC(2026, 0, 2, 3, 4, 5)), 'abcdef0123');
    assert.equal(n, '..2026_01_02_03_04_05.abcdef0123');
    assert.ok(isPayloadName(n));
    for (const bad of [
      '..',
      '..data',
      '../etc',
      '..2026_01_02_03_04_05.abcdef012',
      `${n}/x`,
      '..2026_01_02_03_04_05.ABCDEF0123',
    ])
      assert.ok(!isPayloadName(bad), bad);
  });
});

describe('a tampered volume', () => {
  let root: string;
  let n = 0;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ferry-aw-hostile-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });
  /** A volume inside a parent holding a file the driver must never touch. */
  const fresh = async () => {
    const parent = join(root, `p${n++}`);
    const d = join(parent, 'vol');
    await mkdir(d, { recursive: true });
    await writeFile(join(parent, 'keep'), 'keep');
    return { parent, d };
  };

  it('..data pointing at .. is replaced; the next write deletes nothing outside the volume', async () => {
    const { parent, d } = await fresh();
    await writeAtomic(d, [f('a', '1')], own);
    await rm(join(d, DATA_DIR_LINK));
    await symlink('..', join(d, DATA_DIR_LINK));
    await writeAtomic(d, [f('a', '2')], own);
    await writeAtomic(d, [f('a', '3')], own);
    assert.equal(await readFile(join(parent, 'keep'), 'utf8'), 'keep');
    assert.equal(await readFile(join(d, 'a'), 'utf8'), '3');
    assert.ok(isPayloadName(await readlink(join(d, DATA_DIR_LINK))));
  });

  it('leftover payloads, stray files, FIFOs and links are removed, never followed', async () => {
    const { parent, d } = await fresh();
    await writeAtomic(d, [f('a', '1')], own);
    await mkdir(join(d, '..2020_01_01_00_00_00.0123456789'));
    await writeFile(join(d, '..2020_01_01_00_00_00.0123456789', 'old'), 'old');
    execFileSync('mkfifo', [join(d, 'fifo')]);
    await symlink(parent, join(d, 'escape'));
    await symlink(parent, join(d, '..data_tmp'));
    await writeAtomic(d, [f('a', '2')], own);
    const payload = await readlink(join(d, DATA_DIR_LINK));
    assert.deepEqual((await readdir(d)).sort(), [DATA_DIR_LINK, payload, 'a'].sort());
    assert.deepEqual((await readdir(parent)).sort(), ['keep', 'vol']);
  });

  it('a user-visible name replaced by a link elsewhere is reset to ..data', async () => {
    const { parent, d } = await fresh();
    await writeAtomic(d, [f('a', '1')], own);
    await rm(join(d, 'a'));
    await symlink(join(parent, 'keep'), join(d, 'a'));
    await writeAtomic(d, [f('a', '2')], own);
    assert.equal(await readlink(join(d, 'a')), join(DATA_DIR_LINK, 'a'));
    assert.equal(await readFile(join(parent, 'keep'), 'utf8'), 'keep');
  });

  it('readBack returns what was written', async () => {
    const { d } = await fresh();
    await writeAtomic(d, [f('a', 'one'), f('b', 'two')], own);
    const got = await readBack(d, ['a', 'b'], 1024);
    assert.equal(got.get('a')?.toString(), 'one');
    assert.equal(got.get('b')?.toString(), 'two');
  });

  it('readBack follows no link, waits on no FIFO, reads no more than the cap', async () => {
    const { parent, d } = await fresh();
    await writeAtomic(d, [f('a', 'one'), f('b', 'two')], own);
    const payload = await readlink(join(d, DATA_DIR_LINK));
    // A link in the payload to a file outside.
    await rm(join(d, payload, 'a'));
    await symlink(join(parent, 'keep'), join(d, payload, 'a'));
    await assert.rejects(readBack(d, ['a'], 1024), /ELOOP/);
    // A FIFO: refused at once, not waited on.
    await rm(join(d, payload, 'a'));
    execFileSync('mkfifo', [join(d, payload, 'a')]);
    await assert.rejects(readBack(d, ['a'], 1024), /not a regular file/);
    // Too large for the cap.
    await assert.rejects(readBack(d, ['b'], 2), /larger than 2 bytes/);
    // A name the driver would not write.
    await assert.rejects(readBack(d, ['../keep'], 1024), /invalid file name/);
    // ..data pointing elsewhere, or the payload swapped for a link.
    await rm(join(d, DATA_DIR_LINK));
    await symlink('..', join(d, DATA_DIR_LINK));
    await assert.rejects(readBack(d, ['b'], 1024), /not a link to a payload/);
    await rm(join(d, DATA_DIR_LINK));
    await symlink(payload, join(d, DATA_DIR_LINK));
    await rm(join(d, payload), { recursive: true });
    await symlink(parent, join(d, payload));
    await assert.rejects(readBack(d, ['keep'], 1024), /not a directory/);
  });
});
