/**
 * The HTTP server of `revoker serve`: the signed webhook, the admin API, /metrics, the probes
 * and the dashboard, assembled on one Fastify instance.
 *
 * | route                            | auth                                         |
 * |----------------------------------|----------------------------------------------|
 * | POST /v1/revocations             | Standard Webhooks signature of a sender      |
 * | GET  /healthz, /readyz           | none                                         |
 * | GET  /v1/batches…, /v1/dead-letters | Bearer token, role read                   |
 * | POST /v1/batches…, /v1/dead-letters… | Bearer token, role operate               |
 * | GET  /metrics                    | Bearer token, role read                      |
 * | /admin/queues…                   | Bearer token or the login cookie, role read  |
 * | GET/POST /admin/login            | the form's token (POST only)                 |
 * | GET  /console…                   | the login cookie or Bearer token, role read  |
 * | POST /console/… (steer, start)   | cookie (same origin) or Bearer, role operate |
 * | GET/POST /console/login          | the form's token (POST only)                 |
 *
 * The console's own table of routes is in src/server/console/console-routes.ts.
 */
import { BlockList, isIP } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { AuditTrail } from '../audit/audit-trail.js';
import type { Config } from '../config/config.js';
import type { HostLookup } from '../events/callback-policy.js';
import { eventCallbackPolicy } from '../events/event-delivery.js';
import type { Context } from '../runtime/context.js';
import { adminRoutes } from './admin-routes.js';
import { AdminAuth } from './admin-auth.js';
import { AdminTokens, loadAdminTokens } from './admin-tokens.js';
import { consoleRoutes, type ConsoleOptions } from './console/console-routes.js';
import { dashboardRoutes } from './dashboard.js';
import { FailedAuthLimiter } from './failed-auth-limiter.js';
import { healthRoutes } from './health-routes.js';
import { handleNotFound, handleServerError } from './http-error.js';
import { registerProcessMetrics, registerQueueMetrics } from './metrics.js';
import { SenderQuota } from './sender-quota.js';
import { loadSenders } from './senders.js';
import { resolveServerOptions, type ServerOptions } from './server-options.js';
import { WebhookDeliveries } from './webhook-deliveries.js';
import { WebhookRoom } from './webhook-room.js';
import { webhookRoutes } from './webhook-route.js';
import { WebhookVerifier } from './webhook-verifier.js';

/**
 * TRUST_PROXY as the function Fastify asks for each hop (`address`, counted from the socket):
 * all, the first `n` hops, or the addresses in the listed ranges.
 */
export function proxyTrust(setting: Config['trustProxy']): (address: string, hop: number) => boolean {
  if (setting === true) return () => true;
  if (setting === false) return () => false;
  if (typeof setting === 'number') return (_address, hop) => hop < setting;
  const list = new BlockList();
  for (const entry of setting) {
    const [address = '', bits] = entry.split('/');
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(bits), family);
  }
  return (address) => isIP(address) !== 0 && list.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

/** What the server is built from. */
export interface ServerDeps {
  /** Redis, queues and stores; its `config` gives the tokens, senders and callback policy. The caller closes it after the server. */
  context: Context;
  /** The process logger (secrets redacted, see `createLogger`); Fastify logs through it. */
  logger: Logger;
  /** Registry served at /metrics; a fresh one when absent. Pass one to add worker metrics to it. */
  registry?: Registry;
  /** Name resolution for the webhook's callback host check (the system resolver when absent; tests inject one). */
  lookup?: HostLookup;
  /** Tunables of the incident console (its defaults when absent). */
  console?: Partial<ConsoleOptions>;
}

// Probes and scrapes arrive every few seconds: logged at debug so they do not drown the rest.
const QUIET_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * Builds the server (not listening yet: call `listen`). Throws a `ConfigError` when no admin
 * token is configured (the admin API and dashboard must never run open) or when
 * ADMIN_TOKENS_FILE or WEBHOOK_SENDERS_FILE cannot be read or is invalid. Without senders the
 * webhook answers 503 `webhooks_not_configured` and the rest works.
 */
export async function buildServer(deps: ServerDeps, options: Partial<ServerOptions> = {}): Promise<FastifyInstance> {
  const resolved = resolveServerOptions(options);
  const { context, logger } = deps;
  const config = context.config;
  const auth = new AdminAuth(new AdminTokens(loadAdminTokens(config)), new FailedAuthLimiter(resolved.failedAuth));
  const callbackPolicy = eventCallbackPolicy({ defaultUrl: config.eventsUrl, allowedOrigins: config.eventsAllowedOrigins, allowPrivate: config.eventsAllowPrivate });
  const senders = loadSenders(config, callbackPolicy.allowedOrigins);
  const audit = new AuditTrail(context.redis, context.keys, config.retentionDays, logger);
  const registry = deps.registry ?? new Registry();
  registerQueueMetrics(registry, context);
  if (resolved.processMetrics) registerProcessMetrics(registry);

  const trustProxy = proxyTrust(config.trustProxy);
  // Typed as Fastify's logger interface so the instance is a plain `FastifyInstance`.
  const loggerInstance: FastifyBaseLogger = logger;
  const app = Fastify({
    loggerInstance,
    // Fastify's own request lines carry the full URL, query included: the hook below logs the path only.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: resolved.maxAdminBodyBytes,
    // Whose X-Forwarded-For/-Proto to believe: the client address rate limits and logs use, and
    // whether the dashboard cookie is Secure. Off by default: anyone could claim any address.
    trustProxy,
  });
  app.setErrorHandler(handleServerError);
  app.setNotFoundHandler(handleNotFound);
  app.addHook('onResponse', async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const entry = { method: request.method, path, statusCode: reply.statusCode, clientAddress: request.ip, responseTimeMs: Math.round(reply.elapsedTime) };
    if (QUIET_PATHS.has(path)) request.log.debug(entry, 'request completed');
    else request.log.info(entry, 'request completed');
  });

  await app.register(healthRoutes({ redis: context.redis, readyTimeoutMs: resolved.readyTimeoutMs }));
  await app.register(
    webhookRoutes({
      context,
      verifier: new WebhookVerifier(senders),
      deliveries: new WebhookDeliveries(context.redis, context.keys, { answerSeconds: resolved.deliveryTtlSeconds, processingSeconds: resolved.processingTtlSeconds }),
      room: new WebhookRoom(context.redis, context.keys, config.highWaterJobs, resolved.processingTtlSeconds * 1000),
      quota: new SenderQuota(context.redis, context.keys),
      callbackPolicy,
      registry,
      ...(deps.lookup === undefined ? {} : { lookup: deps.lookup }),
      audit,
      options: resolved,
    }),
  );
  await app.register(adminRoutes({ context, auth, audit, options: resolved }));
  await app.register((scope, _options, done) => {
    scope.addHook('onRequest', auth.guard('read'));
    scope.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));
    done();
  });
  const trusting = config.trustProxy === true || (typeof config.trustProxy === 'number' && config.trustProxy > 0) || (Array.isArray(config.trustProxy) && config.trustProxy.length > 0);
  await app.register(dashboardRoutes({ context, auth, options: resolved, trustProxy: trusting }));
  await app.register(consoleRoutes({ context, auth, audit, options: resolved, trustProxy: trusting, logger, ...(deps.console === undefined ? {} : { console: deps.console }) }));
  logger.debug({ senders: senders.map((sender) => sender.name), adminTokenNames: auth.tokens.tokens.map((token) => ({ name: token.name, role: token.role })) }, 'server access configured');
  return app;
}
