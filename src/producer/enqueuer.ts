/**
 * Turns a stream of validated device requests into jobs, for any source (CSV, webhook, CA
 * listing): registers each device in the batch (duplicates counted, not queued), adds jobs in
 * bulk, and holds back while the queue's waiting count is above the high-water mark so that
 * Redis stays bounded however large the input.
 */
import type { Queue } from 'bullmq';
import type { RevocationAction } from '../cloud/certificate-api.js';
import type { BatchStore } from '../batches/batch-store.js';
import { revocationJobId } from '../queue/job-id.js';
import { jobPriority, type BatchPriority } from '../queue/priority.js';
import type { RevocationJobData } from '../queue/revocation-job.js';
import { countWaitingJobs } from '../queue/revocation-queue.js';
import type { DeviceRequest, InputItem, RejectedRow } from './device-request.js';
import { pendingPlaceholder, type ResultStore } from '../results/result-store.js';

/** Options of `Enqueuer`. */
export interface EnqueuerOptions {
  /** Jobs per `addBulk`. */
  chunkSize: number;
  /** Pause reading while more jobs than this wait; 0 disables flow control. */
  highWaterJobs: number;
  /** How often to look again while above the mark. */
  flowCheckMs: number;
}

/** Defaults of `EnqueuerOptions`. */
export const ENQUEUER_DEFAULTS: EnqueuerOptions = {
  // 500: large enough to amortise round trips, small enough to keep Lua scripts short.
  chunkSize: 500,
  highWaterJobs: 50_000,
  flowCheckMs: 200,
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
    const progress: EnqueueProgress = { read: 0, accepted: 0, rejected: 0, duplicates: 0 };
    let devices: DeviceRequest[] = [];
    let rejections: RejectedRow[] = [];
    let stoppedEarly = false;
    let first = true;
    const priority = (await this.batches.get(batchId))?.priority ?? 'normal';
    // Round-robin position of the next device: a batch joins its class where it is being served.
    let position = await this.batches.servingPosition(priority);

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
      if (first) {
        // The results and rejected keys exist now: give them the batch's retention.
        await this.batches.expire(batchId);
        first = false;
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
    await this.batches.expire(batchId);
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
      await new Promise((resolve) => setTimeout(resolve, this.options.flowCheckMs));
    }
  }

  private async addChunk(batchId: string, action: RevocationAction, devices: DeviceRequest[], progress: EnqueueProgress, priority: BatchPriority, startPosition: number): Promise<number> {
    let position = startPosition;
    const entries = devices.map((device) => ({
      device,
      field: revocationJobId(device, action),
      placeholder: pendingPlaceholder({ batchId, mqttInstanceId: device.mqttInstanceId, caSn: device.caSn, deviceSn: device.deviceSn, action }),
    }));
    const flags = await this.results.register(batchId, entries);
    const toQueue: typeof entries = [];
    const afterRemoval: typeof entries = [];
    flags.forEach((flag, index) => {
      const entry = entries[index];
      if (entry === undefined) return;
      if (flag === 'duplicate') progress.duplicates += 1;
      else progress.accepted += 1;
      if (flag === 'queue') toQueue.push(entry);
      if (flag === 'queue_after_removal') afterRemoval.push(entry);
    });
    const job = (entry: (typeof entries)[number]) => ({
      name: 'revoke',
      data: { batchId, mqttInstanceId: entry.device.mqttInstanceId, caSn: entry.device.caSn, deviceSn: entry.device.deviceSn, action, history: [], firstAttemptAt: null } satisfies RevocationJobData,
      opts: { jobId: entry.field, priority: jobPriority(priority, position++) },
    });
    if (toQueue.length > 0) await this.queue.addBulk(toQueue.map(job));
    for (const entry of afterRemoval) {
      // Another batch's job for this device finished a moment ago; BullMQ ignores an add while
      // its hash exists, so wait (briefly: removal follows completion at once) until it is gone.
      for (let tries = 0; tries < 100 && (await this.queue.getJob(entry.field)) !== undefined; tries += 1) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const next = job(entry);
      await this.queue.add('revoke', next.data, next.opts);
    }
    return position;
  }
}
