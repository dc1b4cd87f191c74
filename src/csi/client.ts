// A small promise client for the driver's socket, as kubelet or csi-sanity would call it. Used by
// the tests and the benchmark.
import { type Client, credentials, type ServiceError } from '@grpc/grpc-js';
import { csiServices } from './proto.ts';
import { socketPath } from './server.ts';

type Unary = (req: unknown, cb: (err: ServiceError | null, res: unknown) => void) => void;

export class CsiClient {
  readonly #identity: Client;
  readonly #node: Client;

  constructor(endpoint: string) {
    const { IdentityClient, NodeClient } = csiServices();
    const target = `unix://${socketPath(endpoint)}`;
    this.#identity = new IdentityClient(target, credentials.createInsecure());
    this.#node = new NodeClient(target, credentials.createInsecure());
  }

  #call<Res>(client: Client, method: string, req: unknown): Promise<Res> {
    const fn = (client as unknown as Record<string, Unary>)[method];
    if (typeof fn !== 'function') return Promise.reject(new Error(`no method ${method}`));
    return new Promise((resolve, reject) => {
      fn.call(client, req, (err, res) => (err ? reject(err) : resolve(res as Res)));
    });
  }

  identity<Res = Record<string, unknown>>(method: string, req: unknown = {}): Promise<Res> {
    return this.#call(this.#identity, method, req);
  }

  node<Res = Record<string, unknown>>(method: string, req: unknown = {}): Promise<Res> {
    return this.#call(this.#node, method, req);
  }

  /** Calls any method path with an empty message (for UNIMPLEMENTED checks). */
  raw(path: string): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.#node.makeUnaryRequest(
        path,
        () => Buffer.alloc(0),
        (b: Buffer) => b,
        {},
        (err, res) => (err ? reject(err) : resolve(res ?? Buffer.alloc(0))),
      );
    });
  }

  close(): void {
    this.#identity.close();
    this.#node.close();
  }
}

/** The gRPC status name of a failed call (e.g. "PERMISSION_DENIED"), for assertions. */
export function grpcCodeName(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'number') return undefined;
  const names: Record<number, string> = {
    0: 'OK',
    1: 'CANCELLED',
    2: 'UNKNOWN',
    3: 'INVALID_ARGUMENT',
    4: 'DEADLINE_EXCEEDED',
    5: 'NOT_FOUND',
    6: 'ALREADY_EXISTS',
    7: 'PERMISSION_DENIED',
    8: 'RESOURCE_EXHAUSTED',
    9: 'FAILED_PRECONDITION',
    10: 'ABORTED',
    11: 'OUT_OF_RANGE',
    12: 'UNIMPLEMENTED',
    13: 'INTERNAL',
    14: 'UNAVAILABLE',
    15: 'DATA_LOSS',
    16: 'UNAUTHENTICATED',
  };
  return names[code];
}
