// syncConfig.instantUpdates: a change detected in Vault enqueues the VaultStaticSecrets that sync
// that KV secret. Detection is the audit stream (src/vault/audit-stream.ts), run only where the
// controllers run; the resync itself is the ordinary level-triggered reconcile, so a duplicate or
// forged notification costs one read and a lost one is caught by refreshAfter or the catch-up.
import type { VaultStaticSecret } from '../../api/v1beta1/vaultstaticsecret.ts';
import { BACKGROUND_BACKOFF, intervalFor, jittered } from '../../backoff.ts';
import { sleep } from '../../clock.ts';
import { type Controller, formatKey, type ObjectKey } from '../../runtime/controller.ts';
import type { Informer } from '../../runtime/informer.ts';
import { type KVChange, kvSecretKey, runAuditStream, vaultNamespaceKey } from '../../vault/audit-stream.ts';
import { objKey, type SetupEnv } from '../setup.ts';

/** Store index: the KV secret a VaultStaticSecret with instantUpdates syncs. */
export const INSTANT_INDEX = 'instantKV';

export function instantIndex(o: VaultStaticSecret): string[] {
  const s = o.spec;
  return s?.syncConfig?.instantUpdates && s.mount && s.path ? [kvSecretKey(s.mount, s.path)] : [];
}

/**
 * The Vault namespace each instant resource last read its secret from (its spec.namespace, else its
 * VaultAuth's), recorded by the reconcile: the same mount and path in another namespace is another
 * secret. Until a resource has been read its namespace is unknown, and any namespace matches (one
 * read at most).
 */
export class ReadNamespaces {
  readonly #byKey = new Map<string, string>();

  record(key: ObjectKey, vaultNamespace: string | undefined): void {
    this.#byKey.set(formatKey(key), vaultNamespaceKey(vaultNamespace));
  }

  forget(key: ObjectKey): void {
    this.#byKey.delete(formatKey(key));
  }

  /** Whether a write in `namespace` (vaultNamespaceKey) may concern the resource at `key`. */
  matches(key: ObjectKey, namespace: string): boolean {
    const read = this.#byKey.get(formatKey(key));
    return read === undefined || read === namespace;
  }
}

/** The instant resources that read a secret `change` may have changed. */
export function changedBy(
  store: { byIndex(index: string, value: string): VaultStaticSecret[] },
  namespaces: ReadNamespaces,
  change: KVChange,
): VaultStaticSecret[] {
  return change.keys.flatMap((k) =>
    store.byIndex(INSTANT_INDEX, k).filter((o) => namespaces.matches(objKey(o), change.namespace)),
  );
}

/**
 * After a (re)connection every instant resource is read once, since changes made while no stream
 * was connected were not seen; at most once per this interval, so that a peer reconnecting in a
 * loop cannot turn the listener into a read amplifier.
 */
export const CATCH_UP_INTERVAL_MS = 10_000;

export function setupInstantUpdates(
  env: SetupEnv,
  informer: Informer<VaultStaticSecret>,
  controller: Controller,
  namespaces: ReadNamespaces,
): void {
  const { manager, ctx } = env;
  const opts = ctx.options.auditStream;
  if (!opts) return;
  const log = ctx.log.child({ component: 'audit-stream' });
  let nextCatchUp = 0;
  const catchUp = (): void => {
    const now = ctx.clock.now();
    const delay = Math.max(0, nextCatchUp - now);
    nextCatchUp = now + delay + CATCH_UP_INTERVAL_MS;
    for (const o of informer.store.list()) {
      if (instantIndex(o).length === 0) continue;
      controller.queue.addAfter(formatKey(objKey(o)), delay);
    }
  };
  const handlers = {
    onChange: (change: KVChange) => {
      for (const o of changedBy(informer.store, namespaces, change)) {
        log.debug({ namespace: o.metadata.namespace, name: o.metadata.name }, 'change in Vault');
        controller.queue.add(formatKey(objKey(o)));
      }
    },
    onConnect: (peer: string) => {
      log.info({ peer }, 'audit stream connected; catching up');
      catchUp();
    },
    onRefused: (peer: string, why: string) => log.warn({ peer, why }, 'audit stream connection refused'),
  };
  manager.runWhileLeading('audit-stream', async (signal) => {
    // The port can still be held for a moment by the previous leader: retry the bind with backoff.
    for (let failures = 0; !signal.aborted; failures++) {
      try {
        log.info({ host: opts.host, port: opts.port }, 'listening for the Vault audit stream');
        await runAuditStream(opts, handlers, signal);
        return;
      } catch (err) {
        const delay = jittered(BACKGROUND_BACKOFF, intervalFor(BACKGROUND_BACKOFF, failures), ctx.random());
        log.error({ err, retryInMs: delay }, 'audit stream listener failed');
        await sleep(ctx.clock, delay, signal);
      }
    }
  });
}
