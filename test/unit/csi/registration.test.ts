// The driver's built-in kubelet registration, over a real unix socket with a gRPC client loaded from
// the same declaration kubelet's plugin watcher speaks.
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type Client, credentials, loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import pino from 'pino';
import { KubeletRegistration } from '../../../src/csi/registration.ts';

type Unary = (req: object, cb: (err: Error | null, res: Record<string, unknown>) => void) => void;
type RegistrationClient = Client & { GetInfo: Unary; NotifyRegistrationStatus: Unary };

function client(socket: string): RegistrationClient {
  const def = loadSync(join(import.meta.dirname, '../../../src/csi/pluginregistration.proto'), {
    keepCase: true,
  });
  const pkg = loadPackageDefinition(def) as unknown as {
    pluginregistration: {
      Registration: new (
        addr: string,
        creds: ReturnType<typeof credentials.createInsecure>,
      ) => RegistrationClient;
    };
  };
  return new pkg.pluginregistration.Registration(`unix://${socket}`, credentials.createInsecure());
}

const call = (c: RegistrationClient, m: 'GetInfo' | 'NotifyRegistrationStatus', req: object) =>
  new Promise<Record<string, unknown>>((res, rej) => c[m](req, (err, out) => (err ? rej(err) : res(out))));

describe('kubelet registration', () => {
  it('names the driver and its CSI endpoint, hears the verdict, and removes its socket on close', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-reg-'));
    const verdicts: boolean[] = [];
    const reg = new KubeletRegistration({
      driverName: 'csi.vso.hashicorp.com',
      kubeletEndpoint: '/var/lib/kubelet/plugins/csi.vso.hashicorp.com/csi.sock',
      registrationDir: dir,
      log: pino({ level: 'silent' }),
      onStatus: (ok) => verdicts.push(ok),
    });
    const socket = await reg.listen();
    assert.equal(socket, join(dir, 'csi.vso.hashicorp.com-reg.sock'));
    const c = client(socket);
    try {
      assert.deepEqual(await call(c, 'GetInfo', {}), {
        type: 'CSIPlugin',
        name: 'csi.vso.hashicorp.com',
        endpoint: '/var/lib/kubelet/plugins/csi.vso.hashicorp.com/csi.sock',
        supported_versions: ['1.0.0'],
      });
      await call(c, 'NotifyRegistrationStatus', { plugin_registered: true });
      await call(c, 'NotifyRegistrationStatus', { plugin_registered: false, error: 'version mismatch' });
      assert.deepEqual(verdicts, [true, false]);
    } finally {
      c.close();
      await reg.close();
    }
    await assert.rejects(stat(socket), /ENOENT/);
    await rm(dir, { recursive: true, force: true });
  });
});
