// Sprig's bcrypt, htpasswd and buildCustomCert (v3.3.0 crypto.go) over bcryptjs and node:crypto.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import bcryptjs from 'bcryptjs';
import { FuncError } from './func.ts';
import { GoStruct, type GoValue } from './values.ts';

/** Go's bcrypt.DefaultCost. */
const BCRYPT_COST = 10;

/** Sprig's bcrypt: golang.org/x/crypto/bcrypt GenerateFromPassword at DefaultCost, "$2a$" prefix. */
export function sprigBcrypt(input: string): string {
  if (Buffer.byteLength(input, 'utf8') > 72) {
    return 'failed to encrypt string with bcrypt: bcrypt: password length exceeds 72 bytes';
  }
  // bcryptjs emits "$2b$"; for passwords of at most 72 bytes 2a and 2b hash identically, and Go
  // writes "$2a$".
  const salt = bcryptjs.genSaltSync(BCRYPT_COST).replace(/^\$2b\$/, '$2a$');
  return bcryptjs.hashSync(input, salt);
}

/** Sprig's htpasswd: "user:" followed by the bcrypt hash. */
export function sprigHtpasswd(username: string, password: string): string {
  if (username.includes(':')) return `invalid username: ${username}`;
  return `${username}:${sprigBcrypt(password)}`;
}

/** encoding/base64 StdEncoding.DecodeString (padding required, CR and LF ignored). */
function decodeStdBase64(s: string): Buffer | undefined {
  const t = s.replace(/[\r\n]/g, '');
  if (!/^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(t)) return undefined;
  return Buffer.from(t, 'base64');
}

interface PemBlock {
  type: string;
  der: Buffer;
}

/** encoding/pem Decode: the first well-formed block, or undefined. */
function pemDecode(text: string): PemBlock | undefined {
  const re =
    /(?:^|\n)-----BEGIN ([^\r\n]*?)-----[ \t]*\r?\n((?:[^\r\n:]+:[^\r\n]*\r?\n)*\r?\n?)?([\s\S]*?)-----END \1-----/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const body = m[3]!.replace(/\s+/g, '');
    const der = decodeStdBase64(body);
    if (der) return { type: m[1]!, der };
  }
  return undefined;
}

const PKCS8_TYPES = new Set(['rsa', 'ec', 'ed25519', 'x25519']);
const GO_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1', 'secp224r1']);

/** Sprig's parsePrivateKeyPEM: validates the key, the message says why it failed (no key material). */
function checkPrivateKeyPem(pem: string): void {
  const block = pemDecode(pem);
  if (!block) throw new FuncError('error parsing private key: no PEM data in input');
  const parse = (kind: string, input: Parameters<typeof createPrivateKey>[0]): void => {
    let key: ReturnType<typeof createPrivateKey>;
    try {
      key = createPrivateKey(input);
    } catch {
      throw new FuncError(`error parsing private key: ${kind}`);
    }
    const t = key.asymmetricKeyType ?? '';
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (
      (block.type === 'PRIVATE KEY' && !PKCS8_TYPES.has(t)) ||
      (t === 'ec' && !GO_CURVES.has(curve ?? ''))
    ) {
      throw new FuncError(`error parsing private key: ${kind}`);
    }
  };
  if (block.type === 'PRIVATE KEY') {
    parse('decoding PEM as PKCS#8', { key: block.der, format: 'der', type: 'pkcs8' });
    return;
  }
  if (!block.type.endsWith(' PRIVATE KEY')) {
    throw new FuncError(`error parsing private key: no private key data in PEM block of type ${block.type}`);
  }
  const algo = block.type.slice(0, -12);
  if (algo === 'RSA')
    parse('parsing RSA private key from PEM', { key: block.der, format: 'der', type: 'pkcs1' });
  else if (algo === 'EC')
    parse('parsing EC private key from PEM', { key: block.der, format: 'der', type: 'sec1' });
  else if (algo === 'DSA') parse('parsing DSA private key from PEM', pem);
  else throw new FuncError(`error parsing private key: invalid private key type ${block.type}`);
}

/** Sprig's buildCustomCert: a sprig.certificate {Cert, Key} after validating both PEMs. */
export function sprigBuildCustomCert(b64cert: string, b64key: string): GoValue {
  const cert = decodeStdBase64(b64cert);
  if (!cert) throw new FuncError('unable to decode base64 certificate');
  const key = decodeStdBase64(b64key);
  if (!key) throw new FuncError('unable to decode base64 private key');
  const certText = cert.toString('latin1');
  const block = pemDecode(certText);
  if (!block) throw new FuncError('unable to decode certificate');
  try {
    new X509Certificate(block.der);
  } catch {
    throw new FuncError('error parsing certificate: decodedCert.Bytes: x509: malformed certificate');
  }
  checkPrivateKeyPem(key.toString('latin1'));
  return new GoStruct('sprig.certificate', [
    ['Cert', cert.toString('utf8')],
    ['Key', key.toString('utf8')],
  ]);
}
