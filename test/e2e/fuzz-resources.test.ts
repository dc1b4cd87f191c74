// Generated custom resources against the real API server and operator (issue 14, "Fuzz"): objects of
// every kind the operator reconciles, drawn from Ferry's CRD schemas (test/fuzz/arbitraries.ts),
// mostly valid with hostile values, some broken on purpose, some rewired to references the tenant
// may not use (another namespace's VaultAuth, the operator namespace) or to a real secret holding a
// canary. Each is either refused by the API server with a message, or accepted and then reported in
// its status; the operator never restarts, still syncs a newcomer afterwards, writes no Secret
// outside the tenant's namespace, and no canary reaches its log, Events or status.
// The seed is printed; FERRY_FUZZ_SEED replays a run.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { VaultStaticSecrets } from '../../src/api/resources.ts';
import type { VaultStaticSecret } from '../../src/api/v1beta1/vaultstaticsecret.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { K8sApiError } from '../../src/k8s/errors.ts';
import { Namespaces, Secrets } from '../../src/k8s/resources.ts';
import type { KubeObject, Secret } from '../../src/k8s/types.ts';
import {
  adminClient,
  apply,
  assertNoLeak,
  assertNotIn,
  canary,
  eventsOf,
  eventually,
  kvSecret,
  type Manifest,
  resourceOf,
  synced,
  tenant,
  VaultAdmin,
} from '../../stack/lib/fixtures.ts';
import { KINDS, NASTY, type Obj } from '../fuzz/arbitraries.ts';
import { budget, SEED } from '../fuzz/budget.ts';
import { operatorIncarnation, operatorLog, type StackEnv, uniqueName, useStack } from './harness.ts';

/** The kinds the operator reconciles; VaultAuthGlobal has no controller (VSO writes no status). */
const FUZZED = [
  'VaultStaticSecret',
  'VaultDynamicSecret',
  'VaultPKISecret',
  'VaultAuth',
  'VaultConnection',
  'VaultAuthGlobal',
  'SecretTransformation',
  'CSISecrets',
];
const WITHOUT_STATUS = new Set(['VaultAuthGlobal']);
const PER_KIND = 20;

type Spec = Record<string, unknown>;
type Fuzzed = KubeObject & { status?: { conditions?: unknown[]; valid?: boolean } };

/** Rewrites a generated object into the tenant's namespace, and now and then aims it at what a hostile
 * tenant would: another namespace's objects, the operator's, a real secret, huge values. */
function hostile(o: Obj, ns: string, decoy: string, operatorNs: string): fc.Arbitrary<Manifest> {
  return fc
    .record({
      name: fc.oneof(
        // The generator's names may end in '-', which the API server refuses: most are repaired.
        { weight: 12, arbitrary: fc.constant(o.metadata.name.replace(/-+$/, '') || 'x') },
        { weight: 1, arbitrary: fc.constantFrom(...NASTY) },
      ),
      authRef: fc.constantFrom(
        undefined,
        undefined,
        'auth',
        `${decoy}/auth`,
        `${operatorNs}/default`,
        'missing',
        `${decoy}/missing`,
      ),
      connRef: fc.constantFrom(undefined, `${decoy}/default`, `${operatorNs}/default`, 'missing'),
      realSecret: fc.boolean(),
      plain: fc.boolean(),
      huge: fc.oneof(
        { weight: 6, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.constantFrom('template', 'map', 'labels') },
      ),
      destination: fc.constantFrom(undefined, 'a', 'default', 'auth-token'),
    })
    .map((m) => {
      const kind = o.kind;
      const metadata: Record<string, unknown> = { name: m.name, namespace: ns };
      if (m.huge === 'labels') metadata.labels = { [`x${'y'.repeat(70)}`]: 'z' }; // over the label limit
      // A spec that is not an object (a broken draw) goes as generated: the schema must refuse it.
      if (typeof o.spec !== 'object' || o.spec === null || Array.isArray(o.spec))
        return { apiVersion: o.apiVersion, kind, metadata, spec: o.spec } as Manifest;
      const s: Spec = structuredClone(o.spec as Spec);
      if (m.authRef !== undefined) {
        if (kind === 'CSISecrets') {
          const [a, b] = m.authRef.split('/');
          s.vaultAuthRef = b === undefined ? { name: a } : { namespace: a, name: b, trustNamespace: true };
        } else if (/Secret$/.test(kind) && kind !== 'SecretTransformation') s.vaultAuthRef = m.authRef;
      }
      if (m.connRef !== undefined && kind === 'VaultAuth') s.vaultConnectionRef = m.connRef;
      if (m.realSecret && kind === 'VaultStaticSecret') {
        // The canary's secret, read as the tenant may (the root Vault namespace, its latest version),
        // so that the hostile destinations and templates render a real value.
        Object.assign(s, { vaultAuthRef: 'auth', mount: 'kvv2', type: 'kv-v2', path: `${ns}/app` });
        delete s.namespace;
        delete s.version;
        // Half keep the generated (mostly unwritable) destination, half write a plain Secret.
        if (m.plain) s.destination = { name: `real-${m.name}`, create: true };
        else if (s.destination && typeof s.destination === 'object') (s.destination as Spec).create = true;
      }
      const dest = s.destination as Spec | undefined;
      if (m.destination !== undefined && dest && typeof dest === 'object') dest.name = m.destination;
      if (m.huge === 'template') {
        const text = '{{ .Secrets.password }}{{ printf "%09999d" 1 }}'.repeat(2_000);
        if (kind === 'SecretTransformation') s.templates = { big: { text } };
        else if (dest && typeof dest === 'object') dest.transformation = { templates: { big: { text } } };
      } else if (m.huge === 'map' && dest && typeof dest === 'object') {
        dest.annotations = Object.fromEntries(
          Array.from({ length: 500 }, (_, i) => [`k${i}`, 'v'.repeat(200)]),
        );
      }
      return { apiVersion: o.apiVersion, kind, metadata, spec: s } as Manifest;
    });
}

describe('fuzz: generated custom resources against the API server and operator', () => {
  let env: StackEnv;
  let kube: KubeClient;
  let vault: VaultAdmin;
  let ns: string;
  let decoy: string;
  let later: string;
  const canaries: string[] = [];

  before(async () => {
    env = await useStack();
    assert.ok(env.operator, 'the stack runs the operator');
    kube = adminClient(env);
    vault = new VaultAdmin(env);
    ns = uniqueName('fuzz');
    decoy = uniqueName('fuzz-decoy');
    later = uniqueName('fuzz-later');
    await tenant(env, kube, vault, ns);
    await tenant(env, kube, vault, decoy);
    await vault.kvPut('kvv2', `${ns}/app`, { password: canary('fuzz', canaries) });
  });
  after(async () => {
    for (const n of [ns, decoy, later]) await kube.delete(Namespaces, n).catch(() => {});
    await vault.close();
    await kube.close();
  });

  it('every object is refused with a message or reported in status; the operator stays up and isolated', async () => {
    const t0 = Date.now();
    const incarnation = await operatorIncarnation(env);
    // Secrets of another tenant, named as the generated destinations are: none may change.
    for (const name of ['a', 'default', 'auth-token', 'b'])
      await apply(kube, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name, namespace: decoy },
        stringData: { k: 'decoy' },
      } as Manifest);
    const decoyBefore = new Map(
      (await kube.list<Secret>(Secrets, { namespace: decoy })).items.map((s) => [
        s.metadata.name,
        s.metadata.resourceVersion,
      ]),
    );

    // FERRY_FUZZ_RUNS scales the count as for the unit-level fuzz suite.
    const numRuns = budget(PER_KIND).numRuns ?? PER_KIND;
    const objects = KINDS.filter((k) => FUZZED.includes(k.kind)).flatMap((k, i) =>
      fc.sample(
        fc
          .oneof({ weight: 3, arbitrary: k.tame }, { weight: 1, arbitrary: k.object })
          .chain((o) => hostile(o, ns, decoy, env.operatorNamespace)),
        { numRuns, seed: SEED + i },
      ),
    );
    const accepted: Manifest[] = [];
    const refused = new Map<string, number>();
    const seen = new Set<string>();
    for (const [i, obj] of objects.entries()) {
      // Names repeat across draws: a repeat gets a suffix, so each draw is its own object.
      let key = `${obj.kind}/${obj.metadata.name}`;
      if (seen.has(key)) {
        obj.metadata.name = `${obj.metadata.name}-${i}`;
        key = `${obj.kind}/${obj.metadata.name}`;
      }
      seen.add(key);
      try {
        await kube.create(resourceOf(obj), obj);
        accepted.push(obj);
      } catch (e) {
        assert.ok(e instanceof K8sApiError, `${key}: ${String(e)}`);
        assert.ok([400, 422].includes(e.status), `${key}: HTTP ${e.status} ${e.message}`);
        assert.ok(e.message.length > 0, `${key}: refused without a message`);
        refused.set(obj.kind, (refused.get(obj.kind) ?? 0) + 1);
      }
    }
    const applied = Date.now() - t0;

    // Every accepted object of a kind with a status gets one from the operator.
    const pending = new Map(
      accepted.filter((o) => !WITHOUT_STATUS.has(o.kind)).map((o) => [`${o.kind}/${o.metadata.name}`, o]),
    );
    const statused = new Map<string, number>();
    await eventually(
      'status on every accepted object',
      async () => {
        for (const kind of new Set([...pending.values()].map((o) => o.kind))) {
          const rt = resourceOf({ apiVersion: 'secrets.hashicorp.com/v1beta1', kind });
          for (const o of (await kube.list<Fuzzed>(rt, { namespace: ns })).items) {
            const s = o.status;
            const key = `${kind}/${o.metadata.name}`;
            if (pending.has(key) && s && ((s.conditions?.length ?? 0) > 0 || s.valid !== undefined)) {
              pending.delete(key);
              statused.set(kind, (statused.get(kind) ?? 0) + 1);
            }
          }
        }
        return pending.size === 0;
      },
      45_000,
      1_000,
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}: no status on ${[...pending.keys()].join(', ')}`);
    });
    const reported = Date.now() - t0;

    // A newcomer in another namespace still syncs: the operator is not wedged.
    await tenant(env, kube, vault, later);
    await vault.kvPut('kvv2', `${later}/app`, { password: canary('later', canaries) });
    await apply(kube, kvSecret(later, 'app'));
    await eventually(
      'the newcomer syncs',
      async () => synced(await kube.get(VaultStaticSecrets, 'app', later)),
      30_000,
    );

    assert.equal(await operatorIncarnation(env), incarnation, 'the operator restarted');
    // Nothing outside the tenant's namespace was written: the decoy Secrets are untouched, and no
    // Secret anywhere else is owned by a fuzzed object.
    const decoyAfter = (await kube.list<Secret>(Secrets, { namespace: decoy })).items;
    for (const s of decoyAfter)
      assert.equal(
        s.metadata.resourceVersion,
        decoyBefore.get(s.metadata.name ?? ''),
        `${decoy}/${s.metadata.name}`,
      );
    const uids = new Set<string>();
    for (const kind of FUZZED) {
      const rt = resourceOf({ apiVersion: 'secrets.hashicorp.com/v1beta1', kind });
      for (const o of (await kube.list(rt, { namespace: ns })).items) uids.add(o.metadata.uid ?? '');
    }
    for (const s of (await kube.list<Secret>(Secrets)).items)
      if (s.metadata.namespace !== ns)
        for (const r of s.metadata.ownerReferences ?? [])
          assert.ok(
            !uids.has(r.uid),
            `${s.metadata.namespace}/${s.metadata.name} is owned by a fuzzed object`,
          );

    // No canary in the operator's log, or in Events and status anyone can read.
    for (const n of [ns, later]) await assertNoLeak(env, kube, n, VaultStaticSecrets, canaries);
    assertNotIn(canaries, JSON.stringify(await eventsOf(kube, decoy)), 'an Event of the decoy');
    assert.ok(operatorLog(env).length > 0, 'the operator log is readable');

    // How many read the canary's secret and wrote it (the others failed on their hostile fields).
    const vss = await kube.list<VaultStaticSecret>(VaultStaticSecrets, { namespace: ns });
    const syncedReal = vss.items.filter(synced).length;
    const count = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
    process.stderr.write(
      `fuzz-resources: seed ${SEED}: ${objects.length} generated, ${accepted.length} accepted, ` +
        `${count(refused)} refused ${JSON.stringify(Object.fromEntries(refused))}, ${count(statused)} statused ` +
        `${JSON.stringify(Object.fromEntries(statused))}; applied in ${applied} ms, all statused at ${reported} ms, ` +
        `total ${Date.now() - t0} ms; ${syncedReal} VaultStaticSecrets synced\n`,
    );
    assert.ok(accepted.length >= objects.length * 0.4, 'too few generated objects pass the schema');
  });
});
