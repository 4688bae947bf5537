/**
 * Turns a stream of validated device requests into jobs, for any source (CSV, webhook, CA
 * listing): registers each chunk of devices in the batch and the revocation ledger in one script
 * (duplicates counted, devices another batch's job already covers subscribed to it), adds the new
 * jobs in bulk, and holds back while the queue's waiting count is above the high-water mark so
 * that Redis stays bounded however large the input.
 *
 * Crash safety: a chunk's REGISTER carries a request id, so sending it again (ioredis resends a
 * command whose reply a reconnect lost; this class retries a chunk that failed) changes nothing
 * twice. A producer that dies between REGISTER and `addBulk` leaves ledger entries pointing at
 * jobs that do not exist: the reconciler adds them once the producer's heartbeat has lapsed.
 */
import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { RevocationAction } from '../cloud/certificate-api.js';
import type { BatchStore } from '../batches/batch-store.js';
import { revocationId } from '../queue/job-id.js';
import { classOf, jobPriority, type BatchPriority } from '../queue/priority.js';
import type { RevocationJobData } from '../queue/revocation-job.js';
import { countWaitingJobs, moreUrgent } from '../queue/revocation-queue.js';
import type { DeviceRequest, InputItem, RejectedRow } from './device-request.js';
import { pendingPlaceholder, PRODUCER_HEARTBEAT_MS, type RegisterAnswer, type ResultStore } from '../results/result-store.js';

/** Options of `Enqueuer`. */
export interface EnqueuerOptions {
  /** Jobs per `addBulk`. */
  chunkSize: number;
  /** Pause reading while more jobs than this wait; 0 disables flow control. */
  highWaterJobs: number;
  /** How often to look again while above the mark. */
  flowCheckMs: number;
  /** Tries of one chunk's REGISTER and addBulk before giving up (a Redis outage). */
  chunkTries: number;
}

/** Defaults of `EnqueuerOptions`. */
export const ENQUEUER_DEFAULTS: EnqueuerOptions = {
  // 500: large enough to amortise round trips, small enough to keep Lua scripts short.
  chunkSize: 500,
  highWaterJobs: 50_000,
  flowCheckMs: 200,
  chunkTries: 5,
};

/** Progress, reported after every chunk. */
export interface EnqueueProgress {
  read: number;
  accepted: number;
  rejected: number;
  duplicates: number;
}

/** What an enqueue did (the CLI's `--json` summary plus the batch id). */
export interface EnqueueSummary extends EnqueueProgress {
  batchId: string;
  /** True when the batch was cancelled while enqueuing and reading stopped early. */
  stoppedEarly: boolean;
}

/** Builds the data of a revocation job (the reconciler and redrive build the same). */
export function revocationJobData(batchId: string, device: { mqttInstanceId: string; caSn: string; deviceSn: string }, action: RevocationAction, rid: string): RevocationJobData {
  return { batchId, revocationId: rid, mqttInstanceId: device.mqttInstanceId, caSn: device.caSn, deviceSn: device.deviceSn, action, history: [], firstAttemptAt: null, callIntent: null };
}

/** Enqueues device requests into a batch. */
export class Enqueuer {
  private readonly options: EnqueuerOptions;

  constructor(
    private readonly queue: Queue<RevocationJobData>,
    private readonly batches: BatchStore,
    private readonly results: ResultStore,
    options: Partial<EnqueuerOptions> = {},
  ) {
    this.options = { ...ENQUEUER_DEFAULTS, ...options };
  }

  /**
   * Reads `items` to the end, enqueueing every valid device once, then marks the batch fully
   * enqueued. Rejected rows are stored with the batch.
   */
  async enqueue(batchId: string, action: RevocationAction, items: AsyncIterable<InputItem> | Iterable<InputItem>, onProgress?: (progress: EnqueueProgress) => void): Promise<EnqueueSummary> {
    const priority = (await this.batches.get(batchId))?.priority ?? 'normal';
    // Round-robin position of the next device: a batch joins its class where it is being served.
    const position = await this.batches.servingPosition(priority);
    await this.batches.heartbeat(batchId);
    // A slow input (a pipe, a large upload) must not look like a dead producer to the reconciler.
    const heartbeat = setInterval(() => void this.batches.heartbeat(batchId).catch(() => undefined), PRODUCER_HEARTBEAT_MS / 3);
    heartbeat.unref();
    try {
      return await this.read(batchId, action, items, priority, position, onProgress);
    } finally {
      clearInterval(heartbeat);
    }
  }

  private async read(batchId: string, action: RevocationAction, items: AsyncIterable<InputItem> | Iterable<InputItem>, priority: BatchPriority, startPosition: number, onProgress?: (progress: EnqueueProgress) => void): Promise<EnqueueSummary> {
    const progress: EnqueueProgress = { read: 0, accepted: 0, rejected: 0, duplicates: 0 };
    let devices: DeviceRequest[] = [];
    let rejections: RejectedRow[] = [];
    let stoppedEarly = false;
    let position = startPosition;

    const flush = async (): Promise<boolean> => {
      if (rejections.length > 0) {
        await this.batches.addRejected(batchId, rejections);
        progress.rejected += rejections.length;
        rejections = [];
      }
      if (devices.length > 0) {
        if (!(await this.waitForRoom(batchId))) return false;
        position = await this.addChunk(batchId, action, devices, progress, priority, position);
        devices = [];
      }
      onProgress?.({ ...progress });
      return true;
    };

    for await (const item of items) {
      progress.read += 1;
      if (item.kind === 'device') devices.push(item.request);
      else rejections.push(item.row);
      if (devices.length >= this.options.chunkSize || rejections.length >= this.options.chunkSize) {
        if (!(await flush())) {
          stoppedEarly = true;
          break;
        }
      }
    }
    if (!stoppedEarly && !(await flush())) stoppedEarly = true;
    await this.results.markEnqueued(batchId);
    return { batchId, ...progress, stoppedEarly };
  }

  /** Waits while the queue is above the high-water mark; false if the batch was cancelled meanwhile. */
  private async waitForRoom(batchId: string): Promise<boolean> {
    if (this.options.highWaterJobs <= 0) return true;
    for (;;) {
      const { state } = await this.batches.state(batchId);
      if (state === 'cancelled') return false;
      const waiting = await countWaitingJobs(this.queue);
      if (waiting < this.options.highWaterJobs) return true;
      // Waiting for room is not dying: keep the reconciler from cutting the batch short.
      await this.batches.heartbeat(batchId);
      await new Promise((resolve) => setTimeout(resolve, this.options.flowCheckMs));
    }
  }

  /** Runs `step` up to `chunkTries` times (a Redis error mid-chunk); the steps are idempotent. */
  private async retrying<T>(step: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await step();
      } catch (error) {
        if (attempt >= this.options.chunkTries) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
      }
    }
  }

  private async addChunk(batchId: string, action: RevocationAction, devices: DeviceRequest[], progress: EnqueueProgress, priority: BatchPriority, startPosition: number): Promise<number> {
    let position = startPosition;
    const entries = devices.map((device) => ({
      device,
      field: revocationId(device, action),
      instance: device.mqttInstanceId,
      placeholder: pendingPlaceholder({ batchId, mqttInstanceId: device.mqttInstanceId, caSn: device.caSn, deviceSn: device.deviceSn, action }),
    }));
    // One request id per chunk: a retry of this chunk gets the first answer back.
    const requestId = randomUUID();
    const answers = await this.retrying(() => this.results.registerRevocations(batchId, entries, requestId));
    const toAdd: { name: string; data: RevocationJobData; opts: { jobId: string; priority: number } }[] = [];
    const followed: { answer: RegisterAnswer; position: number }[] = [];
    answers.forEach((answer, index) => {
      const entry = entries[index];
      if (entry === undefined) return;
      if (answer.flag === 'duplicate') {
        progress.duplicates += 1;
        return;
      }
      progress.accepted += 1;
      if (answer.flag === 'queue') {
        toAdd.push({ name: 'revoke', data: revocationJobData(batchId, entry.device, action, entry.field), opts: { jobId: answer.jobId, priority: jobPriority(priority, position++) } });
      } else {
        followed.push({ answer, position: position++ });
      }
    });
    // BullMQ ignores an add whose job id exists, so a retried addBulk adds nothing twice.
    if (toAdd.length > 0) await this.retrying(() => this.queue.addBulk(toAdd));
    if (followed.length > 0) await this.follow(followed, priority);
    return position;
  }

  /**
   * Another batch's job now also serves this batch: an urgent batch must not wait behind a bulk
   * job's priority (raise it), and a job parked because its batches are paused must run now.
   */
  private async follow(followed: { answer: RegisterAnswer; position: number }[], priority: BatchPriority): Promise<void> {
    // A bulk batch never raises anything: read the followed jobs' priorities only when it could.
    const candidates = priority === 'bulk' ? followed.filter((entry) => entry.answer.flag === 'following_parked') : followed;
    if (candidates.length === 0) return;
    const priorities = await this.results.jobPriorities(candidates.map((entry) => entry.answer.jobId));
    for (const [index, { answer, position }] of candidates.entries()) {
      const current = priorities[index];
      // Not added yet (its producer is between REGISTER and addBulk): it runs at that producer's priority.
      if (current === null || current === undefined) continue;
      const raise = moreUrgent(priority, classOf(current));
      if (!raise && answer.flag !== 'following_parked') continue;
      const job = await this.queue.getJob(answer.jobId);
      if (job === undefined) continue;
      if (raise) await job.changePriority({ priority: jobPriority(priority, position) }).catch(() => undefined);
      if (answer.flag === 'following_parked') await job.promote().catch(() => undefined);
    }
  }
}
