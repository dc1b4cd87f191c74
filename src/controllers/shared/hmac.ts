import { createHmac, timingSafeEqual } from 'node:crypto';
import { goJson } from '../../delivery/gojson.ts';

/** VSO's secretMAC: base64 HMAC-SHA256 over Go's JSON of the Secret's map[string][]byte data, where
 * each value is its base64 string — which is exactly the Kubernetes wire form of `.data`. */
export function secretMAC(key: Buffer, data: Record<string, string>): string {
  return createHmac('sha256', key).update(goJson(data)).digest('base64');
}

export function macEqual(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
