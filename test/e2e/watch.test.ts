// The watcher against the real kube-apiserver: connections are killed mid-stream by a TCP proxy,
// the server ends watches every 2 s (timeoutSeconds), writes happen during every reconnect gap,
// and a resume from a too-old resourceVersion forces a real 410. After each phase the store must
// equal a fresh list (names and resourceVersions), i.e. no event was missed.
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { CODES, isFerryError } from '../../src/errors.ts';
import { KubeClient, type WatchOptions } from '../../src/k8s/client.ts';
import { loadKubeConnection } from '../../src/k8s/config.ts';
import { isK8sApiError } from '../../src/k8s/errors.ts';
import type { ResourceType } from '../../src/k8s/resources.ts';
import { ConfigMaps, Namespaces, Secrets } from '../../src/k8s/resources.ts';
import type { ConfigMap, KubeObject, Secret, WatchEvent } from '../../src/k8s/types.ts';
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

  /** Differences between the store and a fresh list, or undefined if they agree. */
  async function diff<T extends KubeObject>(store: Store<T>, rt: ResourceType): Promise<string | undefined> {
    const fresh = await admin.list<T>(rt, { namespace: ns });
    const want = fresh.items.map((o) => `${o.metadata.name}@${o.metadata.resourceVersion}`).sort();
    const got = store
      .list()
      .map((o) => `${o.metadata.name}@${o.metadata.resourceVersion}`)
      .sort();
    return JSON.stringify(want) === JSON.stringify(got)
      ? undefined
      : `store ${JSON.stringify(got)} != list ${JSON.stringify(want)}`;
  }

  it('misses no event across server timeouts, killed connections and a 410 relist', async () => {
    const env = await useStack();
    const conn = loadKubeConnection({ kubeconfig: env.kubeconfig });
    const proxy = await tcpProxy(new URL(conn.server));
    const client = new StaleResumeClient({ ...conn, server: proxy.url }, { userAgent: 'ferry-e2e-watcher' });
    const ac = new AbortController();
    const errors: unknown[] = [];
    const events: WatcherEvent<ConfigMap>[] = [];
    const { store, writer } = createStore<ConfigMap>();

    let seq = 0;
    const put = async (name: string) => {
      const body: ConfigMap = { metadata: { name, namespace: ns }, data: { seq: String(++seq) } };
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
    // Churn: creates, updates and deletes over a small name space, so the same names recur.
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

    for (let i = 0; i < 5; i++) await put(`pre-${i}`);
    const run = (async () => {
      for await (const ev of watcher<ConfigMap>(client, ConfigMaps, {
        namespace: ns,
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
    try {
      await store.waitUntilReady(AbortSignal.timeout(20_000));
      assert.equal(events.filter((e) => e.type === 'initApply').length, 5, 'paginated initial list');

      // Phase 1: the server ends each watch after 2 s; writes continue through every gap.
      await churn(5_000);
      await eventually('after server timeouts', () => diff(store, ConfigMaps));

      // Phase 2: sever the TCP connections mid-stream, repeatedly, while writing.
      for (let k = 0; k < 3; k++) {
        const churning = churn(1_000);
        await sleep(300);
        proxy.killAll();
        await churning;
      }
      await eventually('after killed connections', () => diff(store, ConfigMaps));
      assert.equal(events.filter((e) => e.type === 'init').length, 1, 'resumed without relisting');
      assert.ok(
        errors.some((e) => isFerryError(e) && e.code === CODES.K8S_TRANSPORT),
        'the severed streams were noticed',
      );

      // Phase 3: while disconnected, objects are deleted and created; the resume uses a
      // resourceVersion the apiserver no longer has, so it answers 410 and the watcher relists.
      client.staleNext = true;
      proxy.killAll();
      await del('pre-0');
      await del('pre-1');
      await put('after-gone');
      await eventually('after 410', async () =>
        events.filter((e) => e.type === 'init').length < 2 ? 'no relist yet' : diff(store, ConfigMaps),
      );
      assert.ok(
        errors.some((e) => isK8sApiError(e) && e.isGone()),
        'the apiserver answered 410 for the stale resourceVersion',
      );
      assert.equal(store.get(ns, 'pre-0'), undefined, 'objects deleted while disconnected are gone');

      // The watch keeps working after the relist.
      await put('last');
      await eventually('after relist', () => diff(store, ConfigMaps));
      assert.equal(store.list()[0]?.metadata.managedFields, undefined);
    } finally {
      ac.abort();
      await run;
      await client.close();
      await proxy.close();
    }
  });

  it('answers a watch from a too-old resourceVersion with 410 (raw client)', async () => {
    const ac = new AbortController();
    const seen: WatchEvent<ConfigMap>[] = [];
    try {
      for await (const ev of admin.watch<ConfigMap>(
        ConfigMaps,
        { namespace: ns, resourceVersion: '1', timeoutSeconds: 5 },
        ac.signal,
      )) {
        seen.push(ev);
        break;
      }
    } catch (err) {
      // Some versions reject with HTTP 410 instead of an in-stream ERROR: both mean "relist".
      assert.ok(isK8sApiError(err) && err.isGone(), String(err));
      return;
    } finally {
      ac.abort();
    }
    const first = seen[0];
    assert.ok(first?.type === 'ERROR', `expected ERROR, got ${first?.type}`);
    assert.equal(first.object.code, 410);
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
