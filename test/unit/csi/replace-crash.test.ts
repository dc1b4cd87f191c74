// A driver killed after each filesystem change of a lease replacement — the upkeep replacing a lease
// it cannot renew, and a republish of a changed CSISecrets — then a new driver on what is left: the
// volume's record holds the lease whose credentials the files show, that lease is never revoked,
// and every other lease is revoked exactly once. The one exception is inherent: a lease Vault issued
// to the killed process before it could record anything (between Vault's answer and the first save)
// is known to no one and expires at its TTL (a crash inside that save, before its rename). Revocations of the killed process never complete (its
// release waits for the crash), so a revocation made and then forgotten by a crash — idempotent in
// Vault — is not counted here.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { DATA_DIR_LINK } from '../../../src/csi/atomic-writer.ts';
import { DirMounter } from '../../../src/csi/mounter.ts';
import { isPayloadName } from '../../../src/csi/names.ts';
import { NodeService } from '../../../src/csi/node.ts';
import type { PublishSource } from '../../../src/csi/publish.ts';
import type { Held, Item, ItemRef } from '../../../src/csi/secrets.ts';
import { keyOf, type VolumeRecord } from '../../../src/csi/state.ts';
import { Crash, CrashFs } from './crash-fs.ts';
import { publishRequest, runningTasks, testGrant } from './grant.ts';

const AUD = 'csi.vso.hashicorp.com';
const log = pino({ level: 'silent' });
const FILE = 'dynamic_0_value';

/** Vault for both processes: leases `lease-<n>` whose file holds the lease id. The killed process's
 * revocations wait for its death; its calls fail once it is dead. */
class Vault implements PublishSource {
  generation = 1;
  clientId = 'token';
  n = 0;
  readonly issued: string[] = [];
  readonly released: string[] = [];
  releaseCalled = false;
  /** Calls come from the process that is killed (else from the next one, which lives). */
  killed = false;
  readonly fs: CrashFs;
  constructor(fs: CrashFs) {
    this.fs = fs;
  }
  #alive(): void {
    if (this.killed && this.fs.dead) throw new Crash();
  }
  async authorize() {
    this.#alive();
    return testGrant(this.generation, { vaultDynamicSecrets: [{ mount: 'db', path: 'creds/app' }] });
  }
  async fetch(_g: unknown, _who: string, refs: ItemRef[] = []): Promise<Item[]> {
    this.#alive();
    return refs.map((ref) => {
      const leaseId = `lease-${++this.n}`;
      this.issued.push(leaseId);
      const held: Held = {
        kind: 'lease',
        leaseId,
        clientId: this.clientId,
        durationS: 600,
        renewable: true,
        startedAtMs: Date.now(),
        revoke: true,
      };
      return { ref, files: [{ name: FILE, data: Buffer.from(leaseId) }], held };
    });
  }
  async renew(_g: unknown, _who: string, held: Held): Promise<Held | undefined> {
    this.#alive();
    return held.kind === 'lease' && held.clientId === this.clientId ? held : undefined;
  }
  async release(_g: unknown, _who: string, held: Held[]): Promise<void> {
    this.#alive();
    if (this.killed) {
      this.releaseCalled = true;
      while (!this.fs.dead) await new Promise((r) => setTimeout(r, 2));
      throw new Crash();
    }
    for (const h of held) if (h.kind === 'lease') this.released.push(h.leaseId);
  }
  cachedSource() {
    return { uid: 'u1', generation: this.generation };
  }
}

async function until(ok: () => boolean | Promise<boolean>, ms = 2000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (await ok()) return true;
    await new Promise((r) => setTimeout(r, 3));
  }
  return false;
}

type Scenario = 'upkeep' | 'republish';

describe('lease replacement killed at each step', () => {
  const fs = new CrashFs();
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ferry-csi-replace-crash-'));
    await fs.install();
  });
  after(async () => {
    fs.restore();
    await rm(root, { recursive: true, force: true });
  });

  /** One run: a volume published (its lease from an older token for the upkeep), a driver killed
   * after `k` changes of the replacement (undefined: not killed), a new driver on what is left. */
  async function run(scenario: Scenario, name: string, k: number | undefined) {
    fs.arm(undefined);
    const base = join(root, name);
    const stateDir = join(base, 'state');
    const target = join(base, 'pods', 'p1', 'volumes', 'kubernetes.io~csi', 'secrets', 'mount');
    const vault = new Vault(fs);
    const driver = () => {
      const { tasks, stop } = runningTasks();
      const node = new NodeService({
        nodeId: 'n1',
        audience: AUD,
        mounter: new DirMounter(),
        publisher: vault,
        targetRoot: join(base, 'pods'),
        stateDir,
        refreshIntervalMs: 60_000,
        log,
        tasks,
      });
      return {
        node,
        stop: async () => {
          node.stop();
          await stop();
        },
      };
    };
    const publish = (node: NodeService) => node.publish(publishRequest(target));

    // The volume as a previous driver left it.
    if (scenario === 'upkeep') vault.clientId = 'old-token';
    const seed = driver();
    await publish(seed.node);
    await seed.stop();
    vault.clientId = 'token';

    // The driver that is killed: it resumes (the upkeep replaces the old token's lease) or is asked
    // to republish a CSISecrets of a new generation (the lease is fetched again).
    vault.killed = true;
    fs.arm(k);
    const a = driver();
    await a.node.resume().catch(() => {});
    if (scenario === 'republish') {
      vault.generation = 2;
      await publish(a.node).catch(() => {});
    }
    assert.ok(await until(() => fs.dead || vault.releaseCalled), `${name}: the replacement ends or dies`);
    const changes = fs.changes;
    fs.kill();
    await a.stop();
    const changed = [...fs.changed];
    fs.arm(undefined);
    for (const p of changed)
      assert.ok(p.startsWith(base + sep), `${name}: ${p} is inside the test's directory`);
    const recorded = new Set<string>();
    for (const f of await readdir(stateDir))
      if (f.endsWith('.json'))
        for (const m of (await readFile(join(stateDir, f), 'utf8')).matchAll(/lease-\d+/g))
          recorded.add(m[0]);
    const issuedByA = vault.issued.slice(1);

    // The next driver.
    vault.killed = false;
    const b = driver();
    await b.node.resume();
    const inUse = () => readFile(join(target, FILE), 'utf8');
    const unrecorded = issuedByA.filter((l) => !recorded.has(l));
    const settled = await until(async () => {
      const u = await inUse();
      return vault.issued.every((l) => l === u || unrecorded.includes(l) || vault.released.includes(l));
    });
    await new Promise((r) => setTimeout(r, 20)); // nothing more comes
    await b.stop();

    const lease = await inUse();
    const where = `${name} (${vault.issued.join(' ')} issued; ${vault.released.join(' ')} revoked; ${lease} in use)`;
    assert.ok(settled, `${where}: every lease revoked`);
    assert.ok(!vault.released.includes(lease), `${where}: the lease in use is not revoked`);
    assert.equal(new Set(vault.released).size, vault.released.length, `${where}: each revoked once`);
    assert.ok(unrecorded.length <= 1, `${where}: at most the lease fetched before the first save is unknown`);
    assert.ok(!unrecorded.includes(lease));
    const rec = JSON.parse(
      await readFile(join(stateDir, `volume-${keyOf(target)}.json`), 'utf8'),
    ) as VolumeRecord;
    assert.equal(rec.pending, undefined, where);
    assert.deepEqual(
      rec.items.map((i) => i.held?.kind === 'lease' && i.held.leaseId),
      [lease],
      `${where}: the record holds the lease in use`,
    );
    const staging = (await readdir(join(stateDir, 'volumes', keyOf(target)))).sort();
    assert.equal(staging.filter(isPayloadName).length, 1, `${where}: one payload (${staging.join(' ')})`);
    assert.deepEqual(
      staging.filter((e) => !isPayloadName(e)),
      [DATA_DIR_LINK, FILE],
      where,
    );
    assert.deepEqual(
      (await readdir(stateDir)).filter((f) => f.startsWith('.')),
      [],
      `${where}: no temporary state file left`,
    );
    return { changes, unrecorded: unrecorded.length };
  }

  for (const scenario of ['upkeep', 'republish'] as const) {
    it(`${scenario}: each lease revoked exactly once, none in use`, async () => {
      const { changes: steps } = await run(scenario, `${scenario}-all`, undefined);
      assert.ok(steps >= 10, `a replacement makes ${steps} changes`);
      let unrecorded = 0;
      for (let k = 0; k <= steps; k++) unrecorded += (await run(scenario, `${scenario}-${k}`, k)).unrecorded;
      // Only crash points inside the first save after Vault's answer (its mkdir and temporary file,
      // before the rename): the two changes it makes before its rename.
      assert.ok(unrecorded <= 2, `a lease unknown after ${unrecorded} crash points`);
    });
  }
});
