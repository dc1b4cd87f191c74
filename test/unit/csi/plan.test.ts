// The Node service's pure decisions, row by row: publish (conflict, skip, bound, publish), what a
// publish fetches, keeps and gives back, and what an upkeep pass does and when it is next due.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type PublishPlan,
  type PublishPlanInput,
  planFetch,
  planPublish,
  planUpkeep,
  type UpkeepState,
  upkeepDueAt,
} from '../../../src/csi/plan.ts';
import type { Grant } from '../../../src/csi/publisher.ts';
import { heldDueAt } from '../../../src/csi/renewal.ts';
import type { Held, ItemRef } from '../../../src/csi/secrets.ts';
import type { VolumeRecord } from '../../../src/csi/state.ts';

const source = { namespace: 'app', name: 'db', uid: 'u1', generation: 3 };
const grant = (over: Partial<Grant['csiSecrets']> = {}) => ({ csiSecrets: { ...source, ...over } }) as Grant;
const T0 = 1_700_000_000_000;
const lease = (over: Partial<Extract<Held, { kind: 'lease' }>> = {}): Held => ({
  kind: 'lease',
  leaseId: 'l1',
  clientId: 'c',
  durationS: 100,
  renewable: true,
  startedAtMs: T0,
  revoke: true,
  ...over,
});
const cert = (lifeS = 300): Held => ({
  kind: 'cert',
  mount: 'pki',
  serial: 's1',
  expiration: T0 / 1000 + lifeS,
  issuedAt: T0 / 1000,
  expiryOffsetMs: 0,
  revoke: true,
});
const items: VolumeRecord['items'] = [
  { ref: { kind: 'static', index: 0 }, names: ['kv'] },
  { ref: { kind: 'dynamic', index: 0 }, names: ['db'], held: lease() },
  { ref: { kind: 'approle', index: 0 }, names: ['id'] },
  { ref: { kind: 'pki', index: 0 }, names: ['crt'], held: cert() },
];
const prev = { volumeId: 'v1', fingerprint: 'fp', fetchedAt: 1_000, grant: grant(), items };
const allRefs: ItemRef[] = items.map((i) => i.ref);
const steady: PublishPlanInput = {
  prev,
  volumeId: 'v1',
  fingerprint: 'fp',
  mounted: true,
  cached: { uid: 'u1', generation: 3 },
  nowMs: 2_000,
  refreshIntervalMs: 60_000,
  volumes: 1,
  maxVolumes: 2,
};

describe('planPublish', () => {
  const rows: [string, Partial<PublishPlanInput>, PublishPlan][] = [
    ['same publish, fresh, same generation', {}, { action: 'skip' }],
    [
      'refresh interval 0 never re-fetches an unchanged publish',
      { refreshIntervalMs: 0 },
      { action: 'skip' },
    ],
    // The boundary (fetchedAt 1_000, interval 60 s): fresh for 59,999 ms, refetched at 60,000 ms.
    ['just inside the refresh interval', { nowMs: 60_999 }, { action: 'skip' }],
    ['the refresh interval has passed', { nowMs: 61_000 }, { action: 'publish', samePublish: true }],
    ['interval 1 ms, fetched this very ms', { refreshIntervalMs: 1, nowMs: 1_000 }, { action: 'skip' }],
    [
      'interval 1 ms, one ms later',
      { refreshIntervalMs: 1, nowMs: 1_001 },
      { action: 'publish', samePublish: true },
    ],
    // 0 turns re-reads on republish off (VSO's driver has none; a republish every ~2 min per volume
    // would otherwise read Vault each time); what changed still fetches.
    [
      'refresh interval 0, a day later: still not re-fetched',
      { refreshIntervalMs: 0, nowMs: 86_400_000 },
      { action: 'skip' },
    ],
    [
      'refresh interval 0, resumed record (fetchedAt 0): not re-fetched either',
      { refreshIntervalMs: 0, prev: { ...prev, fetchedAt: 0 }, nowMs: T0 },
      { action: 'skip' },
    ],
    [
      'refresh interval 0, the CSISecrets changed generation',
      { refreshIntervalMs: 0, cached: { uid: 'u1', generation: 4 } },
      { action: 'publish', samePublish: true },
    ],
    [
      'refresh interval 0, the target was unmounted',
      { refreshIntervalMs: 0, mounted: false },
      { action: 'publish', samePublish: false },
    ],
    [
      'refresh interval 0, other arguments',
      { refreshIntervalMs: 0, fingerprint: 'other' },
      { action: 'publish', samePublish: false },
    ],
    ['long after the interval', { nowMs: 10_000_000 }, { action: 'publish', samePublish: true }],
    [
      'resumed record (fetchedAt 0)',
      { prev: { ...prev, fetchedAt: 0 }, nowMs: T0 },
      { action: 'publish', samePublish: true },
    ],
    ['nothing at the target', { prev: undefined }, { action: 'publish', samePublish: false }],
    ['another volume at the target', { volumeId: 'v2' }, { action: 'conflict', volumeId: 'v1' }],
    [
      'another volume, node full: conflict first',
      { volumeId: 'v2', volumes: 9 },
      { action: 'conflict', volumeId: 'v1' },
    ],
    [
      'other arguments (pod, mount group…)',
      { fingerprint: 'other' },
      { action: 'publish', samePublish: false },
    ],
    ['the target was unmounted', { mounted: false }, { action: 'publish', samePublish: false }],
    [
      'unmounted and other arguments',
      { mounted: false, fingerprint: 'x' },
      { action: 'publish', samePublish: false },
    ],
    [
      'the CSISecrets changed generation',
      { cached: { uid: 'u1', generation: 4 } },
      { action: 'publish', samePublish: true },
    ],
    [
      'the CSISecrets was recreated (uid)',
      { cached: { uid: 'u2', generation: 3 } },
      { action: 'publish', samePublish: true },
    ],
    ['the CSISecrets is not in the cache', { cached: undefined }, { action: 'publish', samePublish: true }],
    ['a new volume on a node at its bound', { prev: undefined, volumes: 2 }, { action: 'exhausted', max: 2 }],
    [
      'a new volume on a node over its bound',
      { prev: undefined, volumes: 5 },
      { action: 'exhausted', max: 2 },
    ],
    [
      'a new volume with one place left',
      { prev: undefined, volumes: 1 },
      { action: 'publish', samePublish: false },
    ],
    [
      'a republish on a full node is not a new volume',
      { volumes: 2, nowMs: 61_000 },
      { action: 'publish', samePublish: true },
    ],
    ['a skip on a full node', { volumes: 2 }, { action: 'skip' }],
    [
      'bound 0 refuses every new volume',
      { prev: undefined, volumes: 0, maxVolumes: 0 },
      { action: 'exhausted', max: 0 },
    ],
  ];
  for (const [name, over, plan] of rows)
    it(name, () => assert.deepEqual(planPublish({ ...steady, ...over }), plan));
});

describe('planFetch', () => {
  const kinds = (xs: { kind: string }[]) => xs.map((x) => x.kind);
  const rows: [
    string,
    Parameters<typeof planFetch>,
    { keep: string[]; fetch: string[]; release: string[] },
  ][] = [
    [
      'a first publish fetches everything',
      [undefined, false, grant(), allRefs],
      { keep: [], fetch: ['static', 'dynamic', 'approle', 'pki'], release: [] },
    ],
    [
      'a refresh keeps the held kinds, re-reads KV',
      [prev, true, grant(), allRefs],
      { keep: ['dynamic', 'approle', 'pki'], fetch: ['static'], release: [] },
    ],
    [
      'other arguments: everything again, the old leases given back',
      [prev, false, grant(), allRefs],
      { keep: [], fetch: ['static', 'dynamic', 'approle', 'pki'], release: ['dynamic', 'pki'] },
    ],
    [
      'a new generation: everything again',
      [prev, true, grant({ generation: 4 }), allRefs],
      { keep: [], fetch: ['static', 'dynamic', 'approle', 'pki'], release: ['dynamic', 'pki'] },
    ],
    [
      'a recreated CSISecrets: everything again',
      [prev, true, grant({ uid: 'u2' }), allRefs],
      { keep: [], fetch: ['static', 'dynamic', 'approle', 'pki'], release: ['dynamic', 'pki'] },
    ],
    [
      'an item dropped from the spec is given back',
      [prev, false, grant({ generation: 4 }), [{ kind: 'static', index: 0 }]],
      { keep: [], fetch: ['static'], release: ['dynamic', 'pki'] },
    ],
    [
      'an item added to the spec is fetched',
      [prev, true, grant(), [...allRefs, { kind: 'dynamic', index: 1 }]],
      { keep: ['dynamic', 'approle', 'pki'], fetch: ['static', 'dynamic'], release: [] },
    ],
    ['nothing in the spec', [undefined, false, grant(), []], { keep: [], fetch: [], release: [] }],
  ];
  for (const [name, args, want] of rows)
    it(name, () => {
      const p = planFetch(...args);
      assert.deepEqual(
        {
          keep: kinds(p.keep.map((i) => i.ref)),
          fetch: kinds(p.fetch),
          release: kinds(p.release.map((i) => i.ref)),
        },
        want,
      );
    });
});

describe('planUpkeep and upkeepDueAt', () => {
  const leaseDue = heldDueAt(lease(), T0);
  const certDue = heldDueAt(cert(), T0);
  const only = (kind: string) => items.filter((i) => i.ref.kind === kind || !i.held);
  const rows: [
    string,
    UpkeepState,
    number,
    { renew: [string, boolean][]; replace: string[]; dueAt: number | undefined },
  ][] = [
    ['nothing due yet', { items }, T0, { renew: [], replace: [], dueAt: Math.min(leaseDue, certDue) }],
    ['the lease is due', { items }, leaseDue, { renew: [['l1', true]], replace: [], dueAt: leaseDue }],
    [
      'the certificate is in its window',
      { items: only('pki') },
      certDue,
      { renew: [], replace: ['pki'], dueAt: certDue },
    ],
    [
      'a recheck looks at the lease before it is due',
      { items, recheck: true },
      T0,
      { renew: [['l1', false]], replace: [], dueAt: T0 },
    ],
    [
      'a recheck leaves certificates alone',
      { items: only('pki'), recheck: true },
      T0,
      { renew: [], replace: [], dueAt: T0 },
    ],
    [
      'a pending retry postpones the recheck',
      { items, recheck: true, retryAt: T0 + 5_000 },
      T0,
      { renew: [['l1', false]], replace: [], dueAt: T0 + 5_000 },
    ],
    [
      'a retry later than the lease',
      { items, retryAt: T0 + 1e9 },
      T0,
      { renew: [], replace: [], dueAt: Math.min(leaseDue, certDue) },
    ],
    [
      'a re-sync is due at once',
      { items, resync: [{ kind: 'static', index: 0 }] },
      T0,
      { renew: [], replace: [], dueAt: T0 },
    ],
    [
      'KV only: nothing to keep',
      { items: [items[0] as VolumeRecord['items'][number]] },
      T0,
      { renew: [], replace: [], dueAt: undefined },
    ],
    ['KV only with a retry', { items: [], retryAt: T0 + 7 }, T0, { renew: [], replace: [], dueAt: T0 + 7 }],
    [
      'everything due',
      { items },
      Math.max(leaseDue, certDue),
      { renew: [['l1', true]], replace: ['pki'], dueAt: Math.min(leaseDue, certDue) },
    ],
  ];
  for (const [name, state, now, want] of rows)
    it(name, () => {
      const p = planUpkeep(state.items, state.recheck === true, now);
      assert.deepEqual(
        {
          renew: p.renew.map((r): [string, boolean] => [
            r.item.held?.kind === 'lease' ? r.item.held.leaseId : '?',
            r.due,
          ]),
          replace: p.replace.map((r) => r.kind),
          dueAt: upkeepDueAt(state, now),
        },
        want,
      );
    });

  it('is never due later than any held item or the retry, and no later than now when rechecking', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.option(fc.integer({ min: 0, max: 10_000_000 }), { nil: undefined }),
        fc.boolean(),
        fc.integer({ min: 0, max: 2_000_000 }),
        (durationS, retryIn, recheck, elapsed) => {
          const now = T0 + elapsed;
          const state: UpkeepState = {
            items: [{ ref: { kind: 'dynamic', index: 0 }, names: ['x'], held: lease({ durationS }) }],
            ...(retryIn !== undefined ? { retryAt: now + retryIn } : {}),
            recheck,
          };
          const due = upkeepDueAt(state, now);
          assert.ok(due !== undefined);
          assert.ok(due <= heldDueAt(lease({ durationS }), now));
          if (state.retryAt !== undefined) assert.ok(due <= state.retryAt);
          else if (recheck) assert.ok(due <= now);
          // What is due at that time, the pass acts on (no pass that does nothing forever).
          if (due >= now && state.retryAt === undefined)
            assert.ok(planUpkeep(state.items, recheck, due).renew.length === 1);
        },
      ),
    );
  });
});
