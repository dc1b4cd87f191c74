// A TCP proxy that tests put between two parts of the stack to inject network faults: refused,
// reset, black-holed, slow. The parts themselves keep running for everyone else.
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export type FaultMode = 'pass' | 'refuse' | 'reset' | 'blackhole' | 'slow';

/**
 * The fault injector: a TCP proxy to `target` on a fixed loopback port. A connection accepted while
 * black-holed, or open when the black hole began, never carries another byte; a reset sends a RST on
 * every open connection and every new one.
 */
export class FaultProxy {
  readonly #target: number;
  readonly #pairs = new Set<{ client: Socket; upstream?: Socket; dead: boolean }>();
  #server: Server | undefined;
  #mode: FaultMode = 'pass';
  delayMs = 1500;
  port = 0;
  constructor(target: number) {
    this.#target = target;
  }
  get mode(): FaultMode {
    return this.#mode;
  }
  async set(mode: FaultMode): Promise<void> {
    this.#mode = mode;
    if (mode === 'refuse') {
      const server = this.#server;
      this.#server = undefined;
      for (const p of this.#pairs) {
        p.client.destroy();
        p.upstream?.destroy();
      }
      if (server) await new Promise<void>((r) => server.close(() => r()));
      return;
    }
    if (mode === 'blackhole') for (const p of this.#pairs) p.dead = true;
    if (mode === 'reset') for (const p of this.#pairs) p.client.resetAndDestroy();
    if (!this.#server) await this.#listen();
  }
  async #listen(): Promise<void> {
    const server = createServer((client) => {
      if (this.#mode === 'reset') {
        client.resetAndDestroy();
        return;
      }
      const pair: { client: Socket; upstream?: Socket; dead: boolean } = {
        client,
        dead: this.#mode === 'blackhole',
      };
      this.#pairs.add(pair);
      const drop = () => {
        this.#pairs.delete(pair);
        client.destroy();
        pair.upstream?.destroy();
      };
      client.on('error', drop).on('close', drop);
      if (pair.dead) return; // accepted, read, never answered
      const upstream = createConnection({ host: '127.0.0.1', port: this.#target });
      pair.upstream = upstream;
      upstream.on('error', drop).on('close', drop);
      const forward = (to: Socket) => (chunk: Buffer) => {
        if (pair.dead) return;
        if (this.#mode === 'slow') setTimeout(() => !pair.dead && to.write(chunk), this.delayMs);
        else to.write(chunk);
      };
      client.on('data', forward(upstream));
      upstream.on('data', forward(client));
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    const addr = server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : 0;
    this.#server = server;
  }
  async close(): Promise<void> {
    await this.set('refuse');
  }
}
