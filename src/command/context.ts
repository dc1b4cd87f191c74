// What a `ferry` command runs with: its parsed flags, the terminal, the clock, and a Kubernetes client
// made on first use (lint without --cluster never needs a kubeconfig).
import type { Clock } from '../clock.ts';
import { KubeClient } from '../k8s/client.ts';
import { type KubeConnection, loadKubeConnection } from '../k8s/config.ts';
import type { CommandSpec, CommandValues, GlobalFlags } from './args.ts';
import { type Paint, painter, type Stream } from './output.ts';

export interface Io {
  stdout: Stream;
  stderr: Stream;
  env: Record<string, string | undefined>;
  readStdin(): Promise<string>;
  clock: Clock;
  /** Aborts on SIGINT/SIGTERM: long-running commands (status --watch) end cleanly. */
  signal: AbortSignal;
}

export class CommandContext {
  readonly global: GlobalFlags;
  readonly values: CommandValues;
  readonly positionals: string[];
  readonly io: Io;
  readonly paint: Paint;
  #conn: KubeConnection | undefined;
  #client: KubeClient | undefined;

  constructor(inv: { global: GlobalFlags; values: CommandValues; positionals: string[] }, io: Io) {
    this.global = inv.global;
    this.values = inv.values;
    this.positionals = inv.positionals;
    this.io = io;
    this.paint = painter(io.stdout, io.env);
  }

  #connection(): KubeConnection {
    this.#conn ??= loadKubeConnection({
      ...(this.global.kubeconfig !== undefined ? { kubeconfig: this.global.kubeconfig } : {}),
      ...(this.global.context !== undefined ? { context: this.global.context } : {}),
      env: this.io.env,
    });
    return this.#conn;
  }

  kube(): KubeClient {
    this.#client ??= new KubeClient(this.#connection(), { userAgent: 'ferry-cli', requestTimeoutMs: 15_000 });
    return this.#client;
  }

  /** The namespace to look in: undefined with -A, else -n, else the kubeconfig context's. */
  namespace(): string | undefined {
    if (this.global.allNamespaces) return undefined;
    return this.global.namespace ?? this.#connection().namespace;
  }

  /** The namespace of a manifest without one: -n, else the context's (only asked with --cluster). */
  defaultNamespace(): string {
    return this.global.namespace ?? this.#connection().namespace;
  }

  async close(): Promise<void> {
    await this.#client?.close();
  }
}

export interface Command extends CommandSpec {
  /** Resolves to the exit code: 0 fine, 1 findings. Throws for usage and connection errors. */
  run(ctx: CommandContext): Promise<number>;
}
