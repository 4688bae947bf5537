/**
 * Authentication of the admin API, /metrics and the dashboard: a named admin token as a bearer
 * token, or (dashboard only) a cookie holding an expiring HMAC made with that token's hash.
 *
 * Comparisons go through SHA-256 digests and `timingSafeEqual`, so neither the content nor the
 * length of a token leaks through response times. The cookie never holds the token: stealing it
 * gives the dashboard until it expires, not the admin API. Failed attempts are counted per client
 * address (`FailedAuthLimiter`): past the limit, 429 until the window moves on.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { roleAllows, type AdminIdentity, type AdminRole, type AdminTokens } from './admin-tokens.js';
import type { FailedAuthLimiter } from './failed-auth-limiter.js';
import { sendError } from './http-error.js';

/** Name of the dashboard session cookie. */
export const DASHBOARD_COOKIE = 'revoker_dashboard';
/** Path the cookie is sent on: the dashboard and its login, nothing else. */
export const DASHBOARD_COOKIE_PATH = '/admin';

// Domain separation: an HMAC over this label cannot be mistaken for anything else.
const COOKIE_LABEL = 'revoker dashboard session v2';

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Constant-time equality of two strings of any lengths. */
export function secretsEqual(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match?.[1] ?? null;
}

/** Reads one cookie from a `Cookie` header (no decoding: our values are URL-safe already). */
export function readCookie(header: string | undefined, name: string): string | null {
  if (header === undefined) return null;
  for (const part of header.split(';')) {
    const separator = part.indexOf('=');
    if (separator < 0) continue;
    if (part.slice(0, separator).trim() === name) return part.slice(separator + 1).trim();
  }
  return null;
}

function cookieSignature(tokenHash: Buffer, name: string, expiresAtSeconds: number): string {
  return createHmac('sha256', tokenHash).update(`${COOKIE_LABEL}\n${name}\n${expiresAtSeconds}`).digest('base64url');
}

/** A dashboard session value `<expiry seconds>.<token name>.<HMAC>` valid until `now + sessionSeconds`. */
export function dashboardSessionValue(tokenHash: Buffer, name: string, sessionSeconds: number, now: Date = new Date()): string {
  const expiresAtSeconds = Math.floor(now.getTime() / 1000) + sessionSeconds;
  return `${expiresAtSeconds}.${name}.${cookieSignature(tokenHash, name, expiresAtSeconds)}`;
}

/** The identity of a session value made by `dashboardSessionValue` for a token still configured, unexpired; else null. */
export function dashboardSessionIdentity(value: string | null, tokens: AdminTokens, now: Date = new Date()): AdminIdentity | null {
  if (value === null) return null;
  const match = /^(\d{1,12})\.([A-Za-z0-9_.-]{1,64})\.([A-Za-z0-9_-]{1,100})$/.exec(value);
  if (match === null || match[1] === undefined || match[2] === undefined || match[3] === undefined) return null;
  const expiresAtSeconds = Number(match[1]);
  if (expiresAtSeconds <= Math.floor(now.getTime() / 1000)) return null;
  const token = tokens.byName(match[2]);
  if (token === undefined) return null;
  if (!secretsEqual(match[3], cookieSignature(token.hash, token.name, expiresAtSeconds))) return null;
  return { name: token.name, role: token.role };
}

/** Answers 401 with the challenge a bearer-token client expects. */
export function sendUnauthorized(reply: FastifyReply, message = 'give an admin token as Authorization: Bearer <token>'): FastifyReply {
  return sendError(reply.header('www-authenticate', 'Bearer realm="revoker"'), 401, 'unauthorized', message);
}

// Who each authenticated request is, for the routes' logs and the audit trail.
const identities = new WeakMap<FastifyRequest, AdminIdentity>();

/** The identity the request authenticated as (set by `AdminAuth.guard`), or null. */
export function adminIdentityOf(request: FastifyRequest): AdminIdentity | null {
  return identities.get(request) ?? null;
}

/** The admin tokens plus the failed-attempt limiter: the hooks that guard routes. */
export class AdminAuth {
  constructor(
    readonly tokens: AdminTokens,
    private readonly limiter: FailedAuthLimiter,
  ) {}

  /**
   * 429 when the client is over its failed attempts, with Retry-After; null when it may try.
   * Even a right token is refused then: otherwise the answer would tell a guesser when it won.
   */
  refuseIfBlocked(request: FastifyRequest, reply: FastifyReply): FastifyReply | null {
    const retryAfter = this.limiter.blockedFor(request.ip);
    if (retryAfter === null) return null;
    request.log.debug({ clientAddress: request.ip, path: request.url.split('?')[0] }, 'admin authentication refused: too many failed attempts');
    return sendError(reply.header('retry-after', String(retryAfter)), 429, 'too_many_failed_attempts', `too many failed authentications from this address; retry after ${retryAfter} s`);
  }

  /** Counts and logs a failed authentication (with the client address, never the token). */
  recordFailure(request: FastifyRequest, how: string): void {
    const failures = this.limiter.recordFailure(request.ip);
    request.log.warn({ clientAddress: request.ip, path: request.url.split('?')[0], how, failuresInWindow: failures }, 'admin authentication failed');
  }

  /** Checks a presented token (login form); counts a failure. */
  verifyToken(request: FastifyRequest, token: string): AdminIdentity | null {
    const identity = this.tokens.identify(token);
    if (identity === null) this.recordFailure(request, 'login form');
    return identity;
  }

  /**
   * An `onRequest` hook admitting requests authenticated with a token of at least `role`: a
   * bearer token, or with `allowCookie` a valid dashboard session. A wrong bearer token counts as
   * a failed attempt; a missing one is answered 401 without counting (it guesses nothing).
   */
  guard(role: AdminRole, options: { allowCookie?: boolean } = {}) {
    // Fastify stops the request when an async hook returns the reply it answered.
    return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
      const blocked = this.refuseIfBlocked(request, reply);
      if (blocked !== null) return blocked;
      const presented = bearerToken(request.headers.authorization);
      let identity: AdminIdentity | null = null;
      if (presented !== null) {
        identity = this.tokens.identify(presented);
        if (identity === null) {
          this.recordFailure(request, 'bearer token');
          return sendUnauthorized(reply);
        }
      } else if (options.allowCookie === true) {
        identity = dashboardSessionIdentity(readCookie(request.headers.cookie, DASHBOARD_COOKIE), this.tokens);
      } else if (request.headers.authorization !== undefined) {
        // Another scheme (Basic …): not a bearer token, and a credential presented all the same.
        this.recordFailure(request, 'authorization header');
      }
      if (identity === null) {
        return sendUnauthorized(reply, options.allowCookie === true ? 'log in at /admin/login first, or send Authorization: Bearer <token>' : undefined);
      }
      if (!roleAllows(identity.role, role)) {
        request.log.warn({ clientAddress: request.ip, tokenName: identity.name, role: identity.role, path: request.url.split('?')[0] }, 'admin request refused: role too low');
        return sendError(reply, 403, 'forbidden', `token '${identity.name}' has role ${identity.role}; this needs ${role}`);
      }
      identities.set(request, identity);
      return undefined;
    };
  }
}
