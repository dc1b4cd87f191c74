// VaultPKISecret pure parts: the renewal window (properties), the kubernetes.io/tls layout, the issue
// request body and path, response parsing, and the destination data built from a response.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { expiryOffsetMs, pkiSecretData } from '../../../src/delivery/pki-data.ts';
import {
  issuePath,
  issueRequestBody,
  MIN_HORIZON_MS,
  PKI_JITTER,
  parseIssueResponse,
  type RenewalInput,
  renewalWindow,
  revokePath,
  tlsSecretData,
} from '../../../src/vault/pki.ts';

const NOW = 1_700_000_000_000;
const unb64 = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString('utf8');

/** A draw in [0, 1). */
const draw = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
/** Certificates from 1 s to 10 years, offsets from 0 to 30 days, now anywhere around the lifetime. */
const scenario = fc.record({
  lifetimeS: fc.integer({ min: 1, max: 10 * 365 * 86_400 }),
  offsetMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 30 * 86_400_000 })),
  elapsed: fc.double({ min: -0.1, max: 1.5, noNaN: true }),
  r: draw,
});

function input(s: { lifetimeS: number; offsetMs: number; elapsed: number }): RenewalInput {
  const issued = Math.floor(NOW / 1000);
  return {
    nowMs: NOW + s.elapsed * s.lifetimeS * 1000,
    expiration: issued + s.lifetimeS,
    expiryOffsetMs: s.offsetMs,
    lastRotation: issued,
  };
}

describe('renewalWindow', () => {
  it('never returns a horizon below 1 s, and is in the window exactly when < 1 s remains', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const i = input(s);
        const w = renewalWindow(i, () => s.r);
        assert.ok(w.horizonMs >= MIN_HORIZON_MS);
        assert.equal(w.inWindow, w.rotationAtMs - i.nowMs < MIN_HORIZON_MS);
      }),
    );
  });

  it('bounds the jitter: 5 % of 1 s in the window, 5 % of min(remaining, offset) above, 5 % below', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const i = input(s);
        const w = renewalWindow(i, () => s.r);
        const remaining = w.rotationAtMs - i.nowMs;
        const eps = 1e-6 * Math.max(1, Math.abs(remaining));
        if (w.inWindow) {
          assert.ok(w.horizonMs < MIN_HORIZON_MS * (1 + PKI_JITTER) + eps);
        } else if (i.expiration * 1000 - w.rotationAtMs > 0) {
          const offset = i.expiration * 1000 - w.rotationAtMs;
          assert.ok(w.horizonMs >= remaining - eps, 'lands at or after the window start');
          assert.ok(w.horizonMs < remaining + PKI_JITTER * Math.min(remaining, offset) + eps);
        } else {
          assert.ok(w.horizonMs <= remaining + eps, 'without a window, lands before expiry');
          assert.ok(w.horizonMs >= Math.max(MIN_HORIZON_MS, remaining * (1 - PKI_JITTER)) - eps);
        }
      }),
    );
  });

  it('never schedules the next look after expiry while the certificate is valid', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const i = input(s);
        const w = renewalWindow(i, () => s.r);
        if (!w.inWindow) assert.ok(i.nowMs + w.horizonMs <= i.expiration * 1000 + 1e-3);
      }),
    );
  });

  it('with a window, the next look is inside it and renews', () => {
    fc.assert(
      fc.property(scenario, draw, (s, r2) => {
        fc.pre(s.offsetMs > 0);
        const i = input(s);
        const w = renewalWindow(i, () => s.r);
        if (w.inWindow) return;
        const next = renewalWindow({ ...i, nowMs: i.nowMs + w.horizonMs }, () => r2);
        assert.ok(next.inWindow, 'inside the window it renews');
      }),
    );
  });

  it('without a window, the looks converge on expiry within 8 steps (each leaves ≤ 5 % of the time)', () => {
    fc.assert(
      fc.property(scenario, fc.array(draw, { minLength: 8, maxLength: 8 }), (s, draws) => {
        let i = input({ ...s, offsetMs: 0, elapsed: Math.max(0, Math.min(s.elapsed, 1)) });
        for (const r of draws) {
          const w = renewalWindow(i, () => r);
          if (w.inWindow) return;
          i = { ...i, nowMs: i.nowMs + w.horizonMs };
          assert.ok(i.nowMs <= i.expiration * 1000);
        }
        assert.ok(renewalWindow(i, () => 0).inWindow, 'in the window after 8 looks');
      }),
    );
  });

  it('clamps an offset that covers the whole lifetime, so a fresh certificate is not renewed at once', () => {
    // ttl 10 s (e.g. truncated by the role's max_ttl), expiryOffset 1 h: VSO re-issues every second.
    const issued = Math.floor(NOW / 1000);
    const w = renewalWindow(
      { nowMs: NOW, expiration: issued + 10, expiryOffsetMs: 3_600_000, lastRotation: issued },
      () => 0,
    );
    assert.equal(w.offsetClamped, true);
    assert.equal(w.inWindow, false);
    assert.ok(Math.abs(w.rotationAtMs - (NOW + (10_000 * 2) / 3)) < 1);
    // Without an issue time (VSO-written status) the window is VSO's.
    const v = renewalWindow({ nowMs: NOW, expiration: issued + 10, expiryOffsetMs: 3_600_000 }, () => 0);
    assert.equal(v.offsetClamped, false);
    assert.equal(v.inWindow, true);
  });

  it('matches §8 on worked examples', () => {
    const exp = Math.floor(NOW / 1000) + 3600;
    // 1 h certificate, 5 min offset, r = 0.5 → 55 min + 0.5 × 5 % × 5 min.
    assert.equal(
      renewalWindow({ nowMs: NOW, expiration: exp, expiryOffsetMs: 300_000 }, () => 0.5).horizonMs,
      3_300_000 + 0.5 * 0.05 * 300_000,
    );
    // No offset, r = 0.5 → 1 h − 2.5 %.
    assert.equal(
      renewalWindow({ nowMs: NOW, expiration: exp, expiryOffsetMs: 0 }, () => 0.5).horizonMs,
      3_600_000 * (1 - 0.025),
    );
    // Past the rotation time → 1 s + jitter, in the window.
    const past = renewalWindow({ nowMs: NOW, expiration: exp, expiryOffsetMs: 3_600_000 }, () => 0.5);
    assert.deepEqual([past.inWindow, past.horizonMs], [true, 1_025]);
    // Unknown expiration (0) is in the window.
    assert.equal(renewalWindow({ nowMs: NOW, expiration: 0, expiryOffsetMs: 0 }, () => 0).inWindow, true);
  });
});

describe('expiryOffsetMs', () => {
  it('parses durations (days too) and tolerates garbage as 0, as VSO', () => {
    assert.equal(expiryOffsetMs('5s'), 5_000);
    assert.equal(expiryOffsetMs('1h'), 3_600_000);
    assert.equal(expiryOffsetMs('2d'), 172_800_000);
    assert.equal(expiryOffsetMs(undefined), 0);
    assert.equal(expiryOffsetMs('soon'), 0);
  });
});

const CERT = '-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----';
const INT = '-----BEGIN CERTIFICATE-----\nINT\n-----END CERTIFICATE-----';
const INT2 = '-----BEGIN CERTIFICATE-----\nINT2\n-----END CERTIFICATE-----';
const ROOT = '-----BEGIN CERTIFICATE-----\nROOT\n-----END CERTIFICATE-----';
const KEY = '-----BEGIN EC PRIVATE KEY-----\nKEY\n-----END EC PRIVATE KEY-----';

describe('tlsSecretData', () => {
  it('without ca_chain: tls.crt = certificate + issuing_ca, ca.crt = issuing_ca', () => {
    assert.deepEqual(tlsSecretData({ certificate: CERT, issuingCA: ROOT, caChain: [], privateKey: KEY }), {
      'tls.crt': `${CERT}\n${ROOT}`,
      'tls.key': KEY,
      'ca.crt': ROOT,
    });
  });

  it('with ca_chain: tls.crt = certificate + newline-joined chain, and ca.crt is still set (VSO #178)', () => {
    assert.deepEqual(
      tlsSecretData({ certificate: CERT, issuingCA: INT, caChain: [INT, INT2], privateKey: KEY }),
      { 'tls.crt': `${CERT}\n${INT}\n${INT2}`, 'tls.key': KEY, 'ca.crt': INT },
    );
  });

  it('with neither: tls.crt is the certificate alone and there is no ca.crt', () => {
    assert.deepEqual(tlsSecretData({ certificate: CERT, issuingCA: '', caChain: [], privateKey: KEY }), {
      'tls.crt': CERT,
      'tls.key': KEY,
    });
  });
});

describe('issue request', () => {
  it('paths: issue/<role>, issuer/<ref>/issue/<role> (VSO builds an unsupported path), revoke', () => {
    assert.equal(issuePath({ mount: '/pki/', role: 'web' }), 'pki/issue/web');
    assert.equal(issuePath({ mount: 'pki', role: 'web', issuerRef: 'int' }), 'pki/issuer/int/issue/web');
    assert.equal(
      issuePath({ mount: 'a/pki', role: 'web', issuerRef: 'default' }),
      'a/pki/issuer/default/issue/web',
    );
    assert.equal(revokePath('pki/'), 'pki/revoke');
    assert.throws(() => issuePath({ mount: '', role: 'web' }), /mount/);
    assert.throws(() => issuePath({ mount: 'pki', role: 'a/b' }), /role/);
  });

  it('sends every VSO field, alt_names comma-joined, and always remove_roots_from_chain', () => {
    assert.deepEqual(
      issueRequestBody({
        mount: 'pki',
        role: 'web',
        commonName: 'web.example.test',
        altNames: ['a.example.test', 'b.example.test'],
        ipSans: ['10.0.0.1', '::1'],
        uriSans: ['spiffe://x/y,z'],
        otherSans: ['1.3.6.1.4.1.311.20.2.3;UTF8:user@example.test'],
        userIDs: ['u1', 'u2'],
        ttl: '30d',
        format: 'pem_bundle',
        privateKeyFormat: 'pkcs8',
        notAfter: '2030-01-01T00:00:00Z',
        excludeCNFromSans: true,
      }),
      {
        common_name: 'web.example.test',
        alt_names: 'a.example.test,b.example.test',
        ip_sans: ['10.0.0.1', '::1'],
        uri_sans: ['spiffe://x/y,z'],
        other_sans: ['1.3.6.1.4.1.311.20.2.3;UTF8:user@example.test'],
        user_ids: ['u1', 'u2'],
        ttl: '30d',
        format: 'pem_bundle',
        private_key_format: 'pkcs8',
        not_after: '2030-01-01T00:00:00Z',
        exclude_cn_from_sans: true,
        remove_roots_from_chain: true,
      },
    );
  });

  it('leaves unset and empty fields out', () => {
    assert.deepEqual(issueRequestBody({ mount: 'pki', role: 'web', altNames: [], ipSans: [''], ttl: '' }), {
      exclude_cn_from_sans: false,
      remove_roots_from_chain: true,
    });
  });
});

describe('issue response', () => {
  const data = {
    certificate: CERT,
    issuing_ca: INT,
    ca_chain: [INT, INT2],
    private_key: KEY,
    private_key_type: 'ec',
    serial_number: '1a:2b',
    expiration: 1_800_000_000,
  };

  it('parses the fields and keeps the data', () => {
    const c = parseIssueResponse('pki/issue/web', data);
    assert.equal(c.serialNumber, '1a:2b');
    assert.equal(c.expiration, 1_800_000_000);
    assert.deepEqual(c.caChain, [INT, INT2]);
    assert.equal(c.data, data);
  });

  it('rejects a response without serial, expiration or certificate, naming only the field', () => {
    for (const [k, v] of [
      ['serial_number', ''],
      ['expiration', 'never'],
      ['certificate', undefined],
      ['ca_chain', 'x'],
    ] as const) {
      assert.throws(
        () => parseIssueResponse('pki/issue/web', { ...data, [k]: v }),
        (err: Error) => err.message.includes(k) && !err.message.includes('KEY'),
      );
    }
    assert.throws(() => parseIssueResponse('pki/issue/web', undefined), /data/);
  });

  it('builds the destination: response keys, ca_chain newline-joined, _raw, TLS keys on top', () => {
    const c = parseIssueResponse('pki/issue/web', data);
    const d = pkiSecretData(c, {}, 'kubernetes.io/tls');
    assert.equal(unb64(d.ca_chain), `${INT}\n${INT2}`);
    assert.equal(unb64(d.certificate), CERT);
    assert.equal(unb64(d.private_key), KEY);
    assert.equal(unb64(d.expiration), '1800000000');
    assert.equal(unb64(d['tls.crt']), `${CERT}\n${INT}\n${INT2}`);
    assert.equal(unb64(d['tls.key']), KEY);
    assert.equal(unb64(d['ca.crt']), INT);
    assert.equal(JSON.parse(unb64(d._raw)).serial_number, '1a:2b');
  });

  it('an Opaque destination, or one with templates, gets no TLS keys (VSO)', () => {
    const c = parseIssueResponse('pki/issue/web', data);
    assert.equal(pkiSecretData(c, {}, 'Opaque')['tls.crt'], undefined);
    const t = pkiSecretData(c, { rendered: { 'my.crt': 'x' }, excludeRaw: true }, 'kubernetes.io/tls');
    assert.equal(t['tls.crt'], undefined);
    assert.equal(unb64(t['my.crt']), 'x');
    assert.equal(t._raw, undefined);
  });
});
