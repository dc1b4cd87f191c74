// A port of the parts of Go's net/url (go1.24 semantics: urlstrictcolons=0) that Sprig's urlParse
// and urlJoin use: Parse, URL.String, Hostname, Userinfo. Works on UTF-8 bytes held in a latin1
// string so byte-wise escaping matches Go exactly.
import { isIPv6 } from 'node:net';

type Mode = 'path' | 'pathSegment' | 'host' | 'zone' | 'userPassword' | 'query' | 'fragment';

/** Parse failure: `message` is Go's text (it may quote part of the URL); `safe` never does. */
export class UrlError extends Error {
  readonly safe: string;
  constructor(message: string, safe: string = message) {
    super(message);
    this.safe = safe;
  }
}

const toBytes = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');
const fromBytes = (b: string): string => Buffer.from(b, 'latin1').toString('utf8');

const isAlnum = (c: number): boolean =>
  (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39);
const isHex = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
const unhex = (c: number): number => 9 * (c >> 6) + (c & 15);

function shouldEscape(c: number, mode: Mode): boolean {
  if (isAlnum(c)) return false;
  const ch = String.fromCharCode(c);
  if ((mode === 'host' || mode === 'zone') && `!$&'()*+,;=:[]<>"`.includes(ch)) return false;
  if ('-_.~'.includes(ch)) return false;
  if ('$&+,/:;=?@'.includes(ch)) {
    switch (mode) {
      case 'path':
        return ch === '?';
      case 'pathSegment':
        return '/;,?'.includes(ch);
      case 'userPassword':
        return '@/?:'.includes(ch);
      case 'query':
        return true;
      case 'fragment':
        return false;
    }
  }
  if (mode === 'fragment' && '!()*'.includes(ch)) return false;
  return true;
}

function urlUnescape(s: string, mode: Mode): string {
  let n = 0;
  let hasPlus = false;
  for (let i = 0; i < s.length; ) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      n++;
      if (i + 2 >= s.length || !isHex(s.charCodeAt(i + 1)) || !isHex(s.charCodeAt(i + 2))) {
        throw new UrlError(`invalid URL escape ${goQuote(s.slice(i, i + 3))}`, 'invalid URL escape');
      }
      if (mode === 'host' && unhex(s.charCodeAt(i + 1)) < 8 && s.slice(i, i + 3) !== '%25') {
        throw new UrlError(`invalid URL escape ${goQuote(s.slice(i, i + 3))}`, 'invalid URL escape');
      }
      if (mode === 'zone') {
        const v = (unhex(s.charCodeAt(i + 1)) << 4) | unhex(s.charCodeAt(i + 2));
        if (s.slice(i, i + 3) !== '%25' && v !== 0x20 && shouldEscape(v, 'host')) {
          throw new UrlError(`invalid URL escape ${goQuote(s.slice(i, i + 3))}`, 'invalid URL escape');
        }
      }
      i += 3;
    } else if (c === 0x2b) {
      hasPlus = mode === 'query';
      i++;
    } else {
      if ((mode === 'host' || mode === 'zone') && c < 0x80 && shouldEscape(c, mode)) {
        throw new UrlError(
          `invalid character ${goQuote(s[i]!)} in host name`,
          'invalid character in host name',
        );
      }
      i++;
    }
  }
  if (n === 0 && !hasPlus) return s;
  let t = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      t += String.fromCharCode((unhex(s.charCodeAt(i + 1)) << 4) | unhex(s.charCodeAt(i + 2)));
      i += 2;
    } else if (c === 0x2b) t += mode === 'query' ? ' ' : '+';
    else t += s[i];
  }
  return t;
}

/** url.QueryEscape (text/template's urlquery). */
export const queryEscape = (s: string): string => urlEscape(toBytes(s), 'query');

function urlEscape(s: string, mode: Mode): string {
  let t = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x20 && mode === 'query') t += '+';
    else if (shouldEscape(c, mode)) t += `%${c.toString(16).toUpperCase().padStart(2, '0')}`;
    else t += s[i];
  }
  return t;
}

// strconv.Quote for the short ASCII fragments Go puts in escape errors.
function goQuote(s: string): string {
  return JSON.stringify(s).replace(/\\u00([0-9a-f]{2})/g, '\\x$1');
}

interface Userinfo {
  username: string;
  password: string;
  passwordSet: boolean;
}

/** Go's url.URL over byte strings (each char one byte). */
interface GoUrl {
  scheme: string;
  opaque: string;
  user: Userinfo | undefined;
  host: string;
  path: string;
  rawPath: string;
  rawQuery: string;
  fragment: string;
  rawFragment: string;
  forceQuery: boolean;
  omitHost: boolean;
}

const emptyUrl = (): GoUrl => ({
  scheme: '',
  opaque: '',
  user: undefined,
  host: '',
  path: '',
  rawPath: '',
  rawQuery: '',
  fragment: '',
  rawFragment: '',
  forceQuery: false,
  omitHost: false,
});

function userinfoString(u: Userinfo): string {
  let s = urlEscape(u.username, 'userPassword');
  if (u.passwordSet) s += `:${urlEscape(u.password, 'userPassword')}`;
  return s;
}

function getScheme(raw: string): [string, string] {
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if ((c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a)) continue;
    if ((c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === 0x2e) {
      if (i === 0) return ['', raw];
      continue;
    }
    if (c === 0x3a) {
      if (i === 0) throw new UrlError('missing protocol scheme');
      return [raw.slice(0, i), raw.slice(i + 1)];
    }
    return ['', raw];
  }
  return ['', raw];
}

function validOptionalPort(port: string): boolean {
  if (port === '') return true;
  if (port[0] !== ':') return false;
  return /^[0-9]*$/.test(port.slice(1));
}

function validUserinfo(s: string): boolean {
  // Go ranges over runes; every non-ASCII rune is rejected, so checking bytes is equivalent.
  return /^[A-Za-z0-9\-._:~!$&'()*+,;=%@]*$/.test(s);
}

function parseHost(host: string): string {
  const open = host.lastIndexOf('[');
  if (open > 0) throw new UrlError('invalid IP-literal');
  if (open === 0) {
    const close = host.lastIndexOf(']');
    if (close < 0) throw new UrlError("missing ']' in host");
    const colonPort = host.slice(close + 1);
    if (!validOptionalPort(colonPort))
      throw new UrlError(`invalid port ${goQuote(colonPort)} after host`, 'invalid port after host');
    const port = urlUnescape(colonPort, 'host');
    const hostname = host.slice(1, close);
    const zone = hostname.indexOf('%25');
    const unescaped =
      zone >= 0
        ? urlUnescape(hostname.slice(0, zone), 'host') + urlUnescape(hostname.slice(zone), 'zone')
        : urlUnescape(hostname, 'host');
    // netip.ParseAddr; an IPv4 literal in brackets is rejected, IPv4-mapped IPv6 is fine.
    const pct = unescaped.indexOf('%');
    const addr = pct >= 0 ? unescaped.slice(0, pct) : unescaped;
    if (!isIPv6(addr) || (pct >= 0 && pct === unescaped.length - 1)) throw new UrlError('invalid host');
    return `[${unescaped}]${port}`;
  }
  const i = host.lastIndexOf(':');
  if (i !== -1) {
    const colonPort = host.slice(i);
    if (!validOptionalPort(colonPort))
      throw new UrlError(`invalid port ${goQuote(colonPort)} after host`, 'invalid port after host');
  }
  return urlUnescape(host, 'host');
}

function parseAuthority(authority: string): [Userinfo | undefined, string] {
  const i = authority.lastIndexOf('@');
  const host = parseHost(i < 0 ? authority : authority.slice(i + 1));
  if (i < 0) return [undefined, host];
  const userinfo = authority.slice(0, i);
  if (!validUserinfo(userinfo)) throw new UrlError('net/url: invalid userinfo');
  const colon = userinfo.indexOf(':');
  if (colon < 0)
    return [{ username: urlUnescape(userinfo, 'userPassword'), password: '', passwordSet: false }, host];
  return [
    {
      username: urlUnescape(userinfo.slice(0, colon), 'userPassword'),
      password: urlUnescape(userinfo.slice(colon + 1), 'userPassword'),
      passwordSet: true,
    },
    host,
  ];
}

function setPath(u: GoUrl, p: string): void {
  u.path = urlUnescape(p, 'path');
  u.rawPath = urlEscape(u.path, 'path') === p ? '' : p;
}

function parseNoFragment(raw: string): GoUrl {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: Go rejects ASCII control bytes
  if (/[\x00-\x1f\x7f]/.test(raw)) throw new UrlError('net/url: invalid control character in URL');
  const u = emptyUrl();
  if (raw === '*') {
    u.path = '*';
    return u;
  }
  let [scheme, rest] = getScheme(raw);
  u.scheme = scheme.toLowerCase();
  if (rest.endsWith('?') && rest.indexOf('?') === rest.length - 1) {
    u.forceQuery = true;
    rest = rest.slice(0, -1);
  } else {
    const q = rest.indexOf('?');
    if (q >= 0) {
      u.rawQuery = rest.slice(q + 1);
      rest = rest.slice(0, q);
    }
  }
  if (!rest.startsWith('/')) {
    if (u.scheme !== '') {
      u.opaque = rest;
      return u;
    }
    const slash = rest.indexOf('/');
    if ((slash >= 0 ? rest.slice(0, slash) : rest).includes(':'))
      throw new UrlError('first path segment in URL cannot contain colon');
  }
  if ((u.scheme !== '' || !rest.startsWith('///')) && rest.startsWith('//')) {
    let authority = rest.slice(2);
    rest = '';
    const slash = authority.indexOf('/');
    if (slash >= 0) {
      rest = authority.slice(slash);
      authority = authority.slice(0, slash);
    }
    [u.user, u.host] = parseAuthority(authority);
  } else if (u.scheme !== '' && rest.startsWith('/')) {
    u.omitHost = true;
  }
  setPath(u, rest);
  return u;
}

/** url.Parse over a byte string. */
function parseBytes(raw: string): GoUrl {
  const hash = raw.indexOf('#');
  const u = parseNoFragment(hash >= 0 ? raw.slice(0, hash) : raw);
  const frag = hash >= 0 ? raw.slice(hash + 1) : '';
  if (frag === '') return u;
  u.fragment = urlUnescape(frag, 'fragment');
  u.rawFragment = urlEscape(u.fragment, 'fragment') === frag ? '' : frag;
  return u;
}

function validEncoded(s: string, mode: Mode): boolean {
  for (let i = 0; i < s.length; i++) {
    if (`!$&'()*+,;=:@[]%`.includes(s[i]!)) continue;
    if (shouldEscape(s.charCodeAt(i), mode)) return false;
  }
  return true;
}

function escapedPath(u: GoUrl): string {
  if (u.rawPath !== '' && validEncoded(u.rawPath, 'path')) {
    try {
      if (urlUnescape(u.rawPath, 'path') === u.path) return u.rawPath;
    } catch {
      // fall through to the default encoding
    }
  }
  if (u.path === '*') return '*';
  return urlEscape(u.path, 'path');
}

function escapedFragment(u: GoUrl): string {
  if (u.rawFragment !== '' && validEncoded(u.rawFragment, 'fragment')) {
    try {
      if (urlUnescape(u.rawFragment, 'fragment') === u.fragment) return u.rawFragment;
    } catch {
      // fall through to the default encoding
    }
  }
  return urlEscape(u.fragment, 'fragment');
}

/** URL.String over byte strings. */
function urlString(u: GoUrl): string {
  let buf = '';
  if (u.scheme !== '') buf += `${u.scheme}:`;
  if (u.opaque !== '') buf += u.opaque;
  else {
    if (u.scheme !== '' || u.host !== '' || u.user !== undefined) {
      if (!(u.omitHost && u.host === '' && u.user === undefined)) {
        if (u.host !== '' || u.path !== '' || u.user !== undefined) buf += '//';
        if (u.user !== undefined) buf += `${userinfoString(u.user)}@`;
        if (u.host !== '') buf += urlEscape(u.host, 'host');
      }
    }
    const path = escapedPath(u);
    if (path !== '' && path[0] !== '/' && u.host !== '') buf += '/';
    if (buf === '') {
      const slash = path.indexOf('/');
      if ((slash >= 0 ? path.slice(0, slash) : path).includes(':')) buf += './';
    }
    buf += path;
  }
  if (u.forceQuery || u.rawQuery !== '') buf += `?${u.rawQuery}`;
  if (u.fragment !== '') buf += `#${escapedFragment(u)}`;
  return buf;
}

function hostname(host: string): string {
  let h = host;
  const colon = h.lastIndexOf(':');
  if (colon !== -1 && validOptionalPort(h.slice(colon))) h = h.slice(0, colon);
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  return h;
}

/** Sprig's urlParse result, as UTF-8 strings. Throws UrlError. */
export function sprigUrlParse(raw: string): Record<string, string> {
  const u = parseBytes(toBytes(raw));
  return {
    scheme: fromBytes(u.scheme),
    host: fromBytes(u.host),
    hostname: fromBytes(hostname(u.host)),
    path: fromBytes(u.path),
    query: fromBytes(u.rawQuery),
    opaque: fromBytes(u.opaque),
    fragment: fromBytes(u.fragment),
    userinfo: u.user ? fromBytes(userinfoString(u.user)) : '',
  };
}

/** Sprig's urlJoin of already-stringified dict entries. Throws UrlError (bad userinfo). */
export function sprigUrlJoin(
  d: Record<'scheme' | 'host' | 'path' | 'query' | 'opaque' | 'fragment' | 'userinfo', string>,
): string {
  const u = emptyUrl();
  u.scheme = toBytes(d.scheme);
  u.host = toBytes(d.host);
  u.path = toBytes(d.path);
  u.rawQuery = toBytes(d.query);
  u.opaque = toBytes(d.opaque);
  u.fragment = toBytes(d.fragment);
  if (d.userinfo !== '') u.user = parseBytes(`proto://${toBytes(d.userinfo)}@host`).user;
  return fromBytes(urlString(u));
}
