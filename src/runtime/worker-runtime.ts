/**
 * A complete worker process (what `revoker worker` and `workers/worker.ts` run): cloud client,
 * shared rate gate, adaptive rate, and the BullMQ worker, with an orderly close.
 */
import type { Logger } from 'pino';
import { CertificateApi } from '../cloud/certificate-api.js';
import { rateLimitKeyFor, type Config } from '../config/config.js';
import { EventDelivery } from '../events/event-delivery.js';
import { AdaptiveRate } from '../limiter/adaptive-rate.js';
import { BottleneckRateGate } from '../limiter/bottleneck-rate-gate.js';
import { createRedis } from '../redis/redis-connection.js';
import { RevocationWorker, type RevocationWorkerDeps, type RevocationWorkerOptions } from '../worker/revocation-worker.js';
import { openContext, type Context } from './context.js';

/** A running worker and how to stop it. */
export interface WorkerRuntime {
  worker: RevocationWorker;
  context: Context;
  gate: BottleneckRateGate;
  rateKey: string;
  /** Stops taking jobs, finishes in-flight calls, closes everything in reverse order. */
  close(): Promise<void>;
}

/** Starts a worker from configuration. */
export async function startWorkerRuntime(config: Config, log: Logger, overrides: Partial<RevocationWorkerOptions> & { onCall?: RevocationWorkerDeps['onCall'] } = {}): Promise<WorkerRuntime> {
  const context = openContext(config, 'revoker-worker');
  const connection = createRedis(config.redisUrl, { connectionName: 'revoker-worker-bullmq', cluster: config.redisCluster });
  const api = new CertificateApi({ endpoint: config.apiEndpoint, protocol: config.apiProtocol, timeoutMs: config.apiTimeoutMs, credentials: config.credentials });
  // RATE_LIMIT_KEY, else the AccessKey id of whatever the credential chain resolves to.
  const rateKey = config.rateLimitKey ?? rateLimitKeyFor(await api.accessKeyId());
  const gate = new BottleneckRateGate(context.redis, { id: context.keys.limiterId(rateKey), ratePerSecond: config.ratePerSecond, permitExpirationMs: config.apiTimeoutMs, guardKey: context.keys.rateGuard(rateKey) }, log);
  const adaptive = new AdaptiveRate(context.redis, context.keys, rateKey, gate, { capPerSecond: config.ratePerSecond }, log);
  // Start from the account's current adaptive rate, not the cap, if another worker lowered it.
  const shared = await context.redis.get(context.keys.currentRate(rateKey));
  if (shared !== null && Number(shared) > 0 && Number(shared) < config.ratePerSecond) await gate.setRatePerSecond(Number(shared));
  else await gate.setRatePerSecond(config.ratePerSecond);
  adaptive.start();
  const { onCall, ...options } = overrides;
  const worker = new RevocationWorker(
    { connection, redis: context.redis, keys: context.keys, api, gate, adaptive, results: context.results, batches: context.batches, deadLetters: context.deadLetters, rateKey, log, ...(onCall ? { onCall } : {}) },
    { concurrency: config.workerConcurrency, maxAttempts: config.maxAttempts, lockDurationMs: config.jobLockMs, retry: { baseMs: config.retryBaseMs, maxMs: config.retryMaxMs }, ...options },
  );
  worker.start();
  await worker.waitUntilReady();
  // Completion events ride on every worker process: whichever moves an outbox entry first queues it.
  const events = new EventDelivery(context.redis, connection, context.keys, context.batches, { defaultUrl: config.eventsUrl, secret: config.eventsSecret, retryBaseMs: config.eventsRetryBaseMs }, log);
  events.start();
  return {
    worker,
    context,
    gate,
    rateKey,
    async close() {
      await worker.close();
      await events.close();
      adaptive.stop();
      await gate.close();
      await connection.quit().catch(() => connection.disconnect());
      await context.close();
    },
  };
}
