// A fake-backed harness for the effect paths of the secret kinds: an in-memory Kubernetes (the
// objects, their status and finalizers, destination Secrets, with resourceVersions), a scripted
// Vault, recorded Events, and the reconciler's informer store kept in step with the fake apiserver.
import { isDeepStrictEqual } from 'node:util';
import { APP_NAME, LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY } from '../../../src/consts/labels.ts';
import type { ControllerContext } from '../../../src/controllers/context.ts';
import { DestinationWriter } from '../../../src/controllers/shared/destination-writer.ts';
import type { VaultAccess } from '../../../src/delivery/vault-access.ts';
import type { KubeClient } from '../../../src/k8s/client.ts';
import { K8sApiError } from '../../../src/k8s/errors.ts';
import { type ResourceType, Secrets } from '../../../src/k8s/resources.ts';
import type { KubeList, KubeObject } from '../../../src/k8s/types.ts';
import type { Action, Reconciler } from '../../../src/runtime/controller.ts';
import type { JsonPatchOp } from '../../../src/runtime/finalizer.ts';
import { createStore, type Store } from '../../../src/runtime/store.ts';
import type { VaultApi, VaultResponse } from '../../../src/vault/client.ts';
import { FakeClock } from '../runtime/fake-clock.ts';

const idOf = (rt: ResourceType, namespace: string | undefined, name: string): string =>
  `${rt.plural}/${namespace ?? ''}/${name}`;

/** Just enough of KubeClient for destination writes, status merge patches and finalizer JSON patches. */
export class FakeKube {
  readonly objects = new Map<string, KubeObject>();
  readonly writes: { verb: string; id: string }[] = [];
  /** Every GET the code under test made, by object id. */
  readonly reads: string[] = [];
  #rv = 1;

  put<T extends KubeObject>(rt: ResourceType, obj: T): T {
    const stored = { ...obj, metadata: { ...obj.metadata, resourceVersion: `rv-${++this.#rv}` } };
    this.objects.set(idOf(rt, obj.metadata.namespace, obj.metadata.name ?? ''), stored);
    return structuredClone(stored);
  }

  async getIfExists<T extends KubeObject>(
    rt: ResourceType,
    name: string,
    namespace?: string,
  ): Promise<T | undefined> {
    this.reads.push(idOf(rt, namespace, name));
    return this.peek<T>(rt, name, namespace);
  }

  /** The stored object, as a watch would show it; not counted as a read. */
  peek<T extends KubeObject>(rt: ResourceType, name: string, namespace?: string): T | undefined {
    const o = this.objects.get(idOf(rt, namespace, name));
    return o ? (structuredClone(o) as T) : undefined;
  }

  async get<T extends KubeObject>(rt: ResourceType, name: string, namespace?: string): Promise<T> {
    const o = await this.getIfExists<T>(rt, name, namespace);
    if (!o) throw new K8sApiError(404, 'NotFound', `${rt.plural} ${name} not found`);
    return o;
  }

  async list<T extends KubeObject>(
    rt: ResourceType,
    opts: { namespace?: string } = {},
  ): Promise<KubeList<T>> {
    const prefix = `${rt.plural}/${opts.namespace ?? ''}/`;
    const items = [...this.objects]
      .filter(([k]) => k.startsWith(prefix))
      .map(([, o]) => structuredClone(o) as T);
    return { metadata: {}, items };
  }

  async create<T extends KubeObject>(rt: ResourceType, obj: T): Promise<T> {
    const id = idOf(rt, obj.metadata.namespace, obj.metadata.name ?? '');
    if (this.objects.has(id)) throw new K8sApiError(409, 'AlreadyExists', `${id} exists`);
    this.writes.push({ verb: 'create', id });
    return this.put(rt, { ...obj, metadata: { ...obj.metadata, uid: `uid-${obj.metadata.name}` } });
  }

  async replace<T extends KubeObject>(rt: ResourceType, obj: T): Promise<T> {
    const id = idOf(rt, obj.metadata.namespace, obj.metadata.name ?? '');
    const cur = this.objects.get(id);
    if (!cur) throw new K8sApiError(404, 'NotFound', `${id} not found`);
    if (obj.metadata.resourceVersion && obj.metadata.resourceVersion !== cur.metadata.resourceVersion)
      throw new K8sApiError(409, 'Conflict', `${id} changed`);
    this.writes.push({ verb: 'replace', id });
    return this.put(rt, obj);
  }

  async delete(rt: ResourceType, name: string, namespace?: string): Promise<void> {
    const id = idOf(rt, namespace, name);
    if (!this.objects.delete(id)) throw new K8sApiError(404, 'NotFound', `${id} not found`);
    this.writes.push({ verb: 'delete', id });
  }

  async patch<T extends KubeObject>(
    rt: ResourceType,
    name: string,
    namespace: string | undefined,
    body: unknown,
    type: 'merge' | 'json',
  ): Promise<T> {
    const id = idOf(rt, namespace, name);
    const cur = this.objects.get(id) as (KubeObject & { status?: Record<string, unknown> }) | undefined;
    if (!cur) throw new K8sApiError(404, 'NotFound', `${id} not found`);
    const next = structuredClone(cur);
    if (type === 'merge') {
      const status = (body as { status: Record<string, unknown> }).status;
      next.status = { ...next.status };
      for (const [k, v] of Object.entries(status)) {
        if (v === null) delete next.status[k];
        else next.status[k] = v;
      }
      this.writes.push({ verb: 'status', id });
    } else {
      for (const op of body as JsonPatchOp[]) applyFinalizerOp(next, op);
      this.writes.push({ verb: 'finalizers', id });
    }
    if (next.metadata.deletionTimestamp && (next.metadata.finalizers ?? []).length === 0) {
      this.objects.delete(id);
      return next as T;
    }
    return this.put(rt, next) as T;
  }

  count(verb: string, id?: string): number {
    return this.writes.filter((w) => w.verb === verb && (id === undefined || w.id === id)).length;
  }
}

function applyFinalizerOp(obj: KubeObject, op: JsonPatchOp): void {
  const list = obj.metadata.finalizers ?? [];
  const whole = op.path === '/metadata/finalizers';
  const index = Number(op.path.split('/').at(-1));
  if (op.op === 'test') {
    const actual = whole ? (obj.metadata.finalizers ?? null) : list[index];
    if (!isDeepStrictEqual(actual, op.value))
      throw new K8sApiError(422, 'Invalid', `test of ${op.path} failed`);
  } else if (op.op === 'add') {
    obj.metadata.finalizers = whole ? (op.value as string[]) : [...list, op.value as string];
  } else {
    obj.metadata.finalizers = list.filter((_, j) => j !== index);
  }
}

export type VaultCall = {
  method: 'read' | 'write' | 'delete' | 'list';
  path: string;
  body?: Record<string, unknown>;
};

/** A scripted Vault: `answer` returns the response for a call or throws the error Vault would. */
export class ScriptedVault implements VaultApi {
  readonly calls: VaultCall[] = [];
  answer: (call: VaultCall) => VaultResponse | undefined = () => undefined;

  #call(call: VaultCall): Promise<VaultResponse | undefined> {
    this.calls.push(call);
    try {
      return Promise.resolve(this.answer(call));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  read(path: string) {
    return this.#call({ method: 'read', path });
  }
  write(path: string, body?: Record<string, unknown>) {
    return this.#call({ method: 'write', path, ...(body ? { body } : {}) });
  }
  delete(path: string) {
    return this.#call({ method: 'delete', path });
  }
  list(path: string) {
    return this.#call({ method: 'list', path });
  }
  paths(method?: VaultCall['method']): string[] {
    return this.calls.filter((c) => method === undefined || c.method === method).map((c) => c.path);
  }
}

export interface RecordedEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** The context, fakes and a `run` that reconciles one object of `rt` the way the controller does. */
export function harness<T extends KubeObject>(rt: ResourceType, make: (h: Harness<T>) => Reconciler) {
  const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
  const kube = new FakeKube();
  const vault = new ScriptedVault();
  const events: RecordedEvent[] = [];
  /** Set to make the Vault session itself fail (e.g. the VaultAuth is gone). */
  let accessError: unknown;
  /** The namespace is being deleted: it refuses Events, and the recorder learns it from the first. */
  let terminating = false;
  let refused = false;
  const { store, writer } = createStore<T>();
  writer.apply({ type: 'init' });
  writer.apply({ type: 'initDone' });
  const emptyStore = createStore<KubeObject>();
  emptyStore.writer.apply({ type: 'init' });
  emptyStore.writer.apply({ type: 'initDone' });
  const ctx = {
    client: kube,
    log: { info() {}, warn() {}, debug() {}, error() {} },
    events: {
      normal: async (_o: unknown, reason: string, message: string) => {
        events.push({ type: 'Normal', reason, message });
      },
      warning: async (_o: unknown, reason: string, message: string) => {
        if (terminating) refused = true;
        else events.push({ type: 'Warning', reason, message });
      },
      refusedAsTerminating: () => refused,
    },
    clock,
    random: () => 0.5,
    options: { operatorNamespace: 'ferry', globalExcludeRaw: false, allowDefaultGlobals: true },
    vault: {
      get: async (): Promise<VaultAccess> => {
        if (accessError) throw accessError;
        return { api: vault, cacheKey: 'ck', clientId: 'cid' } as unknown as VaultAccess;
      },
    },
    hmacKey: async () => Buffer.alloc(32, 7),
    // Background work runs at once, outside the reconcile, as a task queue would run it.
    tasks: {
      schedule: (_key: string, task: (signal: AbortSignal) => Promise<void>) =>
        void task(new AbortController().signal),
    },
    informers: { transformations: { store: emptyStore.store } },
  } as unknown as ControllerContext;
  // The metadata-only watch of managed Secrets, always caught up with the fake apiserver.
  const managed = {
    get: (namespace: string | undefined, name: string) => {
      const s = kube.peek<KubeObject>(Secrets, name, namespace);
      const labels = s?.metadata.labels ?? {};
      return labels[LABEL_MANAGED_BY] === MANAGED_BY && labels[LABEL_NAME] === APP_NAME ? s : undefined;
    },
  };
  const h: Harness<T> = {
    ctx,
    kube,
    newDestinations: () => {
      const writer = new DestinationWriter(kube as unknown as KubeClient);
      writer.observe(managed);
      return writer;
    },
    vault,
    events,
    clock,
    store,
    failAccess: (err) => {
      accessError = err;
    },
    terminateNamespace: () => {
      terminating = true;
    },
    apply: (obj) => {
      const stored = kube.put(rt, obj);
      writer.apply({ type: 'apply', object: stored });
      return stored;
    },
    markDeleted: (name, namespace = 'app') => {
      const obj = store.get(namespace, name);
      if (!obj) throw new Error(`${namespace}/${name} is not stored`);
      const deletionTimestamp = new Date(clock.now()).toISOString();
      h.apply({ ...obj, metadata: { ...obj.metadata, deletionTimestamp } });
    },
    run: async () => {
      throw new Error('not ready');
    },
  };
  const reconcile = make(h);
  /** Reconciles and then lets the informer catch up with what the fake apiserver now holds. */
  h.run = async (name: string, namespace = 'app'): Promise<Action> => {
    try {
      return await reconcile({
        key: { namespace, name },
        signal: new AbortController().signal,
        log: ctx.log,
        reconcileId: 'r',
      });
    } finally {
      const now = kube.peek<T>(rt, name, namespace);
      const before = store.get(namespace, name);
      if (now) writer.apply({ type: 'apply', object: now });
      else if (before) writer.apply({ type: 'delete', object: before });
    }
  };
  return h;
}

export interface Harness<T extends KubeObject> {
  ctx: ControllerContext;
  kube: FakeKube;
  /** A destination writer over the fake apiserver and its managed-Secret watch, as a (re)started
   * operator has: nothing remembered yet. */
  newDestinations(): DestinationWriter;
  vault: ScriptedVault;
  events: RecordedEvent[];
  clock: FakeClock;
  store: Store<T>;
  failAccess(err: unknown): void;
  /** The namespace is being deleted from now on: Events into it are refused. */
  terminateNamespace(): void;
  /** Stores the object in the fake apiserver and the informer. */
  apply(obj: T): T;
  /** Deletes the object as the apiserver does while finalizers hold it: sets deletionTimestamp. */
  markDeleted(name: string, namespace?: string): void;
  run(name: string, namespace?: string): Promise<Action>;
}
