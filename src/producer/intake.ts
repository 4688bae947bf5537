/**
 * The one intake path: every source of devices — a CSV file (`revoker enqueue`), a CA listing
 * (`revoker enqueue-ca`), a webhook delivery, the devices `revoker verify --requeue` found — turns
 * its input into a batch here, and nowhere else:
 *
 * 1. `open`: creates the batch (name, source, action, priority, who started it) with its report
 *    header facts (reason and reason code, command, input file, the batch it follows up) and
 *    starts its producer heartbeat. The batch id is known from here on: steps that must come
 *    before the batch's first call (an existence snapshot) go between `open` and `enqueue`, or in
 *    `beforeFirstChunk`, and the heartbeat keeps the reconciler away meanwhile.
 * 2. `enqueue`: chunk by chunk (`Enqueuer`), one REGISTER per chunk accepts the devices, records
 *    their input lines (so every report lists devices in input order: CSV line, webhook entry
 *    index, listing position) and the rejected rows; the new jobs are added; flow control holds
 *    the input below the high-water mark. Then the batch is marked fully enqueued, the input's
 *    SHA-256 is recorded when the source knows it, and the summary returned.
 *
 * The source keeps what is its own: reading and validating its input, its plan and consent, its
 * audit-trail entry (who asked: an OS user, a webhook sender) and its answer.
 */
import type { Queue } from 'bullmq';
import type { BatchStore, NewBatch } from '../batches/batch-store.js';
import type { RevocationJobData } from '../queue/revocation-job.js';
import type { BatchAudit, BatchAuditStore } from '../report/batch-audit.js';
import { reportStores } from '../report/report-stores.js';
import type { ResultStore } from '../results/result-store.js';
import type { Context } from '../runtime/context.js';
import type { DeviceRequest, InputItem } from './device-request.js';
import { Enqueuer, type EnqueueProgress, type EnqueueSummary } from './enqueuer.js';
import { ProducerHeartbeat } from './producer-heartbeat.js';

/** What the intake writes to. */
export interface IntakeDeps {
  queue: Queue<RevocationJobData>;
  batches: BatchStore;
  results: ResultStore;
  /** The batches' report header facts. */
  audit: Pick<BatchAuditStore, 'set' | 'addFollowUp'>;
}

/** The intake's dependencies from a context. */
export function intakeDeps(context: Pick<Context, 'queue' | 'batches' | 'results' | 'redis' | 'keys' | 'config'>): IntakeDeps {
  return { queue: context.queue, batches: context.batches, results: context.results, audit: reportStores(context).audit };
}

/** Options of `Intake`. */
export interface IntakeOptions {
  /** Hold the input while more jobs than this wait (QUEUE_HIGH_WATER_JOBS); 0: no flow control (the caller reserved room). */
  highWaterJobs: number;
  /** Devices per chunk; the Enqueuer's default when absent. */
  chunkSize?: number;
}

/**
 * Facts of a batch for its report's header; absent ones are not recorded. `inputSha256` here is
 * for a source that hashed its input before (an upload); a streamed file's comes with `enqueue`.
 */
export type IntakeFacts = Partial<Pick<BatchAudit, 'reason' | 'reasonCode' | 'command' | 'inputFile' | 'inputSha256' | 'linkedBatchId'>>;

/** A batch to open: the batch record and its header facts. */
export interface IntakeBatch extends NewBatch {
  facts?: IntakeFacts;
}

/** Steps of one enqueue. */
export interface IntakeSteps {
  /** Told after every chunk. */
  onProgress?: (progress: EnqueueProgress) => void;
  /** Called once with the first chunk's devices, before any of them is registered. */
  beforeFirstChunk?: (devices: readonly DeviceRequest[]) => Promise<void>;
  /** The input's SHA-256 once it has been read to the end (null when it was not read whole). */
  inputSha256?: () => string | null;
}

/** What an intake did. */
export interface IntakeSummary extends EnqueueSummary {
  /** The input's SHA-256 as recorded in the header facts, or null. */
  inputSha256: string | null;
}

/** A batch created by the intake and not enqueued yet. */
export class OpenBatch {
  private finished = false;

  constructor(
    private readonly deps: IntakeDeps,
    private readonly enqueuer: Enqueuer,
    readonly batchId: string,
    readonly action: NewBatch['action'],
    private readonly heartbeat: ProducerHeartbeat,
  ) {}

  /** Enqueues the input (once) and marks the batch fully enqueued. */
  async enqueue(items: AsyncIterable<InputItem> | Iterable<InputItem>, steps: IntakeSteps = {}): Promise<IntakeSummary> {
    if (this.finished) throw new Error(`batch ${this.batchId} was enqueued already`);
    this.finished = true;
    try {
      const hooks = { heartbeat: this.heartbeat, ...(steps.beforeFirstChunk !== undefined ? { beforeFirstChunk: steps.beforeFirstChunk } : {}) };
      const summary = await this.enqueuer.enqueue(this.batchId, this.action, items, steps.onProgress, hooks);
      const inputSha256 = steps.inputSha256?.() ?? null;
      if (inputSha256 !== null) await this.deps.audit.set(this.batchId, { inputSha256 });
      return { ...summary, inputSha256 };
    } finally {
      this.heartbeat.stop();
    }
  }

  /**
   * Gives the batch up before its input was enqueued (a step before the first chunk failed): it is
   * marked enqueued with `note` as its reason, and finishes with what it has (nothing), instead of
   * waiting for the reconciler to cut it short.
   */
  async abandon(note: string): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    this.heartbeat.stop();
    await this.deps.results.markEnqueued(this.batchId, new Date(), note);
  }
}

/** Creates batches and enqueues their input, for every source. */
export class Intake {
  private readonly enqueuer: Enqueuer;

  constructor(
    private readonly deps: IntakeDeps,
    options: IntakeOptions,
  ) {
    const chunk = options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {};
    this.enqueuer = new Enqueuer(deps.queue, deps.batches, deps.results, { highWaterJobs: options.highWaterJobs, recordOrder: true, ...chunk });
  }

  /** Creates the batch with its header facts and starts its producer heartbeat. */
  async open(batch: IntakeBatch): Promise<OpenBatch> {
    const { facts, ...record } = batch;
    const batchId = await this.deps.batches.create(record);
    const heartbeat = await ProducerHeartbeat.start(this.deps.batches, batchId);
    try {
      if (facts !== undefined) await this.deps.audit.set(batchId, facts);
      if (facts?.linkedBatchId) await this.deps.audit.addFollowUp(facts.linkedBatchId, batchId);
    } catch (error) {
      heartbeat.stop();
      throw error;
    }
    return new OpenBatch(this.deps, this.enqueuer, batchId, batch.action, heartbeat);
  }

  /** `open`, then `enqueue`: for a source with nothing to do in between. */
  async run(batch: IntakeBatch, items: AsyncIterable<InputItem> | Iterable<InputItem>, steps: IntakeSteps = {}): Promise<IntakeSummary> {
    return (await this.open(batch)).enqueue(items, steps);
  }
}
