// Cloud endpoint calls of the auth methods (AWS STS/IMDS, GCP metadata) against a hostile server: the
// body cap and the whole-body deadline of the Vault client hold there too.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CODES, isFerryError } from '../../../src/errors.ts';
import { CLOUD_MAX_RESPONSE_BYTES, cloudCall, cloudJson } from '../../../src/vault/auth/http.ts';
import { dripBody, floodBody, hostileServer } from './helpers.ts';

describe('cloudCall against a hostile endpoint', () => {
  it('cuts off an answer beyond the size limit', async () => {
    // Far beyond the limit and the loopback socket buffers, so that without a cap the client reads it all.
    const total = 64 * CLOUD_MAX_RESPONSE_BYTES;
    const server = await hostileServer(floodBody(total));
    try {
      await assert.rejects(cloudJson('GCP metadata x', `${server.address}/token`), (e: unknown) => {
        assert.ok(isFerryError(e));
        assert.equal(e.code, CODES.VAULT_AUTH);
        assert.equal(
          e.message,
          `GCP metadata x: the answer from ${server.address}/token exceeds the limit of ${CLOUD_MAX_RESPONSE_BYTES} bytes`,
        );
        return true;
      });
      assert.ok(server.sent.bytes < total, `the server wrote all ${server.sent.bytes} bytes`);
    } finally {
      await server.close();
    }
  });

  it('times out an answer that trickles in slower than the timeout allows', async () => {
    // One byte every 20 ms for 3 s never trips an idle timer; the whole-body deadline stops it.
    const server = await hostileServer(dripBody(150, 20));
    try {
      await assert.rejects(
        cloudCall('AssumeRoleWithWebIdentity', `${server.address}/`, { timeoutMs: 300 }),
        (e: unknown) => {
          assert.ok(isFerryError(e));
          assert.equal(e.code, CODES.VAULT_AUTH);
          assert.match(e.message, /cannot reach .* \(FERRY_BODY_TIMEOUT\)$/);
          return true;
        },
      );
    } finally {
      await server.close();
    }
  });
});
