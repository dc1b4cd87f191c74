import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from 'node:crypto';
import { goJson } from '../../delivery/gojson.ts';

/** A KeyObject per key: createHmac imports a Buffer key on every call, ~6× the cost of the HMAC of a
 * small Secret (a share of the operator's CPU in an initial sync). */
const keyObjects = new WeakMap<Buffer, KeyObject>();
function keyObject(key: Buffer): KeyObject {
  let k = keyObjects.get(key);
  if (!k) {
    k = createSecretKey(key);
    keyObjects.set(key, k);
  }
  return k;
}

/** VSO's secretMAC: base64 HMAC-SHA256 over Go's JSON of the Secret's map[string][]byte data, where
 * each value is its base64 string — which is exactly the Kubernetes wire form of `.data`. */
export function secretMAC(key: Buffer, data: Record<string, string>): string {
  return hmacBase64(key, goJson(data));
}

/** Base64 HMAC-SHA256 of `text` under the operator's HMAC key. */
export function hmacBase64(key: Buffer, text: string): string {
  return createHmac('sha256', keyObject(key)).update(text).digest('base64');
}

export function macEqual(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
