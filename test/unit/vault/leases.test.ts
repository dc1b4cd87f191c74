import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Random } from '../../../src/clock.ts';
import type { RequestOptions, VaultApi, VaultResponse } from '../../../src/vault/client.ts';
import { VaultError } from '../../../src/vault/errors.ts';
import {
  effectiveRenewalPercent,
  isTruncated,
  LATEST_RENEWAL_FRACTION,
  lookupLease,
  refreshHorizonMs,
  renewalHorizonMs,
  renewalNeedsNewCredentials,
  renewLease,
  revokeLease,
  STATIC_CREDS_RETRY_MS,
  seededRandom,
  staticCredsMeta,
  staticCredsPollMs,
} from '../../../src/vault/leases.ts';

const fixed =
  (v: number): Random =>
  () =>
    v;

describe('renewal horizon', () => {
  it('never reaches expiry: 0 ≤ horizon ≤ 90 % of the lease, for any percent and draw', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000_000 }),
        fc.option(fc.integer({ min: -50, max: 200 }), { nil: undefined }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (lease, pct, r) => {
          const h = renewalHorizonMs(lease, pct, fixed(r));
          assert.ok(h >= 0, `horizon ${h} >= 0`);
          assert.ok(h <= LATEST_RENEWAL_FRACTION * lease * 1000 + 1e-6, `horizon ${h} <= 90 % of ${lease}s`);
          assert.ok(h < lease * 1000, 'strictly before expiry');
        },
      ),
    );
  });

  it('lands within [p, p + 10] % of the lease when that is below the cap', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: 5, max: 80 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (lease, pct, r) => {
          const h = renewalHorizonMs(lease, pct, fixed(r)) / (lease * 1000);
          assert.ok(h >= pct / 100 - 1e-9 && h <= pct / 100 + 0.1 + 1e-9, `${h} in [${pct}, ${pct + 10}] %`);
        },
      ),
    );
  });

  it('defaults to 67 % (67–77 %) and clamps renewalPercent to [0, 90]', () => {
    assert.equal(effectiveRenewalPercent(undefined), 67);
    assert.equal(effectiveRenewalPercent(95), 90);
    assert.equal(effectiveRenewalPercent(-3), 0);
    assert.equal(renewalHorizonMs(100, undefined, fixed(0)), 67_000);
    assert.ok(Math.abs(renewalHorizonMs(100, undefined, fixed(0.999999)) - 77_000) < 1);
  });

  it('keeps a jitter band below the cap at renewalPercent 90 (VSO could renew at expiry)', () => {
    const lo = renewalHorizonMs(100, 90, fixed(0));
    const hi = renewalHorizonMs(100, 90, fixed(0.999999));
    assert.equal(lo, 85_000);
    assert.ok(hi <= 90_000 && hi > 89_000);
  });

  it('is monotonic in the random draw (later draws never renew earlier)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100_000 }),
        fc.integer({ min: 0, max: 90 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (lease, pct, a, b) => {
          const [x, y] = a <= b ? [a, b] : [b, a];
          assert.ok(renewalHorizonMs(lease, pct, fixed(x)) <= renewalHorizonMs(lease, pct, fixed(y)) + 1e-6);
        },
      ),
    );
  });

  it('a zero lease has no horizon', () => {
    assert.equal(renewalHorizonMs(0, 67, fixed(0.5)), 0);
  });

  it('seededRandom is deterministic per seed and uniform-ish in [0, 1)', () => {
    const a = seededRandom('lease-a@100');
    const b = seededRandom('lease-a@100');
    const c = seededRandom('lease-a@101');
    const xs = Array.from({ length: 1000 }, () => a());
    assert.deepEqual(
      xs.slice(0, 5),
      Array.from({ length: 5 }, () => b()),
    );
    assert.notEqual(xs[0], c());
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    assert.ok(mean > 0.4 && mean < 0.6);
  });

  it('refreshAfter is jittered down 10–20 %', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1e9 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (d, r) => {
          const h = refreshHorizonMs(d, fixed(r));
          assert.ok(h > 0.8 * d - 1e-6 && h <= 0.9 * d + 1e-6);
        },
      ),
    );
  });
});

describe('truncation and renewal errors', () => {
  it('a renewal answered with less than requested is truncated', () => {
    assert.equal(isTruncated({ durationS: 9, requestedS: 10 }), true);
    assert.equal(isTruncated({ durationS: 10, requestedS: 10 }), false);
    assert.equal(isTruncated({ durationS: 3600, requestedS: 10 }), false);
  });

  it('lease gone, 400 and 403 mean new credentials; transport and 5xx do not', () => {
    const e = (status: number, errors: string[]) =>
      new VaultError({ method: 'PUT', path: 'sys/leases/renew', status, errors });
    assert.equal(renewalNeedsNewCredentials(e(400, ['lease not found'])), true);
    assert.equal(renewalNeedsNewCredentials(e(400, ['invalid lease ID'])), true);
    assert.equal(renewalNeedsNewCredentials(e(403, ['permission denied'])), true);
    assert.equal(renewalNeedsNewCredentials(e(500, ['internal error'])), false);
    assert.equal(renewalNeedsNewCredentials(e(503, ['Vault is sealed'])), false);
    assert.equal(renewalNeedsNewCredentials(new Error('ECONNREFUSED')), false);
    // The engine could not renew a lease that still exists (its database is down): retry instead.
    assert.equal(
      renewalNeedsNewCredentials(
        e(400, ['failed to renew entry: resp: (*logical.Response)(nil) err: dial tcp: connection refused']),
      ),
      false,
    );
  });
});

class RecordingApi implements VaultApi {
  calls: { path: string; body: Record<string, unknown> | undefined }[] = [];
  readonly answer: (path: string, body?: Record<string, unknown>) => VaultResponse | undefined;
  constructor(answer: (path: string, body?: Record<string, unknown>) => VaultResponse | undefined) {
    this.answer = answer;
  }
  async read(path: string): Promise<VaultResponse | undefined> {
    return this.answer(path);
  }
  async write(
    path: string,
    body?: Record<string, unknown>,
    _o?: RequestOptions,
  ): Promise<VaultResponse | undefined> {
    this.calls.push({ path, body });
    return this.answer(path, body);
  }
  async delete(): Promise<undefined> {
    return undefined;
  }
  async list(): Promise<undefined> {
    return undefined;
  }
}

describe('sys/leases API', () => {
  it('renews with the lease id and increment and reports the granted duration', async () => {
    const api = new RecordingApi(() => ({
      lease_id: 'db/creds/r/1',
      lease_duration: 9,
      renewable: true,
      request_id: 'q',
    }));
    const r = await renewLease(api, 'db/creds/r/1', 10);
    assert.deepEqual(api.calls, [
      { path: 'sys/leases/renew', body: { lease_id: 'db/creds/r/1', increment: 10 } },
    ]);
    assert.deepEqual(r, {
      id: 'db/creds/r/1',
      durationS: 9,
      renewable: true,
      requestId: 'q',
      requestedS: 10,
    });
    assert.equal(isTruncated(r), true);
  });

  it('revoke treats a missing lease as revoked and skips an empty id', async () => {
    const gone = new RecordingApi(() => {
      throw new VaultError({
        method: 'PUT',
        path: 'sys/leases/revoke',
        status: 400,
        errors: ['invalid lease'],
      });
    });
    await revokeLease(gone, 'x');
    await revokeLease(gone, '');
    assert.equal(gone.calls.length, 1);
    const denied = new RecordingApi(() => {
      throw new VaultError({
        method: 'PUT',
        path: 'sys/leases/revoke',
        status: 403,
        errors: ['permission denied'],
      });
    });
    await assert.rejects(revokeLease(denied, 'x'), /403/);
  });

  it('lookup returns undefined for a lease that is gone', async () => {
    const gone = new RecordingApi(() => {
      throw new VaultError({
        method: 'PUT',
        path: 'sys/leases/lookup',
        status: 400,
        errors: ['invalid lease'],
      });
    });
    assert.equal(await lookupLease(gone, 'x'), undefined);
    const live = new RecordingApi(() => ({
      data: { id: 'x', ttl: 7, renewable: true, expire_time: '2030-01-01T00:00:00Z' },
    }));
    assert.deepEqual(await lookupLease(live, 'x'), {
      id: 'x',
      ttlS: 7,
      renewable: true,
      expireTime: '2030-01-01T00:00:00Z',
    });
  });
});

describe('static credentials', () => {
  it('parses rotation metadata', () => {
    assert.deepEqual(
      staticCredsMeta({
        last_vault_rotation: '2024-01-02T03:04:05.6Z',
        rotation_period: 86400,
        ttl: 3600,
        username: 'u',
      }),
      { lastVaultRotation: Date.parse('2024-01-02T03:04:05Z') / 1000, rotationPeriod: 86400, ttl: 3600 },
    );
    assert.equal(staticCredsMeta({ rotation_schedule: '0 * * * *', ttl: 5 }).rotationSchedule, '0 * * * *');
  });

  it('polls at the TTL (+0.5 s for periods, ≤ 150 ms jitter) and every 2 s while a rotation is due', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 3, max: 1e6 }),
        fc.boolean(),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (ttl, scheduled, r) => {
          const meta = {
            lastVaultRotation: 1,
            rotationPeriod: 60,
            ttl,
            ...(scheduled ? { rotationSchedule: '* * * * *' } : {}),
          };
          const ms = staticCredsPollMs(meta, false, fixed(r));
          const base = ttl * 1000 + (scheduled ? 0 : 500);
          assert.ok(ms >= base && ms <= base + 150);
        },
      ),
    );
    const due = { lastVaultRotation: 1, rotationPeriod: 5, ttl: 0 };
    assert.ok(staticCredsPollMs(due, true, fixed(0)) === STATIC_CREDS_RETRY_MS);
    assert.ok(staticCredsPollMs({ ...due, ttl: 1 }, false, fixed(0)) === STATIC_CREDS_RETRY_MS);
  });
});
