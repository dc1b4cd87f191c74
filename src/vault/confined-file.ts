// Files a tenant names inside the operator (or CSI driver) pod: VaultConnection.caCertPath (a PEM) and
// VaultAuth.appRole.secretIDPath (an AppRole secret-id). Any tenant may create these objects, and
// point them at a Vault they run, so each path is confined to one directory the installation chose
// (`--ca-cert-dir`, `--approle-secret-id-dir`), must resolve to a regular file there, and is read up
// to a size cap: neither /dev/zero, a FIFO nor the pod's ServiceAccount token can be named.
import { realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { CODES, FerryError } from '../errors.ts';
import { NOT_REGULAR, readRegularFile, TOO_LARGE } from '../safe-read.ts';

/** Where a chart mounts CA bundles for caCertPath; `--ca-cert-dir` / FERRY_CA_CERT_DIR change it. */
export const DEFAULT_CA_CERT_DIR = '/etc/ferry/ca';
/** A CA bundle is a few KiB; the Mozilla bundle is ~220 KiB. */
export const MAX_CA_CERT_BYTES = 1024 * 1024;

/** Where a chart mounts AppRole secret-id files for secretIDPath; `--approle-secret-id-dir` changes it. */
export const DEFAULT_SECRET_ID_DIR = '/etc/ferry/approle';
/** A secret-id is a UUID; anything near this size is not one. */
export const MAX_SECRET_ID_BYTES = 64 * 1024;

let configuredDir = DEFAULT_CA_CERT_DIR;
let configuredSecretIdDir = DEFAULT_SECRET_ID_DIR;

const invalid = (message: string): FerryError => new FerryError(CODES.INVALID_CONFIG, message);

/** A directory from the command line, which must be absolute. */
function absoluteDir(what: string, dir: string): string {
  if (!isAbsolute(dir)) throw invalid(`${what} ${dir} is not absolute`);
  return resolve(dir);
}

/** Sets the directory caCertPath must lie in, once at start-up (from the command line). */
export function setCaCertDir(dir: string): void {
  configuredDir = absoluteDir('CA certificate directory', dir);
}

/** Sets the directory secretIDPath must lie in, once at start-up (from the command line). */
export function setSecretIdDir(dir: string): void {
  configuredSecretIdDir = absoluteDir('AppRole secret-id directory', dir);
}

const inside = (root: string, path: string): boolean => {
  const rel = relative(root, path);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
};

/** Reads the PEM at `path`, which must be a regular file under `dir` of at most `maxBytes`. */
export function readCaCertFile(
  path: string,
  dir = configuredDir,
  maxBytes = MAX_CA_CERT_BYTES,
): Promise<string> {
  return readConfinedFile(`caCertPath ${path}`, path, dir, maxBytes);
}

/** Reads the AppRole secret-id at `path` under `dir`, without surrounding whitespace (as VSO). */
export async function readSecretIdFile(
  path: string,
  dir = configuredSecretIdDir,
  maxBytes = MAX_SECRET_ID_BYTES,
): Promise<string> {
  const id = (await readConfinedFile(`secretIDPath ${path}`, path, dir, maxBytes)).trim();
  if (id === '') throw invalid(`secretIDPath ${path} holds no secret-id`);
  return id;
}

/** The configured directories' own real paths, resolved once: they are fixed at start-up, whereas a
 * file in them (a ..data symlink of a mounted ConfigMap or Secret) is resolved on every read. */
const realDirs = new Map<string, string>();

async function realDir(dir: string): Promise<string> {
  let real = realDirs.get(dir);
  if (real === undefined) {
    real = await realpath(dir);
    realDirs.set(dir, real);
  }
  return real;
}

async function readConfinedFile(where: string, path: string, dir: string, maxBytes: number): Promise<string> {
  // Lexically first, so that nothing outside the directory is ever touched (not even stat'ed).
  if (!isAbsolute(path) || !inside(dir, resolve(path))) throw invalid(`${where} is not under ${dir}`);
  let real: string;
  try {
    // Mounted ConfigMaps and Secrets are symlinks into ..data: follow them, but not out of the directory.
    real = await realpath(path);
    if (!inside(await realDir(dir), real)) throw invalid(`${where} resolves outside ${dir}`);
  } catch (err) {
    if (err instanceof FerryError) throw err;
    throw invalid(`${where} cannot be read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const buf = await readRegularFile(real, maxBytes).catch((err: NodeJS.ErrnoException) => {
    if (err.code === NOT_REGULAR) throw invalid(`${where} is not a regular file`);
    if (err.code === TOO_LARGE) throw invalid(`${where} is larger than ${maxBytes} bytes`);
    throw invalid(`${where} cannot be read: ${err.code ?? 'error'}`);
  });
  return buf.toString('utf8');
}
