// The watcher against the real kube-apiserver: connections are killed mid-stream by a TCP proxy,
// the server ends watches every 2 s (timeoutSeconds), writes happen during every reconnect gap,
// and a resume from a too-old resourceVersion forces a real 410 from the apiserver. After each phase the store must
// equal a fresh list (names and resourceVersions), i.e. no event was missed.
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { CODES, isFerryError } from '../../src/errors.ts';
import { KubeClient, type WatchOptions } from '../../src/k8s/client.ts';
import { loadKubeConnection } from '../../src/k8s/config.ts';
import { isK8sApiError } from '../../src/k8s/errors.ts';
import type { ResourceType } from '../../src/k8s/resources.ts';
import { ConfigMaps, CustomResourceDefinitions, Namespaces, Secrets } from '../../src/k8s/resources.ts';
import type { ConfigMap, KubeObject, Secret } from '../../src/k8s/types.ts';
import { createStore, type Store } from '../../src/runtime/store.ts';
import { type WatcherEvent, watcher } from '../../src/runtime/watcher.ts';
import { uniqueName, useStack } from './harness.ts';

/** A byte-level TCP proxy (TLS passes through untouched) that can sever every connection. */
async function tcpProxy(target: URL): Promise<{ url: string; killAll(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((down) => {
    const up = connect(Number(target.port), target.hostname);
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    down.pipe(up).on('close', () => down.destroy());
    up.pipe(down).on('close', () => up.destroy());
    down.on('close', () => up.destroy());
    up.on('close', () => down.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return {
    url: `https://127.0.0.1:${address.port}`,
    killAll: () => {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Resumes its next watch from resourceVersion "1", far older than the apiserver's watch cache. */
class StaleResumeClient extends KubeClient {
  staleNext = false;
  override watch<T extends KubeObject>(rt: ResourceType, opts: WatchOptions, signal: AbortSignal) {
    if (this.staleNext && opts.resourceVersion !== undefined) {
      this.staleNext = false;
      return super.watch<T>(rt, { ...opts, resourceVersion: '1' }, signal);
    }
    return super.watch<T>(rt, opts, signal);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually(
  what: string,
  check: () => Promise<string | undefined>,
  ms = 20_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  let last: string | undefined;
  while (Date.now() < deadline) {
    last = await check();
    if (last === undefined) return;
    await sleep(100);
  }
  assert.fail(`${what}: ${last}`);
}

describe('watcher against the real apiserver', { timeout: 180_000 }, () => {
  let admin: KubeClient;
  let ns: string;
  before(async () => {
    const env = await useStack();
    admin = new KubeClient(loadKubeConnection({ kubeconfig: env.kubeconfig }), { userAgent: 'ferry-e2e' });
    ns = uniqueName('watch');
    await admin.create(Namespaces, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  });
  after(async () => {
    await admin.delete(Namespaces, ns).catch(() => {});
    await admin.close();
  });

  /** Compares a store with a fresh list (names and resourceVersions); undefined if they agree. */
  function diff(rt: ResourceType, opts: { labelSelector?: string } = {}) {
    return async (store: Store<KubeObject>): Promise<string | undefined> => {
      const fresh = await admin.list<KubeObject>(rt, { namespace: ns, ...opts });
      const key = (o: KubeObject) => `${o.metadata.name}@${o.metadata.resourceVersion}`;
      const want = JSON.stringify(fresh.items.map(key).sort());
      const got = JSON.stringify(store.list().map(key).sort());
      return want === got ? undefined : `store ${got} != list ${want}`;
    };
  }

  /** Runs a watcher through a severable proxy into a store. */
  async function startWatcher<T extends KubeObject>(rt: ResourceType, labelSelector?: string) {
    const env = await useStack();
    const conn = loadKubeConnection({ kubeconfig: env.kubeconfig });
    const proxy = await tcpProxy(new URL(conn.server));
    const client = new StaleResumeClient({ ...conn, server: proxy.url }, { userAgent: 'ferry-e2e-watcher' });
    const ac = new AbortController();
    const errors: unknown[] = [];
    const events: WatcherEvent<T>[] = [];
    const { store, writer } = createStore<T>();
    const run = (async () => {
      for await (const ev of watcher<T>(client, rt, {
        namespace: ns,
        ...(labelSelector !== undefined && { labelSelector }),
        pageSize: 2,
        timeoutSeconds: 2,
        signal: ac.signal,
        onError: (e) => errors.push(e),
        backoff: { initialMs: 50, maxMs: 500 },
      })) {
        events.push(ev);
        writer.apply(ev);
      }
    })();
    const inits = () => events.filter((e) => e.type === 'init').length;
    const stop = async () => {
      ac.abort();
      await run;
      await client.close();
      await proxy.close();
    };
    return { proxy, client, errors, events, store, inits, stop };
  }

  it('misses no event across server timeouts and killed connections, without relisting', async () => {
    const selector = 'ferry-e2e=watch';
    let seq = 0;
    const put = async (name: string) => {
      const body: ConfigMap = {
        metadata: { name, namespace: ns, labels: { 'ferry-e2e': 'watch' } },
        data: { seq: String(++seq) },
      };
      try {
        await admin.replace(ConfigMaps, body);
      } catch (err) {
        if (!isK8sApiError(err) || !err.isNotFound()) throw err;
        await admin.create(ConfigMaps, body);
      }
    };
    const del = (name: string) =>
      admin.delete(ConfigMaps, name, ns).catch((err: unknown) => {
        if (!isK8sApiError(err) || !err.isNotFound()) throw err;
      });
    // Churn: creates, updates and deletes over a small set of names, so the same names recur.
    const churn = async (ms: number) => {
      const end = Date.now() + ms;
      let i = 0;
      while (Date.now() < end) {
        const name = `cm-${i % 7}`;
        if (i % 5 === 3) await del(name);
        else await put(name);
        i++;
        await sleep(25);
      }
    };
    const same = () => diff(ConfigMaps, { labelSelector: selector });

    for (let i = 0; i < 5; i++) await put(`pre-${i}`);
    const w = await startWatcher<ConfigMap>(ConfigMaps, selector);
    try {
      await w.store.waitUntilReady(AbortSignal.timeout(20_000));
      assert.equal(w.events.filter((e) => e.type === 'initApply').length, 5, 'paginated initial list');

      // Phase 1: the server ends each watch after 2 s; writes continue through every gap.
      await churn(5_000);
      await eventually('after server timeouts', () => same()(w.store));

      // Phase 2: sever the TCP connections mid-stream, repeatedly, while writing.
      for (let k = 0; k < 3; k++) {
        const churning = churn(1_000);
        await sleep(300);
        w.proxy.killAll();
        await churning;
      }
      await eventually('after killed connections', () => same()(w.store));
      assert.equal(w.inits(), 1, 'every reconnect resumed from a resourceVersion; no relist');
      assert.ok(
        w.errors.some((e) => isFerryError(e) && e.code === CODES.K8S_TRANSPORT),
        'the severed streams were noticed',
      );
      assert.equal(w.store.list()[0]?.metadata.managedFields, undefined);
    } finally {
      await w.stop();
    }
  });

  it('relists after a real 410 and drops objects deleted while disconnected', async () => {
    // A fresh CRD gets a fresh watch cache, so resourceVersion "1" is older than anything the
    // apiserver can replay and it must answer 410 Expired (configmaps' cache reaches back to
    // apiserver start, where "1" would still replay).
    const group = `${uniqueName('g')}.e2e.ferry.dev`;
    const rt: ResourceType = { group, version: 'v1', kind: 'Probe', plural: 'probes', namespaced: true };
    await admin.create(CustomResourceDefinitions, {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: `probes.${group}` },
      spec: {
        group,
        scope: 'Namespaced',
        names: { plural: 'probes', singular: 'probe', kind: 'Probe', listKind: 'ProbeList' },
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
          },
        ],
      },
    } as KubeObject);
    const probe = (name: string): KubeObject => ({
      apiVersion: `${group}/v1`,
      kind: 'Probe',
      metadata: { name, namespace: ns },
    });
    const w = await startWatcher<KubeObject>(rt);
    try {
      // Creating right after the CRD can race its establishment; retry briefly.
      for (const name of ['a', 'b', 'c']) {
        await eventually(`create ${name}`, () =>
          admin.create(rt, probe(name)).then(
            () => undefined,
            (e: unknown) => String(e),
          ),
        );
      }
      await eventually('initial sync', () => diff(rt)(w.store));
      const initsBefore = w.inits();

      w.client.staleNext = true;
      w.proxy.killAll();
      await admin.delete(rt, 'a', ns);
      await admin.create(rt, probe('d'));
      await eventually('after 410', async () =>
        w.inits() === initsBefore ? 'no relist yet' : diff(rt)(w.store),
      );
      assert.ok(
        w.errors.some((e) => isK8sApiError(e) && e.isGone()),
        'the apiserver answered 410 for the stale resourceVersion',
      );
      assert.equal(w.store.get(ns, 'a'), undefined, 'an object deleted while disconnected is gone');
      assert.ok(w.store.get(ns, 'd'));

      // The watch keeps working after the relist.
      await admin.delete(rt, 'b', ns);
      await eventually('after relist', () => diff(rt)(w.store));
    } finally {
      await w.stop();
      await admin.delete(CustomResourceDefinitions, `probes.${group}`).catch(() => {});
    }
  });

  it('watches Secrets metadata-only: no data reaches the store', async () => {
    await admin.create(Secrets, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'meta', namespace: ns, labels: { a: 'b' } },
      data: { password: Buffer.from('hunter2').toString('base64') },
    } satisfies Secret);
    const ac = new AbortController();
    const { store, writer } = createStore<Secret>();
    const run = (async () => {
      for await (const ev of watcher<Secret>(admin, Secrets, {
        namespace: ns,
        metadataOnly: true,
        signal: ac.signal,
      })) {
        writer.apply(ev);
      }
    })();
    try {
      await store.waitUntilReady(AbortSignal.timeout(20_000));
      const s = store.get(ns, 'meta');
      assert.equal(s?.kind, 'Secret', 'the real kind replaces PartialObjectMetadata');
      assert.equal(s?.data, undefined);
      assert.deepEqual(s?.metadata.labels, { a: 'b' });
      await admin.patch(Secrets, 'meta', ns, { metadata: { labels: { a: 'c' } } }, 'merge');
      await eventually('label update', async () =>
        store.get(ns, 'meta')?.metadata.labels?.a === 'c' ? undefined : 'not yet',
      );
      assert.equal(store.get(ns, 'meta')?.data, undefined);
    } finally {
      ac.abort();
      await run;
    }
  });
});
