// Loads Ferry's CSI v1 declaration (csi.proto next to this file) and types the messages the driver
// handles. Loaded with keepCase (field names as on the wire), enums as strings, defaults filled in,
// and oneofs exposed as a virtual field naming the member that is set.
import { join } from 'node:path';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

export const PROTO_FILE = join(import.meta.dirname, 'csi.proto');

export interface CsiServices {
  Identity: ServiceDefinition;
  Controller: ServiceDefinition;
  Node: ServiceDefinition;
  /** Client constructors, for tests and the benchmark. */
  IdentityClient: GrpcClientCtor;
  NodeClient: GrpcClientCtor;
}

// The generated client constructors are untyped; callers wrap them (see test helpers).
export type GrpcClientCtor = new (
  address: string,
  credentials: import('@grpc/grpc-js').ChannelCredentials,
  options?: Record<string, unknown>,
) => import('@grpc/grpc-js').Client;

let loaded: CsiServices | undefined;

/** The gRPC package object of a .proto file beside this module, with the options above; the caller
 * types what it uses of it. */
export function loadProto(file: string): unknown {
  return loadPackageDefinition(
    loadSync(file, { keepCase: true, enums: String, longs: String, defaults: true, oneofs: true }),
  );
}

export function csiServices(): CsiServices {
  if (loaded) return loaded;
  const pkg = loadProto(PROTO_FILE) as {
    csi: {
      v1: {
        Identity: GrpcClientCtor & { service: ServiceDefinition };
        Controller: GrpcClientCtor & { service: ServiceDefinition };
        Node: GrpcClientCtor & { service: ServiceDefinition };
      };
    };
  };
  const { Identity, Controller, Node } = pkg.csi.v1;
  loaded = {
    Identity: Identity.service,
    Controller: Controller.service,
    Node: Node.service,
    IdentityClient: Identity,
    NodeClient: Node,
  };
  return loaded;
}

export type AccessModeName =
  | 'UNKNOWN'
  | 'SINGLE_NODE_WRITER'
  | 'SINGLE_NODE_READER_ONLY'
  | 'MULTI_NODE_READER_ONLY'
  | 'MULTI_NODE_SINGLE_WRITER'
  | 'MULTI_NODE_MULTI_WRITER'
  | 'SINGLE_NODE_SINGLE_WRITER'
  | 'SINGLE_NODE_MULTI_WRITER';

export interface VolumeCapability {
  block?: Record<string, never> | null;
  mount?: { fs_type?: string; mount_flags?: string[]; volume_mount_group?: string } | null;
  access_mode?: { mode?: AccessModeName } | null;
  access_type?: 'block' | 'mount';
}

export interface NodePublishVolumeRequest {
  volume_id: string;
  publish_context?: Record<string, string>;
  staging_target_path?: string;
  target_path: string;
  volume_capability?: VolumeCapability | null;
  readonly?: boolean;
  secrets?: Record<string, string>;
  volume_context?: Record<string, string>;
}

export interface NodeUnpublishVolumeRequest {
  volume_id: string;
  target_path: string;
}

export interface GetPluginInfoResponse {
  name: string;
  vendor_version: string;
  manifest: Record<string, string>;
}

export type NodeCapabilityName = 'VOLUME_MOUNT_GROUP';

export interface NodeGetCapabilitiesResponse {
  capabilities: { rpc: { type: NodeCapabilityName } }[];
}

export interface NodeGetInfoResponse {
  node_id: string;
  max_volumes_per_node: number;
}
