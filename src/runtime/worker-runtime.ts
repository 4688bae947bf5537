/**
 * A complete worker process (what `revoker worker` and `workers/worker.ts` run): cloud client,
 * shared rate gate, adaptive rate, and the BullMQ worker, with an orderly close.
 */
import type { Logger } from 'pino';
import { CertificateApi } from '../cloud/certificate-api.js';
import type { Config } from '../config/config.js';
import { EventDelivery } from '../events/event-delivery.js';
import { AdaptiveRate } from '../limiter/adaptive-rate.js';
import type { BudgetGate } from '../limiter/budget-gate.js';
import { Reconciler } from '../reconcile/reconciler.js';
import { createRedis } from '../redis/redis-connection.js';
import { RedisClock } from '../redis/redis-clock.js';
import { RevocationWorker, type RevocationWorkerDeps, type RevocationWorkerOptions } from '../worker/revocation-worker.js';
import { openContext, type Context } from './context.js';
import { openBudgetGate } from './open-budget-gate.js';

/** A running worker and how to stop it. */
export interface WorkerRuntime {
  worker: RevocationWorker;
  context: Context;
  gate: BudgetGate;
  rateKey: string;
  /** Stops taking jobs, finishes in-flight calls, closes everything in reverse order. */
  close(): Promise<void>;
}

/** Starts a worker from configuration. */
export async function startWorkerRuntime(config: Config, log: Logger, overrides: Partial<RevocationWorkerOptions> & { onCall?: RevocationWorkerDeps['onCall'] } = {}): Promise<WorkerRuntime> {
  const context = openContext(config, 'revoker-worker');
  const connection = createRedis(config.redisUrl, { connectionName: 'revoker-worker-bullmq', cluster: config.redisCluster });
  const api = new CertificateApi({ endpoint: config.apiEndpoint, protocol: config.apiProtocol, timeoutMs: config.apiTimeoutMs, credentials: config.credentials });
  let opened;
  try {
    opened = await openBudgetGate(context, api, log);
  } catch (error) {
    await context.close();
    throw error;
  }
  const { gate, rateKey } = opened;
  const adaptive = new AdaptiveRate(context.redis, context.keys, rateKey, gate, { capPerSecond: config.ratePerSecond }, log);
  // Start from the account's current adaptive rate, not the cap, if another worker lowered it.
  const shared = await context.redis.get(context.keys.currentRate(rateKey));
  if (shared !== null && Number(shared) > 0 && Number(shared) < config.ratePerSecond) await gate.setRatePerSecond(Number(shared));
  else await gate.setRatePerSecond(config.ratePerSecond);
  adaptive.start();
  const { onCall, ...options } = overrides;
  const worker = new RevocationWorker(
    { connection, redis: context.redis, keys: context.keys, api, gate, adaptive, results: context.results, batches: context.batches, deadLetters: context.deadLetters, rateKey, egress: gate.egress(), snapshots: context.snapshots, clock: new RedisClock(context.redis), log, ...(onCall ? { onCall } : {}) },
    { concurrency: config.workerConcurrency, maxAttempts: config.maxAttempts, lockDurationMs: config.jobLockMs, retry: { baseMs: config.retryBaseMs, maxMs: config.retryMaxMs }, ...options },
  );
  worker.start();
  await worker.waitUntilReady();
  // Completion events ride on every worker process: whichever moves an outbox entry first queues it.
  const events = new EventDelivery(context.redis, connection, context.keys, context.batches, { defaultUrl: config.eventsUrl, secret: config.eventsSecret, retryBaseMs: config.eventsRetryBaseMs, allowedOrigins: config.eventsAllowedOrigins, allowPrivate: config.eventsAllowPrivate }, log);
  events.start();
  // One worker at a time (a lock) repairs what crashes left: jobs that never reached BullMQ, failed jobs, stopped producers.
  const reconciler = new Reconciler({ redis: context.redis, keys: context.keys, queue: context.queue, batches: context.batches, results: context.results, deadLetters: context.deadLetters, log });
  reconciler.start();
  return {
    worker,
    context,
    gate,
    rateKey,
    async close() {
      await reconciler.close();
      await worker.close();
      await events.close();
      adaptive.stop();
      await gate.close();
      await connection.quit().catch(() => connection.disconnect());
      await context.close();
    },
  };
}
