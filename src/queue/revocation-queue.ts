/**
 * The BullMQ queues and the job options revoker uses.
 */
import { Queue, type JobsOptions } from 'bullmq';
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import { DEAD_LETTER_QUEUE, REVOCATION_QUEUE } from './keys.js';
import { BATCH_PRIORITIES, type BatchPriority } from './priority.js';
import type { RevocationJobData } from './revocation-job.js';
import type { DeadLetterData } from '../dlq/dead-letter.js';

/**
 * Options of every revocation job. BullMQ's own attempts only cover failures of revoker itself
 * (a Redis outage while writing a record); API retries, throttling and backoff are the
 * worker's, counted in the job's history. A job that ends in BullMQ's failed set anyway is
 * retried by the reconciler (src/reconcile).
 */
export const REVOCATION_JOB_OPTIONS: JobsOptions = {
  removeOnComplete: true,
  removeOnFail: false,
  attempts: 25,
  backoff: { type: 'exponential', delay: 1_000 },
};

/** The queue of revocation jobs. */
export function createRevocationQueue(connection: Redis, prefix: string): Queue<RevocationJobData> {
  return new Queue<RevocationJobData>(REVOCATION_QUEUE, { connection, prefix, defaultJobOptions: REVOCATION_JOB_OPTIONS });
}

/**
 * Jobs waiting to be taken. Every revocation job is prioritized (batch priorities), and BullMQ
 * keeps prioritized jobs apart from its wait list: count both.
 */
export function countWaitingJobs(queue: Queue<RevocationJobData>): Promise<number> {
  return queue.getJobCountByTypes('wait', 'prioritized');
}

/** The dead-letter queue: nobody consumes it; entries wait for an operator to redrive or purge. */
export function createDeadLetterQueue(connection: Redis, prefix: string): Queue<DeadLetterData> {
  return new Queue<DeadLetterData>(DEAD_LETTER_QUEUE, { connection, prefix, defaultJobOptions: { removeOnComplete: true } });
}

/** True when class `a` is served before class `b` (a job shared by batches runs at the most urgent one's). */
export function moreUrgent(a: BatchPriority, b: BatchPriority): boolean {
  return BATCH_PRIORITIES.indexOf(a) < BATCH_PRIORITIES.indexOf(b);
}
