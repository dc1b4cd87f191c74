// The operator-level allowlist of Vault addresses (`--vault-address-allowlist`). Any tenant may create
// a VaultConnection, and Ferry connects to its address from inside the cluster: without a list, a
// tenant can probe internal ports and read what answers from the connection's status. Empty allows
// every address, as VSO does.
//
// A pattern is one of:
// - a URL prefix, `https://vault.example.com:8200/proxy`: scheme, host and port equal, and the path
//   starts with the pattern's path at a segment boundary (so `https://vault.example.com` does not
//   admit `https://vault.example.com.evil.test`);
// - a CIDR, `10.0.0.0/8`, `fd00::/8`: the address's host is an IP literal in the range. Host names
//   are never resolved for this: a name a tenant controls could resolve anywhere;
// - a host, `vault.example.com`, or `*.vault.example.com` (one or more labels), optionally with
//   `:port` (without one, any port).
import { BlockList, isIP } from 'node:net';
import { CODES, FerryError } from '../errors.ts';

type Rule =
  | { kind: 'url'; protocol: string; host: string; path: string }
  | { kind: 'cidr'; list: BlockList }
  | { kind: 'host'; suffix: boolean; name: string; port: string | undefined };

export class AddressAllowlist {
  readonly #rules: Rule[];

  /** Throws VAULT_CONFIG naming the first pattern that is none of the three forms. */
  constructor(patterns: readonly string[]) {
    this.#rules = patterns
      .map((p) => p.trim())
      .filter((p) => p !== '')
      .map(parseRule);
  }

  get empty(): boolean {
    return this.#rules.length === 0;
  }

  /** Whether `address` (a VaultConnection address) may be connected to. */
  allows(address: string): boolean {
    if (this.empty) return true;
    let url: URL;
    try {
      url = new URL(address);
    } catch {
      return false;
    }
    return this.#rules.some((r) => matches(r, url));
  }

  /** Throws VAULT_ADDRESS_NOT_ALLOWED unless `address` is allowed. */
  check(address: string): void {
    if (this.allows(address)) return;
    throw new FerryError(
      CODES.VAULT_ADDRESS_NOT_ALLOWED,
      `Vault address ${address} is not in the operator's --vault-address-allowlist; ask the cluster administrator to add it`,
    );
  }
}

let configured = new AddressAllowlist([]);

/** Sets the process's allowlist, once at start-up (from the command line). */
export function setVaultAddressAllowlist(patterns: readonly string[]): void {
  configured = new AddressAllowlist(patterns);
}

/** The process's allowlist. */
export function vaultAddressAllowlist(): AddressAllowlist {
  return configured;
}

/** URL.hostname keeps IPv6 literals in brackets. */
const bare = (hostname: string): string => hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();

function defaultPort(protocol: string): string {
  return protocol === 'https:' ? '443' : '80';
}

function parseRule(pattern: string): Rule {
  const bad = (why: string): FerryError =>
    new FerryError(CODES.VAULT_CONFIG, `--vault-address-allowlist pattern ${pattern}: ${why}`);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(pattern)) {
    let url: URL;
    try {
      url = new URL(pattern);
    } catch {
      throw bad('not a valid URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad('only http and https URLs');
    if (url.search || url.hash || url.username || url.password) throw bad('a URL prefix has no query');
    return {
      kind: 'url',
      protocol: url.protocol,
      host: `${bare(url.hostname)}:${url.port || defaultPort(url.protocol)}`,
      path: url.pathname.replace(/\/+$/, ''),
    };
  }
  if (pattern.includes('/')) {
    const [net = '', bitsText = ''] = pattern.split('/');
    const family = isIP(net);
    const bits = Number(bitsText);
    const max = family === 4 ? 32 : 128;
    if (family === 0 || !/^\d+$/.test(bitsText) || bits > max) throw bad('not a valid CIDR');
    const list = new BlockList();
    list.addSubnet(net, bits, family === 4 ? 'ipv4' : 'ipv6');
    return { kind: 'cidr', list };
  }
  const m = /^(\*\.)?([a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/i.exec(pattern);
  if (!m?.[2]) throw bad('not a host, CIDR or URL prefix');
  return { kind: 'host', suffix: m[1] !== undefined, name: bare(m[2]), port: m[4] };
}

function matches(rule: Rule, url: URL): boolean {
  const host = bare(url.hostname);
  switch (rule.kind) {
    case 'url': {
      if (url.protocol !== rule.protocol) return false;
      if (`${host}:${url.port || defaultPort(url.protocol)}` !== rule.host) return false;
      const path = url.pathname.replace(/\/+$/, '');
      return path === rule.path || path.startsWith(`${rule.path}/`);
    }
    case 'cidr': {
      const family = isIP(host);
      return family !== 0 && rule.list.check(host, family === 4 ? 'ipv4' : 'ipv6');
    }
    case 'host': {
      if (rule.port !== undefined && (url.port || defaultPort(url.protocol)) !== rule.port) return false;
      return rule.suffix ? host.endsWith(`.${rule.name}`) : host === rule.name;
    }
  }
}
