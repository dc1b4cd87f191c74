// An authenticated Vault session: a token plus its lifecycle. Unlike VSO, which drops a client from
// its cache when the token's lifetime watcher ends and logs in again on the next use, a session heals
// in place: it renews at about 2/3 of the TTL and logs in again when renewal fails, when the TTL is
// being truncated by the token's max TTL, or before a non-renewable token expires. The token is held
// in private fields only and never appears in events, errors or logs.
import { createHash } from 'node:crypto';
import { type BackoffPolicy, delayAfter, VAULT_RELOGIN_BACKOFF } from '../backoff.ts';
import { type Clock, type Random, systemClock, systemRandom, type Timer } from '../clock.ts';
import type { AuthMethod, AuthMethodName } from './auth/index.ts';
import type { RequestOptions, VaultApi, VaultAuthInfo, VaultClient, VaultResponse } from './client.ts';
import { VaultError } from './errors.ts';
import type { PersistedToken } from './persistence.ts';

/** Renewal happens at a fraction of the TTL drawn uniformly from [MIN, MAX]: early enough that one
 * failed attempt still leaves a third of the TTL for a re-login, and jittered so that sessions
 * created together do not renew together. */
export const RENEW_FRACTION_MAX = 2 / 3;
export const RENEW_FRACTION_MIN = 0.6;

export type LoginReason = 'initial' | 'renewal-failed' | 'max-ttl' | 'not-renewable' | 'expired' | 'invalid';

export type SessionEvent =
  | { type: 'login'; reason: LoginReason; clientId: string; ttlSeconds: number }
  | { type: 'loginFailed'; reason: LoginReason; error: unknown; retryInMs: number }
  | { type: 'renew'; clientId: string; ttlSeconds: number }
  | { type: 'renewFailed'; clientId: string; error: unknown }
  /** A persisted token was validated and adopted instead of a login (§11.4). */
  | { type: 'restored'; clientId: string; ttlSeconds: number };

export interface VaultSessionOptions {
  /** Connection and Vault namespace to log in to; must carry no token. */
  client: VaultClient;
  auth: AuthMethod;
  clock?: Clock;
  random?: Random;
  /** Observability hook (metrics, logs). Events carry no token material. */
  onEvent?: (event: SessionEvent) => void;
  /** Backoff between background re-login attempts after a failure (default VAULT_RELOGIN_BACKOFF). */
  retry?: BackoffPolicy;
  /** The session owns `client`'s connection pool and closes it on close(); for a client created
   * just for this session, so that cache eviction releases its sockets. */
  ownsClient?: boolean;
  /** Called with the token state after every login and after a renewal that changed the granted TTL
   * or renewability: the persistence hook (§11.4). The only place the token leaves the session. */
  onToken?: (token: PersistedToken) => void;
}

export type NextStep =
  | { action: 'none' }
  | { action: 'renew'; delayMs: number }
  | { action: 'relogin'; delayMs: number; reason: 'max-ttl' | 'not-renewable' };

/** Delay before acting on a token with `ttlSeconds` left, in [0.6, 2/3] of the TTL. */
export function renewDelayMs(ttlSeconds: number, random: Random): number {
  const fraction = RENEW_FRACTION_MAX - (RENEW_FRACTION_MAX - RENEW_FRACTION_MIN) * random();
  return Math.floor(ttlSeconds * 1000 * fraction);
}

/**
 * Decides what to do next with a token. `loginTtlSeconds` is the TTL granted at login; a renewal that
 * returns less (beyond a second of rounding) is being capped by the max TTL, so renewing again would
 * only shrink further and the session logs in again instead.
 */
export function planNext(
  token: { ttlSeconds: number; renewable: boolean; loginTtlSeconds: number },
  random: Random,
): NextStep {
  if (token.ttlSeconds <= 0) return { action: 'none' }; // a token without expiry (e.g. root)
  const delayMs = renewDelayMs(token.ttlSeconds, random);
  if (!token.renewable) return { action: 'relogin', delayMs, reason: 'not-renewable' };
  if (token.ttlSeconds + 1 < token.loginTtlSeconds) return { action: 'relogin', delayMs, reason: 'max-ttl' };
  return { action: 'renew', delayMs };
}

/** A stable, non-secret id for a token: hex sha256 of its accessor. VSO hashes the accessor with
 * blake2b-256; node:crypto has no blake2b-256 (truncating blake2b512 gives different bytes), and only
 * equality matters to consumers, so sha256 is used. Batch tokens have no accessor; their id hashes
 * the token itself, which a one-way hash does not reveal. */
export function clientIdOf(auth: Pick<VaultAuthInfo, 'accessor' | 'client_token'>): string {
  return createHash('sha256')
    .update(auth.accessor || auth.client_token)
    .digest('hex');
}

export class VaultSession implements VaultApi {
  readonly method: AuthMethodName;
  readonly #base: VaultClient;
  readonly #auth: AuthMethod;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #onEvent: (event: SessionEvent) => void;
  readonly #retry: BackoffPolicy;
  readonly #ownsClient: boolean;
  readonly #onToken: ((token: PersistedToken) => void) | undefined;
  #token = '';
  #poolReleased = false;
  #client: VaultClient;
  #accessor: string;
  #policies: readonly string[];
  #renewable: boolean;
  #clientId: string;
  #loginTtlSeconds: number;
  /** TTL granted by the last login or renewal (equals #loginTtlSeconds until a renewal). */
  #grantedTtlSeconds = 0;
  #expiresAt: number | undefined;
  #tainted = false;
  #closed = false;
  #timer: Timer | undefined;
  #loginInFlight: Promise<void> | undefined;
  #failedLogins = 0;

  private constructor(opts: VaultSessionOptions, info: VaultAuthInfo) {
    this.method = opts.auth.method;
    this.#base = opts.client;
    this.#auth = opts.auth;
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? systemRandom;
    this.#onEvent = opts.onEvent ?? (() => {});
    this.#retry = opts.retry ?? VAULT_RELOGIN_BACKOFF;
    this.#ownsClient = opts.ownsClient ?? false;
    this.#onToken = opts.onToken;
    this.#client = opts.client;
    this.#accessor = '';
    this.#policies = [];
    this.#renewable = false;
    this.#clientId = '';
    this.#loginTtlSeconds = 0;
    this.#adopt(info);
  }

  /** Logs in and starts the token lifecycle. Throws the login error. */
  static async login(opts: VaultSessionOptions, signal?: AbortSignal): Promise<VaultSession> {
    if (opts.client.hasToken) throw new TypeError('VaultSession.login needs a client without a token');
    const info = await opts.auth.login(opts.client, signal);
    const session = new VaultSession(opts, info);
    session.#onEvent({
      type: 'login',
      reason: 'initial',
      clientId: session.#clientId,
      ttlSeconds: info.lease_duration,
    });
    session.#schedule();
    session.#emitToken();
    return session;
  }

  /**
   * Resumes a persisted token instead of logging in: checks it with `auth/token/lookup-self` (which
   * also gives the time it has left) and schedules the next renewal from that expiry, not from now.
   * Throws when Vault rejects the token or it is about to expire; the caller then logs in.
   */
  static async restore(
    opts: VaultSessionOptions,
    stored: PersistedToken,
    signal?: AbortSignal,
  ): Promise<VaultSession> {
    if (opts.client.hasToken) throw new TypeError('VaultSession.restore needs a client without a token');
    const res = await opts.client
      .withToken(stored.token)
      .read('auth/token/lookup-self', signal ? { signal } : undefined);
    const data = res?.data ?? {};
    const ttl = typeof data.ttl === 'number' ? data.ttl : undefined;
    const renewable = typeof data.renewable === 'boolean' ? data.renewable : stored.renewable;
    const info: VaultAuthInfo = {
      client_token: stored.token,
      accessor: typeof data.accessor === 'string' && data.accessor !== '' ? data.accessor : stored.accessor,
      policies: Array.isArray(data.policies)
        ? data.policies.filter((p): p is string => typeof p === 'string')
        : stored.policies,
      lease_duration: stored.leaseDuration,
      renewable,
    };
    const session = new VaultSession(opts, info);
    session.#loginTtlSeconds = stored.loginTtlSeconds;
    if (stored.leaseDuration > 0) {
      const clock = opts.clock ?? systemClock;
      const remainingS = ttl ?? ((stored.expiresAt ?? clock.now()) - clock.now()) / 1000;
      session.#expiresAt = clock.now() + remainingS * 1000;
      if (session.#isExpired()) {
        session.close();
        throw new VaultError({
          method: 'GET',
          path: 'auth/token/lookup-self',
          message: 'persisted token is about to expire',
        });
      }
    }
    session.#onEvent({
      type: 'restored',
      clientId: session.#clientId,
      ttlSeconds: Math.max(0, Math.round(((session.#expiresAt ?? 0) - session.#clock.now()) / 1000)),
    });
    session.#schedule();
    return session;
  }

  /** The token state a persistence hook stores. */
  #snapshot(): PersistedToken {
    return {
      token: this.#token,
      accessor: this.#accessor,
      policies: [...this.#policies],
      renewable: this.#renewable,
      leaseDuration: this.#grantedTtlSeconds,
      loginTtlSeconds: this.#loginTtlSeconds,
      expiresAt: this.#expiresAt,
    };
  }

  #emitToken(): void {
    if (this.#onToken === undefined || this.#closed) return;
    try {
      this.#onToken(this.#snapshot());
    } catch {
      // A persistence failure never breaks the session; the hook reports its own errors.
    }
  }

  get clientId(): string {
    return this.#clientId;
  }

  get accessor(): string {
    return this.#accessor;
  }

  get policies(): readonly string[] {
    return this.#policies;
  }

  /** Epoch ms at which the current token expires; undefined for a token without expiry. */
  get expiresAt(): number | undefined {
    return this.#expiresAt;
  }

  get tainted(): boolean {
    return this.#tainted;
  }

  get closed(): boolean {
    return this.#closed;
  }

  read(path: string, opts?: RequestOptions): Promise<VaultResponse | undefined> {
    return this.#call((c) => c.read(path, opts));
  }

  write(
    path: string,
    body?: Record<string, unknown>,
    opts?: RequestOptions,
  ): Promise<VaultResponse | undefined> {
    return this.#call((c) => c.write(path, body, opts));
  }

  delete(path: string, opts?: RequestOptions): Promise<VaultResponse | undefined> {
    return this.#call((c) => c.delete(path, opts));
  }

  list(path: string, opts?: RequestOptions): Promise<VaultResponse | undefined> {
    return this.#call((c) => c.list(path, opts));
  }

  /** A view in another Vault namespace that shares this session's token (VSO's clones). It follows
   * re-logins and taints this session on 403, but has no lifecycle of its own. */
  withNamespace(namespace: string | undefined): VaultApi {
    const on = (): VaultClient => this.#client.withNamespace(namespace);
    return {
      read: (path, opts) => this.#call(() => on().read(path, opts)),
      write: (path, body, opts) => this.#call(() => on().write(path, body, opts)),
      delete: (path, opts) => this.#call(() => on().delete(path, opts)),
      list: (path, opts) => this.#call(() => on().list(path, opts)),
    };
  }

  /**
   * Makes the session usable before it is handed out: logs in again if the token has expired, and if
   * a request saw 403, checks the token with `auth/token/lookup-self` and logs in again when Vault
   * rejects it. A lookup that fails for another reason (Vault unreachable) leaves the session tainted
   * for the next check. Throws the re-login error.
   */
  async validate(signal?: AbortSignal): Promise<void> {
    if (this.#closed) throw new TypeError('VaultSession is closed');
    if (this.#loginInFlight !== undefined) await this.#loginInFlight;
    if (this.#isExpired()) return this.#relogin('expired', signal);
    if (!this.#tainted) return;
    try {
      await this.#client.read('auth/token/lookup-self', signal ? { signal } : undefined);
      this.#tainted = false;
    } catch (err) {
      if (err instanceof VaultError && (err.isForbidden() || err.status === 401)) {
        return this.#relogin('invalid', signal);
      }
    }
  }

  /** Revokes the token (`auth/token/revoke-self`) and closes the session. Leases created with the
   * token are revoked by Vault with it. */
  async revoke(signal?: AbortSignal): Promise<void> {
    this.#stop();
    try {
      await this.#client.write('auth/token/revoke-self', undefined, signal ? { signal } : undefined);
    } finally {
      this.close();
    }
  }

  /** Stops renewal and, with `ownsClient`, closes the connection pool once in-flight requests end.
   * The token stays valid until it expires. */
  close(): void {
    this.#stop();
    if (this.#ownsClient && !this.#poolReleased) {
      this.#poolReleased = true;
      void this.#base.close().catch(() => {});
    }
  }

  #stop(): void {
    this.#closed = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  async #call<T>(fn: (client: VaultClient) => Promise<T>): Promise<T> {
    try {
      return await fn(this.#client);
    } catch (err) {
      // 403 is also Vault's answer to a policy denial, so it only marks the token as suspect.
      if (err instanceof VaultError && err.isForbidden()) this.#tainted = true;
      throw err;
    }
  }

  #adopt(info: VaultAuthInfo): void {
    this.#client = this.#base.withToken(info.client_token);
    this.#token = info.client_token;
    this.#accessor = info.accessor;
    this.#policies = info.policies;
    this.#renewable = info.renewable;
    this.#clientId = clientIdOf(info);
    this.#loginTtlSeconds = info.lease_duration;
    this.#grantedTtlSeconds = info.lease_duration;
    this.#expiresAt = this.#expiry(info.lease_duration);
  }

  #expiry(ttlSeconds: number): number | undefined {
    return ttlSeconds > 0 ? this.#clock.now() + ttlSeconds * 1000 : undefined;
  }

  #isExpired(): boolean {
    if (this.#expiresAt === undefined) return false;
    // Treat the last moments as expired: a request sent then would arrive with a dead token.
    const skewMs = Math.min(2000, this.#loginTtlSeconds * 100);
    return this.#clock.now() >= this.#expiresAt - skewMs;
  }

  #schedule(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    if (this.#closed) return;
    const remainingS = this.#expiresAt === undefined ? 0 : (this.#expiresAt - this.#clock.now()) / 1000;
    // The action follows from the TTL Vault last granted; the delay from the time actually left, which
    // is shorter for a token restored from storage (its timing resumes from the stored expiry).
    const granted = this.#expiresAt === undefined ? 0 : this.#grantedTtlSeconds;
    const step = planNext(
      { ttlSeconds: granted, renewable: this.#renewable, loginTtlSeconds: this.#loginTtlSeconds },
      this.#random,
    );
    if (step.action === 'none') return;
    const delayMs =
      granted > 0 && remainingS < granted
        ? Math.max(0, Math.floor(step.delayMs * (remainingS / granted)))
        : step.delayMs;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      if (step.action === 'renew') void this.#renew();
      else void this.#relogin(step.reason).catch(() => {});
    }, delayMs);
  }

  async #renew(): Promise<void> {
    if (this.#closed) return;
    try {
      const res = await this.#client.write('auth/token/renew-self', {});
      const auth = res?.auth;
      if (!auth) {
        throw new VaultError({
          method: 'PUT',
          path: 'auth/token/renew-self',
          message: 'renewal returned no auth',
        });
      }
      if (this.#closed) return;
      if (auth.lease_duration <= 0) {
        // The token had a TTL, so 0 here means "no time left" (max TTL reached), not "never expires".
        await this.#relogin('max-ttl').catch(() => {});
        return;
      }
      const changed = auth.renewable !== this.#renewable || auth.lease_duration !== this.#grantedTtlSeconds;
      this.#renewable = auth.renewable;
      this.#grantedTtlSeconds = auth.lease_duration;
      this.#expiresAt = this.#expiry(auth.lease_duration);
      this.#onEvent({ type: 'renew', clientId: this.#clientId, ttlSeconds: auth.lease_duration });
      this.#schedule();
      if (changed) this.#emitToken();
    } catch (error) {
      if (this.#closed) return;
      this.#onEvent({ type: 'renewFailed', clientId: this.#clientId, error });
      await this.#relogin('renewal-failed').catch(() => {});
    }
  }

  /** Single-flight: concurrent callers share one login. On failure a background retry is scheduled
   * (with backoff) and the error is thrown to the caller. */
  #relogin(reason: LoginReason, signal?: AbortSignal): Promise<void> {
    if (this.#loginInFlight !== undefined) return this.#loginInFlight;
    const attempt = (async () => {
      this.#timer?.cancel();
      this.#timer = undefined;
      try {
        const info = await this.#auth.login(this.#base, signal);
        if (this.#closed) return;
        // The old token is not revoked: leases it created (dynamic secrets) would be revoked with it.
        this.#adopt(info);
        this.#tainted = false;
        this.#failedLogins = 0;
        this.#onEvent({ type: 'login', reason, clientId: this.#clientId, ttlSeconds: info.lease_duration });
        this.#schedule();
        this.#emitToken();
      } catch (error) {
        if (this.#closed) throw error;
        const retryInMs = Math.floor(delayAfter(this.#retry, this.#failedLogins, this.#random));
        this.#failedLogins += 1;
        this.#onEvent({ type: 'loginFailed', reason, error, retryInMs });
        this.#timer = this.#clock.setTimeout(() => {
          this.#timer = undefined;
          void this.#relogin(reason).catch(() => {});
        }, retryInMs);
        throw error;
      }
    })();
    this.#loginInFlight = attempt;
    return attempt.finally(() => {
      if (this.#loginInFlight === attempt) this.#loginInFlight = undefined;
    });
  }
}
