/**
 * The bull-board dashboard at /admin/queues, over the revocation and dead-letter queues.
 *
 * A browser cannot send a bearer header when following a link, so besides the header the
 * dashboard accepts a session cookie, set by the login form: `GET /admin/login` shows the form,
 * `POST /admin/login` (`application/x-www-form-urlencoded`, field `token`) checks the token and
 * sets the cookie (an expiring HMAC made with the token's hash, never the token). A token is never
 * taken from a URL: URLs land in proxy and load-balancer access logs and in browser history.
 *
 * The cookie is HttpOnly, SameSite=Strict (no cross-site request carries it, which is what
 * protects bull-board's POST routes from CSRF), scoped to /admin and /console (the incident
 * console shares the sign-in), and Secure whenever the request
 * arrived over TLS or through a trusted proxy (TRUST_PROXY). Every page carries a CSP with
 * `frame-ancestors 'none'` (no clickjacking through a frame).
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Context } from '../runtime/context.js';
import { DASHBOARD_COOKIE, DASHBOARD_COOKIE_PATH, dashboardSessionValue, type AdminAuth } from './admin-auth.js';
import { sendError } from './http-error.js';
import type { ServerOptions } from './server-options.js';

/** Where the dashboard is mounted. */
export const DASHBOARD_PATH = '/admin/queues';
/** The login form (GET) and where it posts (POST). */
export const LOGIN_PATH = '/admin/login';

/**
 * The pages' Content-Security-Policy. bull-board's UI is scripts and styles from its own static
 * files plus inline styles (style attributes), nothing else; its Google Fonts stylesheet is left
 * blocked (the UI falls back to local fonts, and the admin page tells no third party it was opened).
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Largest login form body read. */
const MAX_LOGIN_BODY_BYTES = 4 * 1024;

/** What the dashboard needs. */
export interface DashboardDeps {
  context: Pick<Context, 'queue' | 'deadLetterQueue'>;
  auth: AdminAuth;
  options: ServerOptions;
  /** TRUST_PROXY is set: a request a trusted proxy forwarded gets a Secure cookie. */
  trustProxy: boolean;
}

/**
 * The paths the session cookie is set for: the dashboard and the incident console (src/server/
 * console), so one sign-in covers both. A cookie has one path; it is set once per path.
 */
export const SESSION_COOKIE_PATHS: readonly string[] = [DASHBOARD_COOKIE_PATH, '/console'];

/** The Set-Cookie values of a session (an empty value with max-age 0 signs out). */
export function sessionCookies(value: string, maxAgeSeconds: number, secure: boolean): string[] {
  return SESSION_COOKIE_PATHS.map((path) => [`${DASHBOARD_COOKIE}=${value}`, `Path=${path}`, `Max-Age=${maxAgeSeconds}`, 'HttpOnly', 'SameSite=Strict', ...(secure ? ['Secure'] : [])].join('; '));
}

/**
 * Whether the browser reached us over TLS: the connection is TLS, a trusted proxy said
 * `X-Forwarded-Proto: https` (Fastify's `protocol`), or a trusted proxy forwarded it at all (a
 * proxy in front of revoker is where TLS is terminated, per the deployment checklist).
 */
export function cameOverTls(request: FastifyRequest, trustProxy: boolean): boolean {
  if (request.protocol === 'https') return true;
  return trustProxy && request.ips !== undefined && request.ips.length > 1;
}

const LOGIN_PAGE = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>revoker — dashboard login</title></head>
<body>
<h1>revoker dashboard</h1>
<form method="post" action="${LOGIN_PATH}">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form>
</body></html>
`;

function page(reply: FastifyReply, status: number, html: string): FastifyReply {
  return reply.code(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(html);
}

/** The dashboard, its login and logout, as a Fastify plugin. */
export function dashboardRoutes(deps: DashboardDeps) {
  const { context, auth, options, trustProxy } = deps;
  return async function register(app: FastifyInstance): Promise<void> {
    // Every answer under /admin: no framing, no sniffing, no referrer, the CSP.
    app.addHook('onSend', async (_request, reply, payload) => {
      reply
        .header('content-security-policy', DASHBOARD_CSP)
        .header('x-frame-options', 'DENY')
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer');
      return payload;
    });

    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: MAX_LOGIN_BODY_BYTES }, (_request, body, done) => {
      done(null, new URLSearchParams(body as string));
    });

    app.get(LOGIN_PATH, async (request, reply) => {
      if (Object.hasOwn(request.query as object, 'token')) {
        // An old bookmark or a script: the token is now in some log anyway. Refuse, and say so.
        request.log.warn({ clientAddress: request.ip }, 'dashboard login with a token in the URL refused');
        return sendError(reply.header('cache-control', 'no-store'), 400, 'token_in_url', 'the token is never accepted in a URL (it would end up in access logs); use the login form, and rotate that token');
      }
      return page(reply, 200, LOGIN_PAGE);
    });

    app.post(LOGIN_PATH, async (request, reply) => {
      const blocked = auth.refuseIfBlocked(request, reply);
      if (blocked !== null) return blocked;
      const form = request.body instanceof URLSearchParams ? request.body : null;
      if (form === null) return sendError(reply, 415, 'unsupported_media_type', 'post the login form (application/x-www-form-urlencoded)');
      const identity = auth.verifyToken(request, form.get('token') ?? '');
      const token = identity === null ? undefined : auth.tokens.byName(identity.name);
      if (identity === null || token === undefined) return page(reply.header('www-authenticate', 'Bearer realm="revoker"'), 401, LOGIN_PAGE.replace('<form', '<p role="alert">That is not an admin token.</p>\n<form'));
      request.log.info({ clientAddress: request.ip, tokenName: identity.name }, 'dashboard login');
      const value = dashboardSessionValue(token.hash, token.name, options.dashboardSessionSeconds);
      return reply
        .header('cache-control', 'no-store')
        .header('set-cookie', sessionCookies(value, options.dashboardSessionSeconds, cameOverTls(request, trustProxy)))
        .redirect(DASHBOARD_PATH, 303);
    });

    const logout = async (request: FastifyRequest, reply: FastifyReply) =>
      reply.header('set-cookie', sessionCookies('', 0, cameOverTls(request, trustProxy))).header('cache-control', 'no-store').send({ status: 'logged_out' });
    app.get('/admin/logout', logout);
    app.post('/admin/logout', logout);

    const serverAdapter = new FastifyAdapter();
    serverAdapter.setBasePath(DASHBOARD_PATH);
    const adapterOptions = { readOnlyMode: options.dashboardReadOnly };
    createBullBoard({
      queues: [new BullMQAdapter(context.queue, adapterOptions), new BullMQAdapter(context.deadLetterQueue, adapterOptions)],
      serverAdapter,
      options: { uiConfig: { boardTitle: 'revoker' } },
    });
    await app.register(async (scope) => {
      // Read-only board: a `read` token is enough. Were it made writable, this would need `operate`.
      scope.addHook('onRequest', auth.guard(options.dashboardReadOnly ? 'read' : 'operate', { allowCookie: true }));
      await scope.register(serverAdapter.registerPlugin(), { prefix: DASHBOARD_PATH });
    });
  };
}
