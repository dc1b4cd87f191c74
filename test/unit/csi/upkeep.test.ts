// What a published volume holds in Vault, kept for the pod's lifetime: leases renewed in place,
// replaced when they cannot be renewed or belong to an old token, certificates re-issued in their
// window, everything revoked at unpublish (retried when Vault refuses), and all of it resumed by a
// restarted driver from its state directory. Vault is an in-process fake here (pure logic); the
// end-to-end test runs the same paths against real Vault/OpenBao and PostgreSQL.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import fc from 'fast-check';
import pino from 'pino';
import { DirMounter } from '../../../src/csi/mounter.ts';
import { NodeService } from '../../../src/csi/node.ts';
import type { PublishSource } from '../../../src/csi/publish.ts';
import type { Grant, PublishInput } from '../../../src/csi/publisher.ts';
import { heldDueAt, retryDelayMs } from '../../../src/csi/renewal.ts';
import type { Held, Item, ItemRef } from '../../../src/csi/secrets.ts';
import { csiMetrics } from '../../../src/metrics/csi.ts';
import { MetricsRegistry } from '../../../src/metrics/registry.ts';
import { TaskQueue } from '../../../src/runtime/tasks.ts';
import { FakeClock, flush } from '../runtime/fake-clock.ts';
import { publishRequest, testGrant } from './grant.ts';

const AUD = 'csi.vso.hashicorp.com';
const log = pino({ level: 'silent' });
const T0 = 1_700_000_000_000;

class FakeVault implements PublishSource {
  clientId = 'token-1';
  generation = 1;
  serial = 0;
  truncate = false;
  failRelease = false;
  fetched: string[] = [];
  renewed: string[] = [];
  released: string[] = [];
  readonly clock: FakeClock;
  constructor(clock: FakeClock) {
    this.clock = clock;
  }
  async authorize(_input: PublishInput): Promise<Grant> {
    return testGrant(this.generation, {
      vaultStaticSecrets: [{ mount: 'kv', path: 'app', type: 'kv-v2' }],
      vaultDynamicSecrets: [{ mount: 'db', path: 'creds/app' }],
      vaultPKISecrets: [{ mount: 'pki', role: 'web' }],
    });
  }
  async fetch(_g: Grant, _who: string, refs: ItemRef[] = []): Promise<Item[]> {
    const now = this.clock.now();
    return refs.map((ref): Item => {
      const n = ++this.serial;
      this.fetched.push(`${ref.kind}#${n}`);
      const files = [{ name: `${ref.kind}_${ref.index}_value`, data: Buffer.from(`${ref.kind}-${n}`) }];
      if (ref.kind === 'dynamic') {
        const held: Held = {
          kind: 'lease',
          leaseId: `lease-${n}`,
          clientId: this.clientId,
          durationS: 100,
          renewable: true,
          startedAtMs: now,
          revoke: true,
        };
        return { ref, files, held };
      }
      if (ref.kind === 'pki') {
        const s = Math.floor(now / 1000);
        const held: Held = {
          kind: 'cert',
          mount: 'pki',
          serial: `serial-${n}`,
          expiration: s + 300,
          issuedAt: s,
          expiryOffsetMs: 0,
          revoke: true,
        };
        return { ref, files, held };
      }
      return { ref, files };
    });
  }
  async renew(_g: Grant, _who: string, held: Held, due: boolean): Promise<Held | undefined> {
    if (held.kind !== 'lease' || held.clientId !== this.clientId) return undefined;
    if (!due) return held;
    if (this.truncate) return undefined;
    this.renewed.push(held.leaseId);
    return { ...held, startedAtMs: this.clock.now() };
  }
  async release(_g: Grant, _who: string, held: Held[]): Promise<void> {
    if (this.failRelease) throw new Error('vault is sealed');
    for (const h of held) this.released.push(h.kind === 'lease' ? h.leaseId : h.serial);
  }
  cachedSource() {
    return { uid: 'u1', generation: this.generation };
  }
}

/** Moves the fake clock in steps, letting each step's timers finish their real file IO, so that
 * timers they set are seen by the next step. */
async function pass(clock: FakeClock, ms: number, step = 5_000): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    await clock.advanceAsync(Math.min(step, ms - t));
    await new Promise((r) => setTimeout(r, 15));
  }
}

/** Waits (in real time) for file IO and timers' async work to settle. */
async function until(what: string, ok: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await ok()) return;
    await flush(5);
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('CSI upkeep of held secrets', () => {
  let dir: string;
  let clock: FakeClock;
  /** The upkeep's task queue, on the fake clock. */
  let tasks: TaskQueue;
  let vault: FakeVault;
  let node: NodeService;
  let registry: MetricsRegistry;
  let run = 0;
  const target = () => join(dir, 'pods', 'p1', 'volumes', 'kubernetes.io~csi', 'secrets', 'mount');
  const read = (name: string) => readFile(join(target(), name), 'utf8');
  const newNode = () => {
    registry = new MetricsRegistry();
    return new NodeService({
      nodeId: 'n1',
      audience: AUD,
      mounter: new DirMounter(),
      publisher: vault,
      targetRoot: join(dir, 'pods'),
      stateDir: join(dir, `state-${run}`),
      refreshIntervalMs: 60_000,
      log,
      clock,
      tasks,
      random: () => 0.5,
      metrics: csiMetrics(registry),
    });
  };
  const publish = () => node.publish(publishRequest(target(), AUD));
  const unpublish = () => node.unpublish({ volume_id: 'vol-1', target_path: target() });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-csi-upkeep-'));
  });
  after(async () => {
    node.stop();
    await rm(dir, { recursive: true, force: true, maxRetries: 5 });
  });
  beforeEach(async () => {
    // Each test starts from nothing: the previous one's volume unpublished, its node stopped.
    if (node) {
      await unpublish();
      node.stop();
    }
    run++;
    clock = new FakeClock(T0);
    tasks = new TaskQueue({ name: 'csi', logger: log, clock, random: () => 0.5 });
    void tasks.run(new AbortController().signal);
    vault = new FakeVault(clock);
    node = newNode();
    await publish();
  });

  it('publishes every kind and renews the lease in place at its horizon', async () => {
    assert.equal(await read('dynamic_0_value'), 'dynamic-2');
    assert.equal(await read('pki_0_value'), 'pki-3');
    await pass(clock, 80_000); // renewalPercent 67 + jitter ≤ 77 % of 100 s
    await until('the renewal', () => vault.renewed.length === 1);
    assert.deepEqual(vault.renewed, ['lease-2']);
    assert.equal(await read('dynamic_0_value'), 'dynamic-2', 'renewal keeps the credentials');
    assert.deepEqual(vault.released, []);
    const text = await registry.metrics();
    for (const line of [
      'ferry_csi_publish_total{result="ok"} 1',
      'ferry_csi_upkeep_total{action="renewals"} 1',
      'ferry_csi_volumes 1',
      'ferry_csi_held{kind="lease"} 1',
      'ferry_csi_held{kind="cert"} 1',
      'ferry_csi_pending_revocations 0',
    ])
      assert.ok(text.includes(line), `metrics have ${line}`);
  });

  it('replaces a lease whose renewal was truncated, then revokes the old one', async () => {
    vault.truncate = true;
    await pass(clock, 80_000);
    await until('the replacement', async () => (await read('dynamic_0_value')) === 'dynamic-4');
    await until('the old lease revoked', () => vault.released.includes('lease-2'));
    assert.equal(await read('static_0_value'), 'static-1', 'other items untouched');
    assert.equal(await read('pki_0_value'), 'pki-3');
  });

  it('re-issues the certificate at two thirds of its life when no expiryOffset is set', async () => {
    await pass(clock, 190_000);
    assert.equal(await read('pki_0_value'), 'pki-3');
    await pass(clock, 20_000);
    await until('the new certificate', async () => (await read('pki_0_value')) !== 'pki-3');
    await until('the old serial revoked', () => vault.released.includes('serial-3'));
  });

  it('a refresh re-reads KV but keeps held items; a new CSISecrets generation replaces them', async () => {
    clock.advance(61_000);
    vault.fetched = [];
    await publish();
    assert.deepEqual(vault.fetched, ['static#4']);
    assert.deepEqual(vault.released, []);
    vault.generation = 2;
    vault.fetched = [];
    await publish();
    assert.deepEqual(vault.fetched.map((f) => f.split('#')[0]).sort(), ['dynamic', 'pki', 'static']);
    await until('the previous lease and certificate revoked', () => vault.released.length === 2);
    assert.deepEqual(vault.released.sort(), ['lease-2', 'serial-3']);
  });

  it('unpublish removes the files, then revokes; a failed revocation is retried, also by the next process', async () => {
    vault.failRelease = true;
    await unpublish();
    await assert.rejects(read('dynamic_0_value'), { code: 'ENOENT' });
    await until('the pending revocation recorded', async () =>
      (await readFile(join(dir, `state-${run}`, 'orphans.json'), 'utf8')).includes('lease-2'),
    );
    node.stop();
    vault.failRelease = false;
    node = newNode();
    assert.deepEqual(await node.resume(), { volumes: 0, orphans: 1 });
    await clock.advanceAsync(0);
    await until('revoked by the new process', () => vault.released.length === 2);
    await until(
      'nothing left to revoke',
      async () => (await readFile(join(dir, `state-${run}`, 'orphans.json'), 'utf8')) === '[]',
    );
  });

  it('a restarted driver resumes the volume: files read back, old-token leases replaced, certificate kept', async () => {
    node.stop();
    vault.clientId = 'token-2'; // the new process logs in anew
    node = newNode();
    assert.deepEqual(await node.resume(), { volumes: 1, orphans: 0 });
    await clock.advanceAsync(0);
    await until('the lease replaced', async () => (await read('dynamic_0_value')) === 'dynamic-4');
    await until('the old lease revoked', () => vault.released.includes('lease-2'));
    assert.equal(await read('pki_0_value'), 'pki-3');
    assert.equal(await read('static_0_value'), 'static-1');
    // The next republish fetches KV again (the resumed record has no fetch time).
    vault.fetched = [];
    await publish();
    assert.deepEqual(vault.fetched, ['static#5']);
  });

  it('a Vault re-login (new token) replaces the leases made with the old one at once', async () => {
    vault.clientId = 'token-2';
    node.onVaultLogin();
    await clock.advanceAsync(0);
    await until('the lease replaced', async () => (await read('dynamic_0_value')) === 'dynamic-4');
    assert.equal(await read('pki_0_value'), 'pki-3');
  });
});

describe('upkeep timing', () => {
  it('a lease is due within [renewalPercent, 90 %] of its duration, the same every time', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: 0, max: 90 }),
        fc.string(),
        (durationS, pct, id) => {
          const held: Held = {
            kind: 'lease',
            leaseId: id,
            clientId: 'c',
            durationS,
            renewable: true,
            renewalPercent: pct,
            startedAtMs: T0,
            revoke: true,
          };
          const due = heldDueAt(held, T0) - T0;
          assert.ok(due >= Math.min(pct, 85) * 10 * durationS - 1 && due <= 900 * durationS + 1);
          assert.equal(heldDueAt(held, T0 + 12_345), due + T0, 'does not depend on now');
        },
      ),
    );
  });

  it('a certificate is due inside its window, before it expires', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 3, max: 10_000_000 }),
        fc.integer({ min: 0, max: 20_000_000 }),
        (lifeS, offsetS) => {
          const issuedAt = T0 / 1000;
          const held: Held = {
            kind: 'cert',
            mount: 'pki',
            serial: `s${lifeS}`,
            expiration: issuedAt + lifeS,
            issuedAt,
            expiryOffsetMs: offsetS * 1000,
            revoke: true,
          };
          const due = heldDueAt(held, T0);
          assert.ok(due < (issuedAt + lifeS) * 1000, 'before expiry');
          assert.ok(due >= T0, 'not in the past');
        },
      ),
    );
  });

  it('retry delays grow to a minute, jittered', () => {
    fc.assert(
      fc.property(fc.nat(40), fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), (n, r) => {
        const d = retryDelayMs(n, () => r);
        assert.ok(d >= 900 && d <= 66_000);
      }),
    );
  });
});
