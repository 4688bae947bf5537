/**
 * The dead-letter queue: list, redrive (back onto the revocation queue with fresh attempts),
 * purge.
 */
import type { Job, Queue } from 'bullmq';
import type { BatchStore } from '../batches/batch-store.js';
import { deadLetterJobId } from '../queue/job-id.js';
import { jobPriority } from '../queue/priority.js';
import type { RevocationJobData } from '../queue/revocation-job.js';
import { pendingPlaceholder, type ResultStore } from '../results/result-store.js';
import type { DeadLetterData } from './dead-letter.js';

/** A dead letter as listed. */
export interface DeadLetterEntry extends DeadLetterData {
  id: string;
}

/** What `redrive` did. */
export interface RedriveSummary {
  redriven: number;
  /** Entries skipped because their batch is gone (expired). */
  skipped: number;
}

/** Operations on the dead-letter queue. */
export class DeadLetters {
  constructor(
    private readonly deadLetterQueue: Queue<DeadLetterData>,
    private readonly revocationQueue: Queue<RevocationJobData>,
    private readonly results: ResultStore,
    private readonly batches: BatchStore,
  ) {}

  /** Dead-letters one device. Idempotent: one entry per device per batch. */
  async add(data: DeadLetterData): Promise<void> {
    await this.deadLetterQueue.add('dead-letter', data, { jobId: deadLetterJobId(data.batchId, data.jobId) });
  }

  /** Pages through dead letters, optionally of one batch only. */
  async *entries(batchId?: string, pageSize = 500): AsyncGenerator<DeadLetterEntry> {
    for (let start = 0; ; start += pageSize) {
      const jobs = await this.deadLetterQueue.getJobs(['waiting', 'prioritized'], start, start + pageSize - 1, true);
      for (const job of jobs) {
        if (job?.id === undefined) continue;
        if (batchId !== undefined && job.data.batchId !== batchId) continue;
        yield { ...job.data, id: job.id };
      }
      if (jobs.length < pageSize) return;
    }
  }

  /** Up to `limit` dead letters. */
  async list(batchId?: string, limit = 100): Promise<DeadLetterEntry[]> {
    const out: DeadLetterEntry[] = [];
    for await (const entry of this.entries(batchId)) {
      out.push(entry);
      if (out.length >= limit) break;
    }
    return out;
  }

  /** Number of dead letters (all batches). */
  count(): Promise<number> {
    return this.deadLetterQueue.getWaitingCount();
  }

  /**
   * Puts dead letters back on the revocation queue with a fresh history, reopening their result
   * records (the batch counts them as pending again).
   */
  async redrive(batchId?: string): Promise<RedriveSummary> {
    let redriven = 0;
    let skipped = 0;
    // Collect ids first: removing while paging would shift the pages.
    const ids: string[] = [];
    for await (const entry of this.entries(batchId)) ids.push(entry.id);
    for (const id of ids) {
      const job: Job<DeadLetterData> | undefined = await this.deadLetterQueue.getJob(id);
      if (!job) continue;
      const data = job.data;
      const placeholder = pendingPlaceholder({ batchId: data.batchId, mqttInstanceId: data.mqttInstanceId, caSn: data.caSn, deviceSn: data.deviceSn, action: data.action });
      const undone = await this.results.reopen(data.batchId, data.jobId, placeholder);
      if (undone === null && (await this.results.get(data.batchId, data.jobId)) === null) {
        skipped += 1;
        await job.remove();
        continue;
      }
      const fresh: RevocationJobData = {
        batchId: data.batchId,
        mqttInstanceId: data.mqttInstanceId,
        caSn: data.caSn,
        deviceSn: data.deviceSn,
        action: data.action,
        history: [],
        firstAttemptAt: null,
      };
      // Redriven devices go to the front of their batch's class: they have waited long enough.
      const priority = (await this.batches.get(data.batchId))?.priority ?? 'normal';
      await this.revocationQueue.add('revoke', fresh, { jobId: data.jobId, priority: jobPriority(priority, await this.batches.servingPosition(priority)) });
      await job.remove();
      redriven += 1;
    }
    return { redriven, skipped };
  }

  /** Deletes dead letters (their result records stay `failed`). */
  async purge(batchId?: string): Promise<number> {
    const ids: string[] = [];
    for await (const entry of this.entries(batchId)) ids.push(entry.id);
    for (const id of ids) await this.deadLetterQueue.remove(id);
    return ids.length;
  }
}
