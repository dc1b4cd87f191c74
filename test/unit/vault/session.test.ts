import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { intervalFor, VAULT_RELOGIN_BACKOFF } from '../../../src/backoff.ts';
import type { Random } from '../../../src/clock.ts';
import { appRoleAuth } from '../../../src/vault/auth/approle.ts';
import { type RequestOptions, VaultClient, type VaultResponse } from '../../../src/vault/client.ts';
import { VaultError } from '../../../src/vault/errors.ts';
import { seededRandom } from '../../../src/vault/leases.ts';
import {
  clientIdOf,
  planNext,
  RENEW_FRACTION_MAX,
  RENEW_FRACTION_MIN,
  renewDelayMs,
  type SessionEvent,
  VaultSession,
} from '../../../src/vault/session.ts';
import { authBody, FakeVault, ManualClock, microFlush } from './helpers.ts';

const fixed =
  (v: number): Random =>
  () =>
    v;

describe('renewal maths', () => {
  it('renews within [0.6, 2/3] of the TTL and always before expiry', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 * 365 * 86400 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (ttl, r) => {
          const d = renewDelayMs(ttl, fixed(r));
          assert.ok(d >= Math.floor(ttl * 1000 * RENEW_FRACTION_MIN) - 1, `${d} too early for ${ttl}s`);
          assert.ok(d <= ttl * 1000 * RENEW_FRACTION_MAX, `${d} too late for ${ttl}s`);
          assert.ok(d < ttl * 1000);
        },
      ),
    );
  });

  it('plans renewals for healthy tokens and re-logins for capped or non-renewable ones', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 86400 }),
        fc.integer({ min: 1, max: 86400 }),
        fc.boolean(),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (ttl, loginTtl, renewable, r) => {
          const step = planNext({ ttlSeconds: ttl, renewable, loginTtlSeconds: loginTtl }, fixed(r));
          assert.notEqual(step.action, 'none');
          if (step.action === 'none') return;
          assert.ok(step.delayMs < ttl * 1000, 'acts before the token expires');
          if (!renewable)
            assert.deepEqual(step, { action: 'relogin', delayMs: step.delayMs, reason: 'not-renewable' });
          else if (ttl + 1 < loginTtl) assert.equal(step.action === 'relogin' && step.reason, 'max-ttl');
          else assert.equal(step.action, 'renew');
        },
      ),
    );
    assert.deepEqual(planNext({ ttlSeconds: 0, renewable: true, loginTtlSeconds: 0 }, Math.random), {
      action: 'none',
    });
  });

  it('derives the client id from the accessor', () => {
    const id = clientIdOf({ accessor: 'acc-1', client_token: 'hvs.x' });
    assert.equal(id, createHash('sha256').update('acc-1').digest('hex'));
    assert.notEqual(
      clientIdOf({ accessor: '', client_token: 'b.batch' }),
      clientIdOf({ accessor: '', client_token: 'b.other' }),
    );
  });
});

interface SimToken {
  expiresAt: number;
  maxAt: number;
  renewable: boolean;
  revoked: boolean;
}

/**
 * A simulated Vault behind a fake VaultClient: tokens with a TTL and a max TTL in clock time, renewals
 * truncated at the max TTL (rounded down to whole seconds, as Vault does), optional failures. It records
 * any request made with a dead token.
 */
class SimVault {
  readonly tokens = new Map<string, SimToken>();
  readonly violations: string[] = [];
  readonly calls: string[] = [];
  ttl = 60;
  maxTtl = 600;
  renewable = true;
  failRenew = 0;
  failLogin = 0;
  lookupDown = false;
  #n = 0;
  readonly now: () => number;

  constructor(now: () => number) {
    this.now = now;
  }

  client(token?: string, namespace?: string): VaultClient {
    const fake = {
      hasToken: token !== undefined,
      namespace,
      withToken: (t: string) => this.client(t, namespace),
      withNamespace: (ns: string | undefined) => this.client(token, ns),
      read: async (path: string) => this.#handle('GET', path, token),
      write: async (path: string, _body?: Record<string, unknown>, _opts?: RequestOptions) =>
        this.#handle('PUT', path, token),
      delete: async (path: string) => this.#handle('DELETE', path, token),
      list: async (path: string) => this.#handle('LIST', path, token),
    };
    return fake as unknown as VaultClient;
  }

  #alive(token: string | undefined): SimToken | undefined {
    const t = token === undefined ? undefined : this.tokens.get(token);
    return t && !t.revoked && this.now() < t.expiresAt ? t : undefined;
  }

  #handle(method: string, path: string, token: string | undefined): VaultResponse | undefined {
    this.calls.push(`${method} ${path}`);
    const denied = () => new VaultError({ method, path, status: 403, errors: ['permission denied'] });
    if (path.endsWith('/login')) {
      if (this.failLogin > 0) {
        this.failLogin--;
        throw new VaultError({ method, path, status: 500, errors: ['login backend down'] });
      }
      const tok = `tok-${++this.#n}`;
      const now = this.now();
      this.tokens.set(tok, {
        expiresAt: now + Math.min(this.ttl, this.maxTtl) * 1000,
        maxAt: now + this.maxTtl * 1000,
        renewable: this.renewable,
        revoked: false,
      });
      return authBody(tok, { ttl: Math.min(this.ttl, this.maxTtl), renewable: this.renewable });
    }
    if (path === 'auth/token/lookup-self' && this.lookupDown) throw new Error('connection refused');
    const t = this.#alive(token);
    if (!t) {
      if (path !== 'auth/token/lookup-self')
        this.violations.push(`${method} ${path} with a dead token at ${this.now()}`);
      throw denied();
    }
    switch (path) {
      case 'auth/token/renew-self': {
        if (this.failRenew > 0) {
          this.failRenew--;
          throw new VaultError({ method, path, status: 500, errors: ['internal error'] });
        }
        const ttl = Math.min(this.ttl, Math.floor((t.maxAt - this.now()) / 1000));
        t.expiresAt = this.now() + ttl * 1000;
        return authBody(token ?? '', { ttl, renewable: t.renewable });
      }
      case 'auth/token/lookup-self':
        return { data: { ttl: 1 } };
      case 'auth/token/revoke-self':
        t.revoked = true;
        return undefined;
      default:
        return { data: { path } };
    }
  }
}

function setup(opts: { seed?: number } = {}) {
  const clock = new ManualClock({ flush: microFlush });
  const sim = new SimVault(() => clock.now());
  const events: SessionEvent[] = [];
  const login = () =>
    VaultSession.login({
      client: sim.client(),
      auth: appRoleAuth({ mount: 'approle', roleId: 'r', getSecretId: async () => 's' }),
      clock,
      // A seeded PRNG so fast-check can shrink a failing lifecycle to a reproducible case.
      random: seededRandom(String(opts.seed ?? 1)),
      onEvent: (e) => events.push(e),
      retry: { ...VAULT_RELOGIN_BACKOFF, maxMs: 8000 },
    });
  const kinds = () =>
    events.map((e) => (e.type === 'login' || e.type === 'loginFailed' ? `${e.type}:${e.reason}` : e.type));
  return { clock, sim, events, login, kinds };
}

describe('VaultSession lifecycle', () => {
  it('always holds a live token: renews, re-logs in at the max TTL and before non-renewable expiry', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 3600 }),
        fc.integer({ min: 1, max: 10 }),
        fc.boolean(),
        fc.integer(),
        fc.array(fc.double({ min: 0.001, max: 0.5, noNaN: true }), { minLength: 5, maxLength: 30 }),
        async (ttl, maxFactor, renewable, seed, steps) => {
          const { clock, sim, login } = setup({ seed });
          sim.ttl = ttl;
          sim.maxTtl = ttl * maxFactor;
          sim.renewable = renewable;
          const session = await login();
          try {
            for (const f of steps) {
              await clock.advance(Math.floor(f * ttl * 1000));
              await session.read('kv/x'); // must never be refused for an expired token
            }
            assert.deepEqual(sim.violations, []);
          } finally {
            session.close();
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('re-logs in when renewal fails', async () => {
    const { clock, sim, login, kinds } = setup();
    const session = await login();
    const first = session.clientId;
    sim.failRenew = 1;
    await clock.advance(41_000);
    assert.deepEqual(kinds(), ['login:initial', 'renewFailed', 'login:renewal-failed']);
    assert.notEqual(session.clientId, first);
    session.close();
  });

  it('retries a failed re-login with backoff', async () => {
    const { clock, sim, login, kinds } = setup();
    sim.renewable = false;
    const session = await login();
    sim.failLogin = 2;
    // The re-login is due at 36–40 s and fails twice, backing off 0.5–1 s, then 1–2 s.
    await clock.advance(36_000);
    assert.deepEqual(kinds(), ['login:initial']);
    await clock.advance(8_000);
    assert.deepEqual(kinds(), [
      'login:initial',
      'loginFailed:not-renewable',
      'loginFailed:not-renewable',
      'login:not-renewable',
    ]);
    await session.read('x');
    assert.deepEqual(sim.violations, []);
    session.close();
  });

  it('spaces failed background re-logins by VAULT_RELOGIN_BACKOFF, resets it on success and stops on close', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 8 }), fc.integer(), async (failures, seed) => {
        const { clock, sim, login, events } = setup({ seed });
        const policy = { ...VAULT_RELOGIN_BACKOFF, maxMs: 8000 };
        sim.renewable = false;
        const session = await login();
        sim.failLogin = failures;
        await clock.advance(40_000 + 2 * 8000 * failures);
        const failed = events.filter((e) => e.type === 'loginFailed');
        assert.equal(failed.length, failures);
        failed.forEach((e, n) => {
          const interval = intervalFor(policy, n);
          assert.ok(e.retryInMs > interval / 2 - 1 && e.retryInMs <= interval, `${e.retryInMs} for #${n}`);
        });
        assert.equal(events.at(-1)?.type, 'login', 'the retries end in a login');
        // A later failure starts again from the first interval.
        sim.failLogin = 1;
        await clock.advance(40_000);
        const again = events.filter((e) => e.type === 'loginFailed').at(-1);
        assert.ok(again?.type === 'loginFailed' && again.retryInMs <= policy.initialMs);
        session.close();
        assert.deepEqual(clock.pending().length, 0, 'close cancels the pending timer');
        assert.deepEqual(sim.violations, []);
      }),
      { numRuns: 30 },
    );
  });

  it('marks the session tainted on 403 and validates with lookup-self', async () => {
    const { sim, login, kinds } = setup();
    const session = await login();
    const id = session.clientId;
    for (const t of sim.tokens.values()) t.revoked = true;
    await assert.rejects(session.read('kv/x'), (e: unknown) => e instanceof VaultError && e.isForbidden());
    assert.equal(session.tainted, true);

    sim.lookupDown = true;
    await session.validate(); // cannot tell: keep the token, stay tainted
    assert.equal(session.tainted, true);
    assert.equal(session.clientId, id);

    sim.lookupDown = false;
    await session.validate();
    assert.equal(session.tainted, false);
    assert.notEqual(session.clientId, id);
    assert.deepEqual(kinds(), ['login:initial', 'login:invalid']);
    session.close();
  });

  it('keeps a token whose 403 was a policy denial', async () => {
    const { sim, login } = setup();
    const session = await login();
    const denying = session.withNamespace('team-b');
    const tok = [...sim.tokens.values()][0]!;
    tok.revoked = true;
    await assert.rejects(denying.read('kv/x'));
    tok.revoked = false;
    assert.equal(session.tainted, true, 'a clone view taints its parent');
    const id = session.clientId;
    await session.validate();
    assert.equal(session.tainted, false);
    assert.equal(session.clientId, id);
    session.close();
  });

  it('logs in again on validate after the process slept past expiry', async () => {
    const { clock, login, kinds } = setup();
    const session = await login();
    clock.jump(61_000);
    await session.validate();
    assert.deepEqual(kinds(), ['login:initial', 'login:expired']);
    assert.ok((session.expiresAt ?? 0) > clock.now());
    session.close();
  });

  it('shares one re-login between concurrent validations', async () => {
    const { clock, sim, login } = setup();
    const session = await login();
    clock.jump(61_000);
    await Promise.all([session.validate(), session.validate(), session.validate()]);
    assert.equal(sim.calls.filter((c) => c.endsWith('/login')).length, 2);
    session.close();
  });

  it('revoke() revokes the token and stops renewal', async () => {
    const { clock, sim, login } = setup();
    const session = await login();
    await session.revoke();
    assert.ok(sim.calls.includes('PUT auth/token/revoke-self'));
    assert.deepEqual(clock.pending().length, 0);
    assert.equal(session.closed, true);
    await assert.rejects(session.validate());
  });

  it('refuses a client that already carries a token', async () => {
    const sim = new SimVault(() => 0);
    await assert.rejects(
      VaultSession.login({
        client: sim.client('tok'),
        auth: appRoleAuth({ mount: 'a', roleId: 'r', getSecretId: async () => 's' }),
      }),
      TypeError,
    );
  });
});

describe('VaultSession with a real client', () => {
  it('closes an owned connection pool after revoking', async () => {
    const vault = await FakeVault.start();
    vault.handler = (r) =>
      r.path.endsWith('/login') ? { body: authBody('tok', { ttl: 0 }) } : { status: 204 };
    const client = new VaultClient({ address: vault.address });
    try {
      const session = await VaultSession.login({
        client,
        auth: appRoleAuth({ mount: 'approle', roleId: 'r', getSecretId: async () => 's' }),
        ownsClient: true,
      });
      await session.revoke();
      assert.deepEqual(
        vault.requests.map((r) => `${r.method} ${r.path} ${r.headers['x-vault-token'] ?? '-'}`),
        ['PUT /v1/auth/approle/login -', 'PUT /v1/auth/token/revoke-self tok'],
      );
      await new Promise((r) => setTimeout(r, 10));
      await assert.rejects(client.read('x'), /destroyed|closed/i);
    } finally {
      await vault.close();
    }
  });
});
