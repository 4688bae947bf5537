/**
 * Wiring: builds the Redis connections, queues and stores every command needs from a `Config`,
 * and closes them in reverse order.
 */
import type { Queue } from 'bullmq';
import { BatchControl } from '../batches/batch-control.js';
import { BatchStore } from '../batches/batch-store.js';
import type { Config } from '../config/config.js';
import type { DeadLetterData } from '../dlq/dead-letter.js';
import { DeadLetters } from '../dlq/dead-letters.js';
import { Keys } from '../queue/keys.js';
import type { RevocationJobData } from '../queue/revocation-job.js';
import { createDeadLetterQueue, createRevocationQueue } from '../queue/revocation-queue.js';
import { createRedis, type RedisClient } from '../redis/redis-connection.js';
import { ResultStore } from '../results/result-store.js';
import { ExistenceSnapshots } from '../results/existence-snapshot.js';

/** Everything a command talks to, over one Redis connection. */
export interface Context {
  config: Config;
  redis: RedisClient;
  keys: Keys;
  queue: Queue<RevocationJobData>;
  deadLetterQueue: Queue<DeadLetterData>;
  batches: BatchStore;
  results: ResultStore;
  /** Existence snapshots (CA listings taken before a batch's calls). */
  snapshots: ExistenceSnapshots;
  deadLetters: DeadLetters;
  control: BatchControl;
  /** Closes the queues and the connection. */
  close(): Promise<void>;
}

/** Opens a context. `name` labels the Redis connection. */
export function openContext(config: Config, name: string): Context {
  const redis = createRedis(config.redisUrl, { connectionName: name, cluster: config.redisCluster });
  const keys = new Keys(config.prefix);
  const queue = createRevocationQueue(redis, config.prefix);
  const deadLetterQueue = createDeadLetterQueue(redis, config.prefix);
  // Queues re-emit their connection's errors; the connection already reports them.
  queue.on('error', () => undefined);
  deadLetterQueue.on('error', () => undefined);
  const batches = new BatchStore(redis, keys, config.retentionDays);
  const results = new ResultStore(redis, keys, { minOutcomes: config.breakerMinOutcomes, notFoundPercent: config.breakerNotFoundPercent });
  const deadLetters = new DeadLetters(deadLetterQueue, queue, results, batches);
  const control = new BatchControl(redis, keys, batches, queue, results);
  return {
    config,
    redis,
    keys,
    queue,
    deadLetterQueue,
    batches,
    results,
    snapshots: new ExistenceSnapshots(redis, keys),
    deadLetters,
    control,
    async close() {
      await deadLetterQueue.close();
      await queue.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
