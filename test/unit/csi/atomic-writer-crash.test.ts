// The atomic writer killed after each of its filesystem changes (crash-fs.ts), then a restarted
// driver's recovery (recover, as Volumes.readBack runs it on resume): the volume shows the complete
// previous or the complete new file set — never a mix, never nothing — with no payload, temporary
// link or stale name left over, nothing changed outside the volume and no link followed (a tampered
// node planted links to a directory outside).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DATA_DIR_LINK, publishedNames, recover, writeAtomic } from '../../../src/csi/atomic-writer.ts';
import { isPayloadName } from '../../../src/csi/names.ts';
import { Crash, CrashFs } from './crash-fs.ts';

const OLD = { a: 'old-a', b: 'old-b', gone: 'old-gone' };
const NEW = { a: 'new-a', b: 'new-b', added: 'new-added' };
const files = (set: Record<string, string>) =>
  Object.entries(set).map(([name, text]) => ({ name, data: Buffer.from(text) }));
const own = { fileMode: 0o440, dirMode: 0o750, gid: process.getgid?.() ?? 0 };

/** What the names show through the volume's own links, as a pod reads them. */
async function shown(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of await publishedNames(dir)) out[name] = await readFile(join(dir, name), 'utf8');
  return out;
}

describe('atomic writer killed at each step', () => {
  const fs = new CrashFs();
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ferry-aw-crash-'));
    await fs.install();
  });
  after(async () => {
    fs.restore();
    await rm(root, { recursive: true, force: true });
  });

  /** A volume with the previous set written, links to the outside planted, and the outside. */
  async function volume(name: string): Promise<{ dir: string; outside: string }> {
    fs.arm(undefined);
    const dir = join(root, name, 'vol');
    const outside = join(root, name, 'outside');
    await mkdir(dir, { recursive: true });
    await mkdir(outside);
    await writeFile(join(outside, 'keep'), 'keep');
    await writeAtomic(dir, files(OLD), own);
    await symlink(outside, join(dir, '..data_tmp'));
    await symlink(outside, join(dir, 'planted'));
    return { dir, outside };
  }

  it('shows the whole previous or the whole new set after every crash point', async () => {
    const probe = await volume('probe');
    fs.arm(undefined);
    await writeAtomic(probe.dir, files(NEW), own);
    const steps = fs.changes;
    assert.ok(steps >= 15, `a write makes ${steps} changes`);

    const seen = { old: 0, new: 0 };
    for (let k = 0; k <= steps; k++) {
      const { dir, outside } = await volume(`k${k}`);
      const before = await readlink(join(dir, DATA_DIR_LINK));
      fs.arm(k);
      await writeAtomic(dir, files(NEW), own).catch((err: unknown) => {
        if (!(err instanceof Crash)) throw err;
      });
      const changed = [...fs.changed];
      assert.equal(fs.changes, k, `crash after change ${k}`);
      fs.arm(undefined);
      for (const p of changed) assert.ok(p.startsWith(dir + sep), `change ${k}: ${p} is inside the volume`);

      // The commit point decides, before and after recovery.
      const committed = (await readlink(join(dir, DATA_DIR_LINK))) !== before;
      const want = committed ? NEW : OLD;
      for (const [name, text] of Object.entries(want))
        assert.equal(await readFile(join(dir, DATA_DIR_LINK, name), 'utf8'), text, `crash ${k}: ${name}`);
      await recover(dir);
      assert.deepEqual(await shown(dir), want, `crash ${k}: the ${committed ? 'new' : 'old'} set, whole`);
      const entries = (await readdir(dir)).sort();
      const payloads = entries.filter(isPayloadName);
      assert.equal(payloads.length, 1, `crash ${k}: one payload left (${entries.join(' ')})`);
      assert.deepEqual(entries, [...payloads, DATA_DIR_LINK, ...Object.keys(want)].sort(), `crash ${k}`);
      assert.deepEqual(await readdir(outside), ['keep'], `crash ${k}: outside untouched`);
      assert.equal(await readFile(join(outside, 'keep'), 'utf8'), 'keep');
      seen[committed ? 'new' : 'old']++;
    }
    assert.ok(
      seen.old > 0 && seen.new > 0,
      `crash points before (${seen.old}) and after (${seen.new}) the commit`,
    );
  });
});
