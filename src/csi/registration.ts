// Kubelet plugin registration, built in: what the node-driver-registrar sidecar does, served by the
// driver itself. Kubelet's plugin watcher finds `<driver>-reg.sock` in its plugins_registry
// directory, asks GetInfo for the CSI endpoint, and reports the outcome through
// NotifyRegistrationStatus. Removing the socket unregisters the driver.
import { join } from 'node:path';
import { Server, type ServiceDefinition } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { loadProto } from './proto.ts';
import { bindUnix, closeUnix, unary } from './server.ts';

const PROTO_FILE = join(import.meta.dirname, 'pluginregistration.proto');

export interface RegistrationOptions {
  driverName: string;
  /** The CSI socket as kubelet sees it on the host (node-driver-registrar's --kubelet-registration-path). */
  kubeletEndpoint: string;
  /** Kubelet's plugins_registry directory as mounted in the driver's container. */
  registrationDir: string;
  log: Logger;
  /** Called with kubelet's verdict; a refusal is logged and leaves the driver unregistered. */
  onStatus?: (registered: boolean) => void;
}

interface PluginInfo {
  type: 'CSIPlugin';
  name: string;
  endpoint: string;
  supported_versions: string[];
}

function registrationService(): ServiceDefinition {
  const pkg = loadProto(PROTO_FILE) as {
    pluginregistration: { Registration: { service: ServiceDefinition } };
  };
  return pkg.pluginregistration.Registration.service;
}

export class KubeletRegistration {
  readonly #server = new Server();
  readonly #path: string;

  constructor(o: RegistrationOptions) {
    this.#path = join(o.registrationDir, `${o.driverName}-reg.sock`);
    this.#server.addService(registrationService(), {
      GetInfo: unary<unknown, PluginInfo>(o.log, 'GetInfo', async () => ({
        type: 'CSIPlugin',
        name: o.driverName,
        endpoint: o.kubeletEndpoint,
        supported_versions: ['1.0.0'],
      })),
      NotifyRegistrationStatus: unary<{ plugin_registered: boolean; error: string }, Record<string, never>>(
        o.log,
        'NotifyRegistrationStatus',
        async (status) => {
          if (status.plugin_registered) o.log.info({ driver: o.driverName }, 'registered with kubelet');
          else o.log.error({ driver: o.driverName, err: status.error }, 'kubelet refused the registration');
          o.onStatus?.(status.plugin_registered);
          return {};
        },
      ),
    });
  }

  async listen(): Promise<string> {
    await bindUnix(this.#server, this.#path);
    return this.#path;
  }

  async close(): Promise<void> {
    await closeUnix(this.#server, this.#path, 2_000);
  }
}
