/**
 * The bull-board dashboard at /admin/queues, over the revocation and dead-letter queues.
 *
 * A browser cannot send a bearer header when following a link, so besides the header the
 * dashboard accepts a session cookie: `GET /admin/login?token=<ADMIN_TOKEN>` sets it (an
 * expiring HMAC of the token, never the token) and redirects to the dashboard. The cookie is
 * HttpOnly, SameSite=Strict (no cross-site request carries it, which is what protects
 * bull-board's POST routes from CSRF) and scoped to /admin.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Context } from '../runtime/context.js';
import {
  DASHBOARD_COOKIE,
  DASHBOARD_COOKIE_PATH,
  dashboardSessionValue,
  requireDashboardAccess,
  secretsEqual,
  sendUnauthorized,
} from './admin-auth.js';
import type { ServerOptions } from './server-options.js';

/** Where the dashboard is mounted. */
export const DASHBOARD_PATH = '/admin/queues';

/** What the dashboard needs. */
export interface DashboardDeps {
  context: Pick<Context, 'queue' | 'deadLetterQueue'>;
  adminToken: string;
  options: ServerOptions;
}

function sessionCookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return [`${DASHBOARD_COOKIE}=${value}`, `Path=${DASHBOARD_COOKIE_PATH}`, `Max-Age=${maxAgeSeconds}`, 'HttpOnly', 'SameSite=Strict', ...(secure ? ['Secure'] : [])].join('; ');
}

function isHttps(request: FastifyRequest): boolean {
  return request.protocol === 'https';
}

/** The dashboard, its login and logout, as a Fastify plugin. */
export function dashboardRoutes(deps: DashboardDeps) {
  const { context, adminToken, options } = deps;
  return async function register(app: FastifyInstance): Promise<void> {
    app.get('/admin/login', async (request, reply) => {
      const token = (request.query as Record<string, string | string[] | undefined>).token;
      // The token was in a URL: keep it out of caches and of the Referer of the next page.
      reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer');
      if (typeof token !== 'string' || !secretsEqual(token, adminToken)) {
        request.log.warn('dashboard login refused');
        return sendUnauthorized(reply, 'the token is not the admin token');
      }
      const value = dashboardSessionValue(adminToken, options.dashboardSessionSeconds);
      return reply.header('set-cookie', sessionCookie(value, options.dashboardSessionSeconds, isHttps(request))).redirect(DASHBOARD_PATH, 303);
    });

    app.get('/admin/logout', async (request, reply) =>
      reply.header('set-cookie', sessionCookie('', 0, isHttps(request))).header('cache-control', 'no-store').send({ status: 'logged_out' }),
    );

    const serverAdapter = new FastifyAdapter();
    serverAdapter.setBasePath(DASHBOARD_PATH);
    const adapterOptions = { readOnlyMode: options.dashboardReadOnly };
    createBullBoard({
      queues: [new BullMQAdapter(context.queue, adapterOptions), new BullMQAdapter(context.deadLetterQueue, adapterOptions)],
      serverAdapter,
      options: { uiConfig: { boardTitle: 'revoker' } },
    });
    await app.register(async (scope) => {
      scope.addHook('onRequest', requireDashboardAccess(adminToken));
      await scope.register(serverAdapter.registerPlugin(), { prefix: DASHBOARD_PATH });
    });
  };
}
