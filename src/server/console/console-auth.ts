/**
 * Who a console request is, and whether it may do what it asks.
 *
 * A browser signs in with the login form (`/console/login` or `/admin/login`: a POST of the
 * token, never a URL) and then carries the dashboard session cookie, which the login sets for
 * `/admin` and for `/console` (HttpOnly, SameSite=Strict, an HMAC made with the token's hash,
 * never the token). Scripts may send `Authorization: Bearer <token>` instead.
 *
 * Roles: `read` sees everything; `operate` also steers and starts revocations. A `read` session
 * sees no controls, and its POSTs are answered 403.
 *
 * CSRF: like the dashboard, the cookie is SameSite=Strict, so no other site's request carries
 * it. On top of that, a state-changing request authenticated by the cookie must come from a page
 * of this origin: `Sec-Fetch-Site: same-origin` where the browser sends it (every current one),
 * else an `Origin` whose host is this request's host; neither present is refused. Nothing secret
 * is put in the page for it (no token in a form), and a bearer-token request needs none.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { bearerToken, DASHBOARD_COOKIE, dashboardSessionIdentity, readCookie, type AdminAuth } from '../admin-auth.js';
import { roleAllows, type AdminIdentity, type AdminRole } from '../admin-tokens.js';
import { sendError } from '../http-error.js';

/** Where the console is mounted. */
export const CONSOLE_PATH = '/console';
/** The console's sign-in form. */
export const CONSOLE_LOGIN_PATH = '/console/login';

/** How a request proved who it is. */
export interface ConsoleIdentity extends AdminIdentity {
  via: 'cookie' | 'bearer';
}

const identities = new WeakMap<FastifyRequest, ConsoleIdentity>();

/** The identity `requireConsole` admitted the request as (null before, or when refused). */
export function consoleIdentityOf(request: FastifyRequest): ConsoleIdentity | null {
  return identities.get(request) ?? null;
}

/** `token:<name>`: how the audit trail names a console user (as it names admin API users). */
export function auditActor(identity: AdminIdentity | null): string {
  return `token:${identity?.name ?? 'unknown'}`;
}

/**
 * Whether a cookie-authenticated request that changes state came from a page of this origin
 * (see the module comment). Exported for its table-driven test.
 */
export function sameOrigin(headers: { 'sec-fetch-site'?: string | string[] | undefined; origin?: string | string[] | undefined; host?: string | string[] | undefined }): boolean {
  const site = headers['sec-fetch-site'];
  if (typeof site === 'string') return site === 'same-origin';
  const origin = headers.origin;
  const host = headers.host;
  if (typeof origin !== 'string' || typeof host !== 'string' || origin === 'null') return false;
  try {
    return new URL(origin).host.toLowerCase() === host.toLowerCase();
  } catch {
    return false;
  }
}

/** What to do with a request that is not signed in. */
export type Unauthenticated = 'redirect' | 'json';

/**
 * An `onRequest`-style check for console routes: identifies the request (bearer token or session
 * cookie), then requires `role`, and for POSTs by cookie a same-origin request. `unauthenticated`:
 * pages redirect to the sign-in form, streams and actions answer 401.
 */
export function requireConsole(auth: AdminAuth, role: AdminRole, unauthenticated: Unauthenticated) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const blocked = auth.refuseIfBlocked(request, reply);
    if (blocked !== null) return blocked;
    let identity: ConsoleIdentity | null = null;
    const presented = bearerToken(request.headers.authorization);
    if (presented !== null) {
      const found = auth.tokens.identify(presented);
      if (found === null) {
        auth.recordFailure(request, 'bearer token');
        return sendError(reply.header('www-authenticate', 'Bearer realm="revoker"'), 401, 'unauthorized', 'give an admin token as Authorization: Bearer <token>');
      }
      identity = { ...found, via: 'bearer' };
    } else {
      const found = dashboardSessionIdentity(readCookie(request.headers.cookie, DASHBOARD_COOKIE), auth.tokens);
      if (found !== null) identity = { ...found, via: 'cookie' };
    }
    if (identity === null) {
      if (unauthenticated === 'redirect' && request.method === 'GET') return reply.header('cache-control', 'no-store').redirect(CONSOLE_LOGIN_PATH, 303);
      return sendError(reply, 401, 'unauthorized', `sign in at ${CONSOLE_LOGIN_PATH} first, or send Authorization: Bearer <token>`);
    }
    if (!roleAllows(identity.role, role)) {
      request.log.warn({ clientAddress: request.ip, tokenName: identity.name, role: identity.role, path: request.url.split('?')[0] }, 'console request refused: role too low');
      return sendError(reply, 403, 'forbidden', `token '${identity.name}' has role ${identity.role}; this needs ${role}`);
    }
    if (request.method !== 'GET' && request.method !== 'HEAD' && identity.via === 'cookie' && !sameOrigin(request.headers)) {
      request.log.warn({ clientAddress: request.ip, tokenName: identity.name, path: request.url.split('?')[0], secFetchSite: request.headers['sec-fetch-site'], origin: request.headers.origin }, 'console request refused: not from a console page (CSRF check)');
      return sendError(reply, 403, 'cross_site_request', 'this request did not come from a page of the console (Sec-Fetch-Site / Origin): refused');
    }
    identities.set(request, identity);
    return undefined;
  };
}
