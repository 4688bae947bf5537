/**
 * One enqueue of one batch, chunk by chunk: REGISTER (devices, input lines and rejected rows in
 * one round trip), `addBulk` of the new jobs, and the follow-ups of jobs another batch opened.
 *
 * Pipelined: up to `chunksInFlight` chunks are on the wire at once, so that reading and preparing
 * the next chunk (CSV, hashes, job data) overlaps with Redis working on the previous ones. Their
 * REGISTERs still run in input order, one after the other, also when one is retried: the rejected
 * rows list stays in line order and round-robin positions follow the input.
 *
 * Flow control without a round trip per chunk: every REGISTER answer carries the queue's waiting
 * count, and the jobs of chunks still in flight are added to it as if none had been taken. Only
 * when that estimate reaches the high-water mark does the run let its chunks land and poll, as
 * before. So the waiting count never passes the mark by more than one chunk.
 *
 * A Redis crash with AOF `everysec` can lose the last second of acknowledged writes: a chunk the
 * run registered and counted may be gone, records, ledger entries, jobs and counters alike, and
 * nothing else knows it existed. So the run keeps the chunks it registered in the last
 * `resendWindowMs` (counted back from the latest one: a Redis that stays down longer does not
 * shorten it), and before its next REGISTER, or before it finishes, it asks whether Redis came back
 * as a new instance (`RunIdWatch`: only after the connection dropped). If so it sends them again,
 * in order, with their request ids: a chunk that survived answers from the request cache written in
 * the same script, and nothing changes; a lost one is registered afresh and its jobs added again.
 */
import { randomUUID } from 'node:crypto';
import { wakeJobs } from '../batches/job-waker.js';
import type { Queue } from 'bullmq';
import type { RevocationAction } from '../cloud/certificate-api.js';
import type { BatchStore } from '../batches/batch-store.js';
import { revocationId } from '../queue/job-id.js';
import { classOf, jobPriority, type BatchPriority } from '../queue/priority.js';
import type { RevocationJobData } from '../queue/revocation-job.js';
import { countWaitingJobs, moreUrgent } from '../queue/revocation-queue.js';
import { pendingPlaceholder, type RegisterAnswer, type RegisterEntry, type ResultStore } from '../results/result-store.js';
import type { RunIdWatch } from '../redis/run-id-watch.js';
import type { DeviceRequest, RejectedRow } from './device-request.js';
import type { ProducerHeartbeat } from './producer-heartbeat.js';

/** What a run needs from its `Enqueuer`. */
export interface RunSettings {
  queue: Queue<RevocationJobData>;
  batches: BatchStore;
  results: ResultStore;
  chunkTries: number;
  chunksInFlight: number;
  highWaterJobs: number;
  flowCheckMs: number;
  recordOrder: boolean;
  /** How far back, from the latest chunk, chunks are kept to send again after a Redis crash. */
  resendWindowMs: number;
  /** Tells when Redis came back as a new instance; none: chunks are not kept (Redis Cluster, tests). */
  restartWatch?: RunIdWatch;
}

/** Progress, reported after every chunk. */
export interface EnqueueProgress {
  read: number;
  accepted: number;
  rejected: number;
  duplicates: number;
}

/** Builds the data of a revocation job (the reconciler and redrive build the same). */
export function revocationJobData(batchId: string, device: { mqttInstanceId: string; caSn: string; deviceSn: string }, action: RevocationAction, rid: string): RevocationJobData {
  return { batchId, revocationId: rid, mqttInstanceId: device.mqttInstanceId, caSn: device.caSn, deviceSn: device.deviceSn, action, history: [], firstAttemptAt: null, callIntent: null };
}

/** Runs `step` up to `tries` times (a Redis error mid-chunk); the steps are idempotent. */
async function retrying<T>(tries: number, step: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await step();
    } catch (error) {
      if (attempt >= tries) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
    }
  }
}

type Job = { name: string; data: RevocationJobData; opts: { jobId: string; priority: number } };

type Entry = RegisterEntry & { device: DeviceRequest };

/**
 * A chunk registered recently: what it takes to send it again. The devices only: their entries
 * (revocation id, placeholder) are built again from them, the same, at a tenth of the memory.
 */
interface SentChunk {
  devices: DeviceRequest[];
  rejected: RejectedRow[];
  position: number;
  requestId: string;
  registeredAtMs: number;
}

/** The state of one enqueue; `Enqueuer.enqueue` drives it. */
export class EnqueueRun {
  readonly progress: EnqueueProgress = { read: 0, accepted: 0, rejected: 0, duplicates: 0 };
  /** The batch was cancelled: the run stopped taking chunks. */
  stoppedEarly = false;
  private position: number;
  private readonly inFlight = new Set<Promise<void>>();
  private failure: { error: unknown } | null = null;
  /** Settles once the latest chunk's REGISTER has (the next one waits for it). */
  private registered: Promise<void> = Promise.resolve();
  /** Devices sent so far, and where each chunk in flight starts in that count. */
  private sent = 0;
  private readonly startsInFlight = new Set<number>();
  /** The last waiting count read, and the devices sent since the oldest chunk it may not include. */
  private gauge: { waiting: number; uncountedFrom: number } | null = null;
  /** Chunks registered within `resendWindowMs` of the latest one, oldest first. */
  private readonly recent: SentChunk[] = [];

  constructor(
    private readonly settings: RunSettings,
    private readonly batchId: string,
    private readonly action: RevocationAction,
    private readonly priority: BatchPriority,
    startPosition: number,
    private readonly heartbeat: ProducerHeartbeat,
    private readonly onProgress?: (progress: EnqueueProgress) => void,
  ) {
    this.position = startPosition;
  }

  /**
   * Sends one chunk, waiting first for room below the high-water mark and for a free place in
   * the pipeline. False when the batch was cancelled (stop reading); throws an earlier chunk's
   * failure.
   */
  async send(devices: DeviceRequest[], rejected: RejectedRow[]): Promise<boolean> {
    this.throwIfFailed();
    if (this.stoppedEarly) return false;
    if (devices.length > 0 && !(await this.waitForRoom())) {
      this.stoppedEarly = true;
      return false;
    }
    while (this.inFlight.size >= this.settings.chunksInFlight) await Promise.race(this.inFlight);
    this.throwIfFailed();
    if (this.stoppedEarly) return false;
    this.launch(devices, rejected);
    return true;
  }

  /** Waits for every chunk sent, then throws the first failure, if any. */
  async finish(): Promise<void> {
    await this.settle();
    this.throwIfFailed();
    // The last chunks too: a crash after them but before the batch is marked enqueued.
    if (!this.stoppedEarly) await this.resendIfRestarted();
  }

  /** Waits for every chunk sent, whatever became of them. */
  async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  private throwIfFailed(): void {
    if (this.failure !== null) throw this.failure.error;
  }

  private launch(devices: DeviceRequest[], rejected: RejectedRow[]): void {
    const position = this.position;
    this.position += devices.length;
    const start = this.sent;
    this.sent += devices.length;
    this.startsInFlight.add(start);
    const uncountedFrom = Math.min(...this.startsInFlight);
    const previous = this.registered;
    let registered = (): void => undefined;
    this.registered = new Promise<void>((resolve) => (registered = resolve));
    const task: Promise<void> = this.runChunk(devices, rejected, position, previous, registered, uncountedFrom)
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => {
        registered();
        this.startsInFlight.delete(start);
        this.inFlight.delete(task);
      });
    this.inFlight.add(task);
  }

  private entries(devices: DeviceRequest[]): Entry[] {
    return devices.map((device) => ({
      device,
      field: revocationId(device, this.action),
      instance: device.mqttInstanceId,
      placeholder: pendingPlaceholder({ batchId: this.batchId, mqttInstanceId: device.mqttInstanceId, caSn: device.caSn, deviceSn: device.deviceSn, action: this.action }),
      ...(this.settings.recordOrder ? { line: device.line } : {}),
    }));
  }

  private async runChunk(devices: DeviceRequest[], rejected: RejectedRow[], position: number, previous: Promise<void>, registered: () => void, uncountedFrom: number): Promise<void> {
    // Prepared while the previous chunk is on the wire; sent once its REGISTER is answered.
    const entries = this.entries(devices);
    const requestId = randomUUID();
    await previous;
    if (this.failure !== null || this.stoppedEarly) return;
    await this.resendIfRestarted();
    if (this.stoppedEarly) return;
    const answer = await retrying(this.settings.chunkTries, () => this.settings.results.registerChunk(this.batchId, { devices: entries, rejected }, requestId));
    registered();
    this.gauge = { waiting: answer.waiting, uncountedFrom };
    if (answer.state === 'cancelled') {
      this.stoppedEarly = true;
      return;
    }
    this.keep({ devices, rejected, position, requestId, registeredAtMs: Date.now() });
    this.progress.rejected += rejected.length;
    const { jobs, followed } = this.sort(entries, answer.answers, position, true);
    await this.land(jobs, followed);
    this.onProgress?.({ ...this.progress });
  }

  /** Adds a chunk's new jobs and follows up the jobs it joined. */
  private async land(jobs: Job[], followed: { answer: RegisterAnswer; position: number }[]): Promise<void> {
    // BullMQ ignores an add whose job id exists, so a retried addBulk adds nothing twice.
    if (jobs.length > 0) await retrying(this.settings.chunkTries, () => this.settings.queue.addBulk(jobs));
    if (followed.length > 0) await this.follow(followed);
  }

  /** Keeps a registered chunk for `resendWindowMs` after the latest one (only with a restart watch). */
  private keep(chunk: SentChunk): void {
    if (this.settings.restartWatch === undefined) return;
    this.recent.push(chunk);
    const oldest = chunk.registeredAtMs - this.settings.resendWindowMs;
    while ((this.recent[0]?.registeredAtMs ?? Infinity) < oldest) this.recent.shift();
  }

  /**
   * Sends the recent chunks again when Redis came back as a new instance since the last look (see
   * the file's comment). Runs in the REGISTER order: between two chunks' REGISTERs, or at the end.
   */
  private async resendIfRestarted(): Promise<void> {
    const watch = this.settings.restartWatch;
    if (watch === undefined || !watch.pending) return;
    if (!(await retrying(this.settings.chunkTries, () => watch.changed()))) return;
    for (const chunk of [...this.recent]) {
      const entries = this.entries(chunk.devices);
      const answer = await retrying(this.settings.chunkTries, () => this.settings.results.registerChunk(this.batchId, { devices: entries, rejected: chunk.rejected }, chunk.requestId));
      if (answer.cached) continue;
      if (answer.state === 'cancelled') {
        this.stoppedEarly = true;
        return;
      }
      // Lost: registered again just now (its counters with it); its jobs are added again.
      const { jobs, followed } = this.sort(entries, answer.answers, chunk.position, false);
      await this.land(jobs, followed);
    }
  }

  /** Builds the jobs to add and the jobs now followed, counting the answers when `count`. */
  private sort(entries: Entry[], answers: RegisterAnswer[], position: number, count: boolean): { jobs: Job[]; followed: { answer: RegisterAnswer; position: number }[] } {
    const jobs: Job[] = [];
    const followed: { answer: RegisterAnswer; position: number }[] = [];
    answers.forEach((answer, index) => {
      const entry = entries[index];
      if (entry === undefined) return;
      if (answer.flag === 'duplicate') {
        if (count) this.progress.duplicates += 1;
        return;
      }
      if (count) this.progress.accepted += 1;
      if (answer.flag === 'queue') {
        jobs.push({ name: 'revoke', data: revocationJobData(this.batchId, entry.device, this.action, entry.field), opts: { jobId: answer.jobId, priority: jobPriority(this.priority, position + index) } });
      } else {
        followed.push({ answer, position: position + index });
      }
    });
    return { jobs, followed };
  }

  /**
   * Another batch's job now also serves this batch: an urgent batch must not wait behind a bulk
   * job's priority (raise it), and a job parked because its batches are paused must run now.
   */
  private async follow(followed: { answer: RegisterAnswer; position: number }[]): Promise<void> {
    // A bulk batch never raises anything: read the followed jobs' priorities only when it could.
    const candidates = this.priority === 'bulk' ? followed.filter((entry) => entry.answer.flag === 'following_parked') : followed;
    if (candidates.length === 0) return;
    const priorities = await this.settings.results.jobPriorities(candidates.map((entry) => entry.answer.jobId));
    const parked: string[] = [];
    for (const [index, { answer, position }] of candidates.entries()) {
      const current = priorities[index];
      // Not added yet (its producer is between REGISTER and addBulk): it runs at that producer's priority.
      if (current === null || current === undefined) continue;
      const raise = moreUrgent(this.priority, classOf(current));
      if (!raise && answer.flag !== 'following_parked') continue;
      const job = await this.settings.queue.getJob(answer.jobId);
      if (job === undefined) continue;
      if (raise) await job.changePriority({ priority: jobPriority(this.priority, position) }).catch(() => undefined);
      if (answer.flag === 'following_parked') parked.push(answer.jobId);
    }
    // Parked (its batches paused), or being parked right now: this running batch wants it.
    // Only a job the ledger still marks parked is waited for: one already woken may be running.
    if (parked.length > 0) await wakeJobs(this.settings.queue, parked, { mayBeParking: (active) => this.settings.results.markedParked(active) });
  }

  /**
   * True when a chunk may go: the waiting count is below the mark. Estimated from the last
   * REGISTER answer plus every device sent that it may not include; when that reaches the mark,
   * the chunks in flight land and the queue is asked, while the batch is not cancelled.
   */
  private async waitForRoom(): Promise<boolean> {
    const { highWaterJobs, flowCheckMs, batches, queue } = this.settings;
    if (highWaterJobs <= 0) return true;
    if (this.gauge !== null && this.gauge.waiting + (this.sent - this.gauge.uncountedFrom) < highWaterJobs) return true;
    await this.settle();
    this.throwIfFailed();
    if (this.stoppedEarly) return false;
    for (;;) {
      const { state } = await batches.state(this.batchId);
      if (state === 'cancelled') return false;
      const waiting = await countWaitingJobs(queue);
      if (waiting < highWaterJobs) {
        this.gauge = { waiting, uncountedFrom: this.sent };
        return true;
      }
      // Waiting for room is not dying: keep the reconciler from cutting the batch short.
      await this.heartbeat.beat();
      await new Promise((resolve) => setTimeout(resolve, flowCheckMs));
    }
  }
}
