// The HMAC key behind status.secretMAC: an immutable Secret in the operator namespace, created once
// and shared by all replicas. Reusing VSO's name keeps MACs valid across a switch between the two.
import { randomBytes } from 'node:crypto';
import {
  HMAC_KEY_DATA_KEY,
  HMAC_KEY_LENGTH,
  HMAC_KEY_SECRET_LABELS,
  HMAC_KEY_SECRET_NAME,
} from '../../consts/labels.ts';
import { CODES, FerryError } from '../../errors.ts';
import type { KubeClient } from '../../k8s/client.ts';
import { isK8sApiError } from '../../k8s/errors.ts';
import { Secrets } from '../../k8s/resources.ts';
import type { Secret } from '../../k8s/types.ts';

function keyOf(secret: Secret): Buffer {
  const v = secret.data?.[HMAC_KEY_DATA_KEY];
  const key = v ? Buffer.from(v, 'base64') : Buffer.alloc(0);
  if (key.length === 0)
    throw new FerryError(
      CODES.INVALID_CONFIG,
      `HMAC key Secret ${HMAC_KEY_SECRET_NAME} has no ${HMAC_KEY_DATA_KEY} key`,
    );
  return key;
}

/** Returns a memoised getter; a failed attempt is retried on the next call. */
export function hmacKeyProvider(client: KubeClient, namespace: string): () => Promise<Buffer> {
  let pending: Promise<Buffer> | undefined;
  const load = async (): Promise<Buffer> => {
    const existing = await client.getIfExists<Secret>(Secrets, HMAC_KEY_SECRET_NAME, namespace);
    if (existing) return keyOf(existing);
    try {
      return keyOf(
        await client.create<Secret>(Secrets, {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: HMAC_KEY_SECRET_NAME, namespace, labels: { ...HMAC_KEY_SECRET_LABELS } },
          immutable: true,
          data: { [HMAC_KEY_DATA_KEY]: randomBytes(HMAC_KEY_LENGTH).toString('base64') },
        }),
      );
    } catch (err) {
      // Another replica created it first.
      if (isK8sApiError(err) && err.isAlreadyExists())
        return keyOf(await client.get<Secret>(Secrets, HMAC_KEY_SECRET_NAME, namespace));
      throw err;
    }
  };
  return () => {
    pending ??= load().catch((err: unknown) => {
      pending = undefined;
      throw err;
    });
    return pending;
  };
}
