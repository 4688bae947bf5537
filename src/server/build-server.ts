/**
 * The HTTP server of `revoker serve`: the signed webhook, the admin API, /metrics, the probes
 * and the dashboard, assembled on one Fastify instance.
 *
 * | route                          | auth                          |
 * |--------------------------------|-------------------------------|
 * | POST /v1/revocations           | Standard Webhooks signature   |
 * | GET  /healthz, /readyz         | none                          |
 * | /v1/batches…, /v1/dead-letters… | Bearer ADMIN_TOKEN           |
 * | GET  /metrics                  | Bearer ADMIN_TOKEN            |
 * | /admin/queues…                 | Bearer, or the login cookie   |
 * | GET  /admin/login?token=       | the token itself              |
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { ConfigError } from '../config/config.js';
import type { Context } from '../runtime/context.js';
import { adminRoutes } from './admin-routes.js';
import { requireAdminToken } from './admin-auth.js';
import { dashboardRoutes } from './dashboard.js';
import { healthRoutes } from './health-routes.js';
import { handleNotFound, handleServerError } from './http-error.js';
import { registerProcessMetrics, registerQueueMetrics } from './metrics.js';
import { resolveServerOptions, type ServerOptions } from './server-options.js';
import { WebhookDeliveries } from './webhook-deliveries.js';
import { webhookRoutes } from './webhook-route.js';
import { WebhookVerifier } from './webhook-verifier.js';

/** What the server is built from. */
export interface ServerDeps {
  /** Redis, queues and stores; its `config` gives ADMIN_TOKEN and WEBHOOK_SECRETS. The caller closes it after the server. */
  context: Context;
  /** The process logger (secrets redacted, see `createLogger`); Fastify logs through it. */
  logger: Logger;
  /** Registry served at /metrics; a fresh one when absent. Pass one to add worker metrics to it. */
  registry?: Registry;
}

// Probes and scrapes arrive every few seconds: logged at debug so they do not drown the rest.
const QUIET_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * Builds the server (not listening yet: call `listen`). Throws a `ConfigError` when ADMIN_TOKEN
 * is not set: the admin API and dashboard must never run open. Without WEBHOOK_SECRETS the
 * webhook answers 503 `webhooks_not_configured` and the rest works.
 */
export async function buildServer(deps: ServerDeps, options: Partial<ServerOptions> = {}): Promise<FastifyInstance> {
  const resolved = resolveServerOptions(options);
  const { context, logger } = deps;
  const adminToken = context.config.adminToken;
  if (adminToken === null || adminToken === '') {
    throw new ConfigError('ADMIN_TOKEN', 'ADMIN_TOKEN must be set to start the server');
  }
  const registry = deps.registry ?? new Registry();
  registerQueueMetrics(registry, context);
  if (resolved.processMetrics) registerProcessMetrics(registry);

  // Typed as Fastify's logger interface so the instance is a plain `FastifyInstance`.
  const loggerInstance: FastifyBaseLogger = logger;
  const app = Fastify({
    loggerInstance,
    // Fastify's own request lines carry the full URL, which for /admin/login holds the token:
    // the hook below logs the path only.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: resolved.maxAdminBodyBytes,
  });
  app.setErrorHandler(handleServerError);
  app.setNotFoundHandler(handleNotFound);
  app.addHook('onResponse', async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const entry = { method: request.method, path, statusCode: reply.statusCode, responseTimeMs: Math.round(reply.elapsedTime) };
    if (QUIET_PATHS.has(path)) request.log.debug(entry, 'request completed');
    else request.log.info(entry, 'request completed');
  });

  await app.register(healthRoutes({ redis: context.redis, readyTimeoutMs: resolved.readyTimeoutMs }));
  await app.register(
    webhookRoutes({
      context,
      verifier: new WebhookVerifier(context.config.webhookSecrets),
      deliveries: new WebhookDeliveries(context.redis, context.keys, { answerSeconds: resolved.deliveryTtlSeconds, processingSeconds: resolved.processingTtlSeconds }),
      options: resolved,
    }),
  );
  await app.register(adminRoutes({ context, adminToken, options: resolved }));
  await app.register((scope, _options, done) => {
    scope.addHook('onRequest', requireAdminToken(adminToken));
    scope.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));
    done();
  });
  await app.register(dashboardRoutes({ context, adminToken, options: resolved }));
  return app;
}
