/**
 * Turns a stream of validated device requests into jobs, for any source (CSV, webhook, CA
 * listing), chunk by chunk (see `EnqueueRun`): one REGISTER per chunk accepts its devices into
 * the batch and the revocation ledger (duplicates counted, devices another batch's job already
 * covers subscribed to it), records their input lines and the chunk's rejected rows; the new
 * jobs are added in bulk; reading holds back while the queue's waiting count is above the
 * high-water mark, so that Redis stays bounded however large the input. The batch is marked
 * fully enqueued at the end.
 *
 * The sources use it through the intake (intake.ts), which also creates the batch and keeps its
 * heartbeat; tests and scripts use it directly on a batch of their own.
 *
 * Crash safety: a chunk's REGISTER carries a request id, so sending it again (ioredis resends a
 * command whose reply a reconnect lost; a chunk that failed is retried) changes nothing twice. A
 * producer that dies between REGISTER and `addBulk` leaves ledger entries pointing at jobs that do
 * not exist: the reconciler adds them once the producer's heartbeat has lapsed. A Redis crash that
 * loses the last chunks (AOF `everysec`): the run sends its recent chunks again (enqueue-run.ts).
 */
import type { Queue } from 'bullmq';
import type { RevocationAction } from '../cloud/certificate-api.js';
import type { BatchStore } from '../batches/batch-store.js';
import type { RevocationJobData } from '../queue/revocation-job.js';
import type { ResultStore } from '../results/result-store.js';
import type { DeviceRequest, InputItem, RejectedRow } from './device-request.js';
import { EnqueueRun, type EnqueueProgress } from './enqueue-run.js';
import { ProducerHeartbeat } from './producer-heartbeat.js';

export { revocationJobData, type EnqueueProgress } from './enqueue-run.js';

/** Options of `Enqueuer`. */
export interface EnqueuerOptions {
  /** Devices (and rejected rows) per chunk: one REGISTER and one `addBulk`. */
  chunkSize: number;
  /** Pause reading while more jobs than this wait; 0 disables flow control. */
  highWaterJobs: number;
  /** How often to look again while above the mark. */
  flowCheckMs: number;
  /** Tries of one chunk's REGISTER and addBulk before giving up (a Redis outage). */
  chunkTries: number;
  /** Chunks on the wire at once (1: each chunk waits for the previous one's jobs). */
  chunksInFlight: number;
  /**
   * Record each device's input line in the batch's input order, which reports follow. The intake
   * always does; off by default for code that records it otherwise (or not at all).
   */
  recordOrder: boolean;
  /**
   * Chunks kept to send again after Redis comes back as a new instance (a crash with AOF
   * `everysec` loses about the last second): this far back from the latest chunk. 0: none kept.
   */
  resendWindowMs: number;
}

/** Defaults of `EnqueuerOptions`. */
export const ENQUEUER_DEFAULTS: EnqueuerOptions = {
  // 500: large enough to amortise round trips, small enough to keep Lua scripts short.
  chunkSize: 500,
  highWaterJobs: 50_000,
  flowCheckMs: 200,
  chunkTries: 5,
  // 2: enough for Redis to add one chunk's jobs while the next is read, prepared and registered
  // (REGISTERs go one by one); deeper pipelines measured no faster here and kept more in memory.
  chunksInFlight: 2,
  recordOrder: false,
  // A crash loses about a second of writes (AOF everysec; Redis holds writes back once an fsync is
  // 2 s late); 10 s leave room for a slow disk. Kept as the devices only: at 10,000 rows/s about
  // 100,000 of them, a few tens of MB (measured: the heap of a 300,000-row enqueue stayed ~60 MB).
  resendWindowMs: 10_000,
};

/** What an enqueue did (the CLI's `--json` summary plus the batch id). */
export interface EnqueueSummary extends EnqueueProgress {
  batchId: string;
  /** True when the batch was cancelled while enqueuing and reading stopped early. */
  stoppedEarly: boolean;
}

/** Extra steps of one enqueue (the intake's). */
export interface EnqueueHooks {
  /**
   * Called once with the first chunk's devices, before anything of them is registered: where a
   * step that must precede the batch's first call goes (an existence snapshot).
   */
  beforeFirstChunk?: (devices: readonly DeviceRequest[]) => Promise<void>;
  /** The batch's heartbeat, kept by the caller from before the enqueue; else the enqueue keeps one. */
  heartbeat?: ProducerHeartbeat;
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
   * enqueued. Rejected rows are stored with the batch. Stops early, still marking the batch
   * enqueued, when the batch is cancelled meanwhile. When `items` throws, the chunks already sent
   * land and the error is thrown on (the batch stays `enqueuing` for the reconciler).
   */
  async enqueue(batchId: string, action: RevocationAction, items: AsyncIterable<InputItem> | Iterable<InputItem>, onProgress?: (progress: EnqueueProgress) => void, hooks: EnqueueHooks = {}): Promise<EnqueueSummary> {
    const priority = (await this.batches.get(batchId))?.priority ?? 'normal';
    // Round-robin position of the next device: a batch joins its class where it is being served.
    const position = await this.batches.servingPosition(priority);
    // A slow input (a pipe, a large upload) must not look like a dead producer to the reconciler.
    const heartbeat = hooks.heartbeat ?? (await ProducerHeartbeat.start(this.batches, batchId));
    const restartWatch = this.options.resendWindowMs > 0 ? this.results.restartWatch() : undefined;
    try {
      await restartWatch?.start();
      const { queue, batches, results } = this;
      const run = new EnqueueRun({ queue, batches, results, ...this.options, ...(restartWatch === undefined ? {} : { restartWatch }) }, batchId, action, priority, position, heartbeat, onProgress);
      await this.read(run, items, hooks);
      await this.results.markEnqueued(batchId);
      return { batchId, ...run.progress, stoppedEarly: run.stoppedEarly };
    } finally {
      restartWatch?.stop();
      if (hooks.heartbeat === undefined) heartbeat.stop();
    }
  }

  private async read(run: EnqueueRun, items: AsyncIterable<InputItem> | Iterable<InputItem>, hooks: EnqueueHooks): Promise<void> {
    let devices: DeviceRequest[] = [];
    let rejected: RejectedRow[] = [];
    let first = true;
    const send = async (): Promise<boolean> => {
      if (first && devices.length > 0) {
        first = false;
        await hooks.beforeFirstChunk?.(devices);
      }
      const sent = await run.send(devices, rejected);
      devices = [];
      rejected = [];
      return sent;
    };
    try {
      for await (const item of items) {
        run.progress.read += 1;
        if (item.kind === 'device') devices.push(item.request);
        else rejected.push(item.row);
        if ((devices.length >= this.options.chunkSize || rejected.length >= this.options.chunkSize) && !(await send())) break;
      }
      if (!run.stoppedEarly && devices.length + rejected.length > 0) await send();
      await run.finish();
    } catch (error) {
      await run.settle();
      throw error;
    }
  }
}
