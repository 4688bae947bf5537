/**
 * The dead-letter queue: list, redrive, purge. One entry per revocation job, listing the batches
 * subscribed to it: each has a `failed` record from it, and a redrive brings them all back.
 */
import type { Job, Queue } from 'bullmq';
import type { BatchStore } from '../batches/batch-store.js';
import { wakeJobs } from '../batches/job-waker.js';
import { deadLetterJobId, revocationIdOf } from '../queue/job-id.js';
import { classOf, jobPriority, type BatchPriority } from '../queue/priority.js';
import { REDRIVEN_CODE, type RevocationJobData } from '../queue/revocation-job.js';
import { moreUrgent } from '../queue/revocation-queue.js';
import { pendingPlaceholder, type ResultStore } from '../results/result-store.js';
import type { DeadLetterData } from './dead-letter.js';

/** A dead letter as listed. */
export interface DeadLetterEntry extends DeadLetterData {
  id: string;
}

/** What `redrive` did. */
export interface RedriveSummary {
  redriven: number;
  /** Entries skipped because none of their batches could take the device back (expired, cancelled). */
  skipped: number;
}

/** The batches a dead letter concerns (entries of before the ledger name one). */
export function subscribersOf(data: DeadLetterData): string[] {
  return data.subscribers !== undefined && data.subscribers.length > 0 ? data.subscribers : [data.batchId];
}

/** Operations on the dead-letter queue. */
export class DeadLetters {
  constructor(
    private readonly deadLetterQueue: Queue<DeadLetterData>,
    private readonly revocationQueue: Queue<RevocationJobData>,
    private readonly results: ResultStore,
    private readonly batches: BatchStore,
  ) {}

  /** Dead-letters one revocation job. Idempotent: one entry per job. */
  async add(data: DeadLetterData): Promise<void> {
    await this.deadLetterQueue.add('dead-letter', data, { jobId: deadLetterJobId(data.jobId) });
  }

  /** Adds batches to a dead letter's subscribers (they got a `failed` record from the same job). */
  async addSubscribers(jobId: string, batchIds: readonly string[]): Promise<void> {
    const job = await this.deadLetterQueue.getJob(deadLetterJobId(jobId));
    if (job === undefined) return;
    const subscribers = [...new Set([...subscribersOf(job.data), ...batchIds])];
    await job.updateData({ ...job.data, subscribers });
  }

  /**
   * Pages through dead letters, optionally those a batch subscribes to only (each then shows that
   * batch as its `batchId`, and every subscriber in `subscribers`).
   */
  async *entries(batchId?: string, pageSize = 500): AsyncGenerator<DeadLetterEntry> {
    for (let start = 0; ; start += pageSize) {
      const jobs = await this.deadLetterQueue.getJobs(['waiting', 'prioritized'], start, start + pageSize - 1, true);
      for (const job of jobs) {
        if (job?.id === undefined) continue;
        const subscribers = subscribersOf(job.data);
        if (batchId !== undefined && !subscribers.includes(batchId)) continue;
        yield { ...job.data, subscribers, batchId: batchId ?? job.data.batchId, id: job.id };
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
   * Brings dead letters back: reopens the `failed` record in every subscriber (still open or
   * completed) and opens a new job generation with fresh attempts, or subscribes them to the
   * revocation's job when another batch has one open. The history is kept, with a `Redriven`
   * marker that restarts the attempt count: a call whose answer was lost before the redrive still
   * decides what a later "not registered" means.
   *
   * Order, for crashes: reopen + open in the ledger (one script), add the job, remove the dead
   * letter. A crash before the add leaves pending records and a job id that does not exist: the
   * reconciler adds it, with this dead letter's history (the ledger names it).
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
      const rid = data.revocationId ?? revocationIdOf(data.jobId);
      const candidates = subscribersOf(data).map((subscriber) => ({
        batchId: subscriber,
        placeholder: pendingPlaceholder({ batchId: subscriber, mqttInstanceId: data.mqttInstanceId, caSn: data.caSn, deviceSn: data.deviceSn, action: data.action }),
      }));
      const lostAnswer = data.history.some((entry) => entry.uncertain);
      const answer = await this.results.redrive(rid, id, candidates, lostAnswer, data.jobId);
      if (answer.flag === 'none') {
        skipped += 1;
        await job.remove();
        continue;
      }
      const priority = await this.mostUrgent(answer.reopened);
      // Redriven devices go to the front of their class: they have waited long enough.
      const bullPriority = jobPriority(priority, await this.batches.servingPosition(priority));
      if (answer.flag === 'queue') {
        await this.revocationQueue.add('revoke', redrivenJobData(data, rid, answer.reopened), { jobId: answer.jobId, priority: bullPriority });
      } else {
        const open = await this.revocationQueue.getJob(answer.jobId);
        if (open !== undefined && moreUrgent(priority, classOf(open.priority))) await open.changePriority({ priority: bullPriority }).catch(() => undefined);
        // The open job is parked (its batches paused): a running batch wants it now.
        if (answer.flag === 'following_parked') await wakeJobs(this.revocationQueue, [answer.jobId], { mayBeParking: (active) => this.results.markedParked(active) });
      }
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

  /** The dead letter a redrive opened a job from (what the reconciler rebuilds a lost add with). */
  async get(id: string): Promise<DeadLetterData | null> {
    return (await this.deadLetterQueue.getJob(id))?.data ?? null;
  }

  private async mostUrgent(batchIds: readonly string[]): Promise<BatchPriority> {
    let best: BatchPriority = 'bulk';
    for (const batchId of batchIds) {
      const priority = (await this.batches.get(batchId))?.priority ?? 'normal';
      if (moreUrgent(priority, best)) best = priority;
    }
    return best;
  }
}

/**
 * The data of the job a redrive opens: the dead letter's device and history, a `Redriven` marker
 * (attempts count again from there), and a reopened batch as the opener.
 */
export function redrivenJobData(data: DeadLetterData, rid: string, reopened: readonly string[]): RevocationJobData {
  const opener = reopened.includes(data.batchId) ? data.batchId : (reopened[0] ?? data.batchId);
  return {
    batchId: opener,
    revocationId: rid,
    mqttInstanceId: data.mqttInstanceId,
    caSn: data.caSn,
    deviceSn: data.deviceSn,
    action: data.action,
    history: [...data.history, { at: new Date().toISOString(), code: REDRIVEN_CODE, httpStatus: null, requestId: null, counted: false, uncertain: false, message: 'redriven from the dead-letter queue' }],
    firstAttemptAt: data.firstAttemptAt,
    callIntent: null,
  };
}
