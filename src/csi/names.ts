// Names of the driver and of what it writes (the driver's default name is in consts/labels.ts).
export const API_GROUP_VERSION = 'secrets.hashicorp.com/v1beta1';
export const DRIVER_VERSION = '0.1.0';

// Names inside a volume. Only names of these shapes are ever created, read or kept by the driver;
// anything else found in a volume or the state directory was not written by it and is not trusted.
const FILE_NAME = /^[A-Za-z0-9_.-]{1,253}$/;
const PAYLOAD_NAME = /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.[0-9a-f]{10}$/;

/** A user-visible file name: letters, digits, `-`, `_` and `.`, not starting with `..`. */
export function isValidFileName(name: string): boolean {
  return FILE_NAME.test(name) && !name.startsWith('..') && name !== '.';
}

/** A payload directory name as payloadName makes them. */
export function isPayloadName(name: string): boolean {
  return PAYLOAD_NAME.test(name);
}

/** `..<UTC timestamp>.<10 hex digits>`: kubelet's AtomicWriter naming. */
export function payloadName(now: Date, random10hex: string): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const ts = `${now.getUTCFullYear()}_${p(now.getUTCMonth() + 1)}_${p(now.getUTCDate())}_${p(now.getUTCHours())}_${p(now.getUTCMinutes())}_${p(now.getUTCSeconds())}`;
  return `..${ts}.${random10hex}`;
}
