/**
 * Authentication of the admin API, /metrics and the dashboard: the ADMIN_TOKEN as a bearer
 * token, or (dashboard only) a cookie holding an expiring HMAC of it.
 *
 * Comparisons go through SHA-256 digests of both sides and `timingSafeEqual`, so neither the
 * content nor the length of the token leaks through response times. The cookie never holds the
 * token: stealing it gives the dashboard until it expires, not the admin API.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { sendError } from './http-error.js';

/** Name of the dashboard session cookie. */
export const DASHBOARD_COOKIE = 'revoker_dashboard';
/** Path the cookie is sent on: the dashboard and its login, nothing else. */
export const DASHBOARD_COOKIE_PATH = '/admin';

// Domain separation: an HMAC keyed by the token over this label cannot be mistaken for anything else.
const COOKIE_LABEL = 'revoker dashboard session v1';

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

function cookieSignature(adminToken: string, expiresAtSeconds: number): string {
  return createHmac('sha256', adminToken).update(`${COOKIE_LABEL}\n${expiresAtSeconds}`).digest('base64url');
}

/** A dashboard session value `<expiry seconds>.<HMAC>` valid until `now + sessionSeconds`. */
export function dashboardSessionValue(adminToken: string, sessionSeconds: number, now: Date = new Date()): string {
  const expiresAtSeconds = Math.floor(now.getTime() / 1000) + sessionSeconds;
  return `${expiresAtSeconds}.${cookieSignature(adminToken, expiresAtSeconds)}`;
}

/** True when `value` was made by `dashboardSessionValue` with this token and has not expired. */
export function validDashboardSession(value: string | null, adminToken: string, now: Date = new Date()): boolean {
  if (value === null) return false;
  const match = /^(\d{1,12})\.([A-Za-z0-9_-]{1,100})$/.exec(value);
  if (match === null || match[1] === undefined || match[2] === undefined) return false;
  const expiresAtSeconds = Number(match[1]);
  if (expiresAtSeconds <= Math.floor(now.getTime() / 1000)) return false;
  return secretsEqual(match[2], cookieSignature(adminToken, expiresAtSeconds));
}

/** Answers 401 with the challenge a bearer-token client expects. */
export function sendUnauthorized(reply: FastifyReply, message = 'give the admin token as Authorization: Bearer <ADMIN_TOKEN>'): FastifyReply {
  return sendError(reply.header('www-authenticate', 'Bearer realm="revoker"'), 401, 'unauthorized', message);
}

/** True when the request carries the admin token as a bearer token. */
export function hasAdminBearer(request: FastifyRequest, adminToken: string): boolean {
  const token = bearerToken(request.headers.authorization);
  return token !== null && secretsEqual(token, adminToken);
}

/** An `onRequest` hook admitting only requests with the admin bearer token. */
export function requireAdminToken(adminToken: string) {
  // Fastify stops the request when an async hook returns the reply it answered.
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    if (!hasAdminBearer(request, adminToken)) return sendUnauthorized(reply);
    return undefined;
  };
}

/** An `onRequest` hook admitting the admin bearer token or a valid dashboard cookie. */
export function requireDashboardAccess(adminToken: string) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    if (hasAdminBearer(request, adminToken)) return undefined;
    if (validDashboardSession(readCookie(request.headers.cookie, DASHBOARD_COOKIE), adminToken)) return undefined;
    return sendUnauthorized(reply, 'open /admin/login?token=<ADMIN_TOKEN> first, or send Authorization: Bearer <ADMIN_TOKEN>');
  };
}
