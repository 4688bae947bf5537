/**
 * Probes, without authentication (they reveal nothing but liveness):
 * GET /healthz → 200 {"status":"ok"} while the process serves HTTP;
 * GET /readyz  → 200 {"status":"ready"} when Redis answers a PING in time, else 503.
 */
import type { FastifyInstance } from 'fastify';
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import { sendError } from './http-error.js';

/** Resolves true when Redis answers PING within `timeoutMs`, false otherwise (never rejects). */
export async function redisAnswers(redis: Redis, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    // The connection waits for a reconnect rather than failing (maxRetriesPerRequest null):
    // the timer decides, and a PING queued meanwhile is answered harmlessly later.
    return await Promise.race([redis.ping().then((answer) => answer === 'PONG', () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The probes as a Fastify plugin. */
export function healthRoutes(deps: { redis: Redis; readyTimeoutMs: number }) {
  return function register(app: FastifyInstance, _options: unknown, done: (error?: Error) => void): void {
    app.get('/healthz', () => ({ status: 'ok' }));
    app.get('/readyz', async (_request, reply) => {
      if (await redisAnswers(deps.redis, deps.readyTimeoutMs)) return { status: 'ready' };
      return sendError(reply, 503, 'redis_unavailable', `Redis did not answer a PING within ${deps.readyTimeoutMs} ms`);
    });
    done();
  };
}
