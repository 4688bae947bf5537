/**
 * Writes a revocation job's data (call intents, attempts) only while this run holds the job's
 * lock (docs/DESIGN.md §3, "Write-ahead call intents"). BullMQ's own `updateData` does not check
 * the lock, and a run whose lock lapsed keeps running: its write could replace the intent of the
 * run that took the job over, which would then take "not registered" for `not_found` after the
 * first run's call removed the certificate. A run that finds it lost the lock stops at once
 * (`LockLostError`), before calling, and leaves the job to its new holder.
 */
import type { Job } from 'bullmq';
import type { Keys } from '../queue/keys.js';
import type { RevocationJobData } from '../queue/revocation-job.js';
import { loadLua } from '../redis/lua-script.js';
import type { RedisClient } from '../redis/redis-connection.js';

const WRITE = loadLua(import.meta.url, 'lua/write-job-data.lua');

type WriterClient = RedisClient & { revokerWriteJobData(lock: string, job: string, token: string, data: string): Promise<number> };

/** This run lost the job's lock: another worker has it (or will); this run must stop. */
export class LockLostError extends Error {
  constructor(jobId: string) {
    super(`job ${jobId}: this run lost its lock (another worker took the job over); it stops without calling`);
    this.name = 'LockLostError';
  }
}

/** Lock-checked writes of job data. */
export class JobDataWriter {
  private readonly redis: WriterClient;

  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
  ) {
    this.redis = redis as WriterClient;
    if (typeof this.redis.revokerWriteJobData !== 'function') redis.defineCommand('revokerWriteJobData', { numberOfKeys: 2, lua: WRITE });
  }

  /** Replaces the job's data if `token` still holds its lock; throws LockLostError otherwise. */
  async write(job: Job<RevocationJobData>, token: string | undefined, data: RevocationJobData): Promise<void> {
    const jobId = job.id ?? '';
    if (token === undefined) {
      // No token (a job run outside a worker): nothing to check against.
      await job.updateData(data);
      return;
    }
    const jobKey = `${this.keys.jobKeyPrefix()}${jobId}`;
    const written = await this.redis.revokerWriteJobData(`${jobKey}:lock`, jobKey, token, JSON.stringify(data));
    if (written !== 1) throw new LockLostError(jobId);
    job.data = data;
  }
}
