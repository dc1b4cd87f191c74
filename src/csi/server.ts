// The CSI gRPC endpoint: Identity and Node services on a unix socket (design-anchors §3.5). Every
// handler failure becomes a gRPC status via CsiError; RPCs Ferry does not declare (Controller,
// stage/unstage, stats, expand) are UNIMPLEMENTED.
import { chmod, mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  Server,
  ServerCredentials,
  type ServerErrorResponse,
  type ServerUnaryCall,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { toCsiError } from './errors.ts';
import type { NodeService } from './node.ts';
import {
  csiServices,
  type GetPluginInfoResponse,
  type NodeGetCapabilitiesResponse,
  type NodeGetInfoResponse,
  type NodePublishVolumeRequest,
  type NodeUnpublishVolumeRequest,
} from './proto.ts';

export interface CsiServerOptions {
  driverName: string;
  version: string;
  node: NodeService;
  /** Probe's `ready`: the caches are synced. */
  ready: () => boolean;
  log: Logger;
}

/** `unix:///csi/csi.sock`, `unix:/csi/csi.sock` or a bare absolute path → the socket path. */
export function socketPath(endpoint: string): string {
  const m = /^unix:(?:\/\/)?(\/.*)$/.exec(endpoint);
  const path = m ? m[1] : endpoint.startsWith('/') ? endpoint : undefined;
  if (!path) throw new Error(`endpoint must be a unix socket (unix:///path/csi.sock), got ${endpoint}`);
  return path;
}

export function unary<Req, Res>(
  log: Logger,
  method: string,
  fn: (req: Req, signal: AbortSignal) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => void {
  return (call, cb) => {
    const ac = new AbortController();
    call.on('cancelled', () => ac.abort(new Error('cancelled by the caller')));
    const started = performance.now();
    fn(call.request, ac.signal).then(
      (res) => {
        log.debug({ method, ms: Math.round(performance.now() - started) }, 'rpc ok');
        cb(null, res);
      },
      (err: unknown) => {
        const e = toCsiError(err);
        log.warn(
          { method, code: e.code, err: e.message, ms: Math.round(performance.now() - started) },
          'rpc failed',
        );
        const out: ServerErrorResponse = Object.assign(new Error(e.message), {
          code: e.grpcCode,
          details: e.message,
        });
        cb(out);
      },
    );
  };
}

export class CsiServer {
  readonly #o: CsiServerOptions;
  readonly #server = new Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
  #path: string | undefined;

  constructor(opts: CsiServerOptions) {
    this.#o = opts;
    const { Identity, Controller, Node } = csiServices();
    const log = opts.log;
    const identity: UntypedServiceImplementation = {
      GetPluginInfo: unary<unknown, GetPluginInfoResponse>(log, 'GetPluginInfo', async () => ({
        name: opts.driverName,
        vendor_version: opts.version,
        manifest: {},
      })),
      // No Controller service and no topology: an ephemeral inline node plugin.
      GetPluginCapabilities: unary(log, 'GetPluginCapabilities', async () => ({ capabilities: [] })),
      Probe: unary(log, 'Probe', async () => ({ ready: { value: opts.ready() } })),
    };
    const node: UntypedServiceImplementation = {
      NodePublishVolume: unary<NodePublishVolumeRequest, Record<string, never>>(
        log,
        'NodePublishVolume',
        async (req, signal) => {
          await opts.node.publish(req, signal);
          return {};
        },
      ),
      NodeUnpublishVolume: unary<NodeUnpublishVolumeRequest, Record<string, never>>(
        log,
        'NodeUnpublishVolume',
        async (req, signal) => {
          await opts.node.unpublish(req, signal);
          return {};
        },
      ),
      // VOLUME_MOUNT_GROUP: kubelet delegates the pod's fsGroup to the driver (volume_mount_group).
      NodeGetCapabilities: unary<unknown, NodeGetCapabilitiesResponse>(
        log,
        'NodeGetCapabilities',
        async () => ({
          capabilities: [{ rpc: { type: 'VOLUME_MOUNT_GROUP' } }],
        }),
      ),
      NodeGetInfo: unary<unknown, NodeGetInfoResponse>(log, 'NodeGetInfo', async () => ({
        node_id: opts.node.nodeId,
        max_volumes_per_node: 0,
      })),
    };
    // Not advertised (no CONTROLLER_SERVICE): one UNKNOWN capability (i.e. none; an empty list
    // decodes as nil in Go, which csi-sanity rejects; the Secrets Store CSI driver answers the same),
    // every other Controller RPC is UNIMPLEMENTED. See csi.proto.
    const controller: UntypedServiceImplementation = {
      ControllerGetCapabilities: unary(log, 'ControllerGetCapabilities', async () => ({
        capabilities: [{ rpc: { type: 'UNKNOWN' } }],
      })),
    };
    this.#server.addService(Identity, identity);
    this.#server.addService(Controller, controller);
    this.#server.addService(Node, node);
  }

  /** Binds the socket (removing a stale one first) and starts serving. */
  async listen(endpoint: string): Promise<string> {
    const path = socketPath(endpoint);
    await bindUnix(this.#server, path);
    this.#path = path;
    this.#o.log.info({ endpoint: `unix://${path}`, driver: this.#o.driverName }, 'CSI endpoint listening');
    return path;
  }

  async close(graceMs = 10_000): Promise<void> {
    await closeUnix(this.#server, this.#path, graceMs);
  }
}

/** Binds a gRPC server to a unix socket at `path`, replacing a stale socket, mode 0660. */
export async function bindUnix(server: Server, path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await rm(path, { force: true });
  await new Promise<number>((resolve, reject) => {
    server.bindAsync(`unix://${path}`, ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    );
  });
  await chmod(path, 0o660);
}

/** Stops accepting calls, lets running ones finish (up to graceMs), removes the socket. */
export async function closeUnix(server: Server, path: string | undefined, graceMs: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
  if (path) await rm(path, { force: true });
}
