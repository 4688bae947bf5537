/**
 * The reconciler: makes "exactly one record per accepted device" hold after what no single step
 * can prevent — a producer that died between REGISTER and addBulk, a Redis crash with AOF
 * `everysec` that lost an acknowledged write, a job BullMQ failed, a producer that stopped
 * reading. One process at a time (a lock in Redis), every `intervalMs` in every worker, and on
 * demand (`revoker reconcile [BATCH]`). Each sweep, in order:
 *
 * 1. batches `enqueuing` whose producer heartbeat lapsed: marked enqueued, with a note that the
 *    input was cut short (they then finish with the devices read so far);
 * 2. subscriber sets the ledger no longer needs (their job is gone and is not the revocation's
 *    open job; or the open job never reached BullMQ and nobody waits for it): removed;
 * 3. jobs in BullMQ's failed set: retried when the ledger still names them, else removed;
 * 4. pending records of unfinished batches whose producer is not running: the batch is put back
 *    into its job's subscriber set if that write was lost; a job the ledger names that does not
 *    exist is added (same id; the data rebuilt from the placeholder, or from the dead letter a
 *    redrive opened it from); a revocation with no open job gets one.
 *
 * Nothing is called twice because of it: a job is added only when BullMQ has no job of that id
 * (an add of an existing id is a no-op), only for the ledger's open job of the revocation, and
 * only once whoever opened it cannot still be about to add it (its producer's heartbeat lapsed;
 * `graceMs` passed since a redrive or a sweep opened it).
 */
import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { BatchStore } from '../batches/batch-store.js';
import { wakeJobs } from '../batches/job-waker.js';
import type { DeadLetters } from '../dlq/dead-letters.js';
import { redrivenJobData } from '../dlq/dead-letters.js';
import { revocationJobData } from '../producer/enqueuer.js';
import { revocationIdOf } from '../queue/job-id.js';
import type { Keys } from '../queue/keys.js';
import { jobPriority } from '../queue/priority.js';
import type { RevocationJobData } from '../queue/revocation-job.js';
import { loadLua } from '../redis/lua-script.js';
import { scanNodes, type RedisClient as Redis } from '../redis/redis-connection.js';
import type { PendingRecord } from '../results/result-record.js';
import { PRODUCER_HEARTBEAT_MS, type ResultStore } from '../results/result-store.js';

/** Options of `Reconciler`. */
export interface ReconcilerOptions {
  /** How often each worker tries to sweep (one of them gets the lock). */
  intervalMs: number;
  /**
   * Lifetime of the lock; refreshed at every page of a sweep, so that it can be short: a process
   * that dies mid-sweep (SIGKILL, OOM) holds back the next sweep, and `revoker reconcile`, only this
   * long.
   */
  lockMs: number;
  /**
   * How long after a redrive or a sweep opened a job a missing one may be added by the reconciler
   * (longer than they take between opening and adding it). Jobs a producer opened wait for its
   * heartbeat to lapse instead.
   */
  graceMs: number;
  /** Records or jobs per page. */
  pageSize: number;
}

/** Defaults of `ReconcilerOptions`. */
export const RECONCILER_DEFAULTS: ReconcilerOptions = {
  // Once a minute: a lost job costs at most about a minute plus the grace.
  intervalMs: 60_000,
  // A page takes well under a second; 30 s survive a stalled Redis or event loop.
  lockMs: 30_000,
  graceMs: 60_000,
  pageSize: 500,
};

/** A device the reconciler gave a job. */
export interface RequeuedDevice {
  batchId: string;
  deviceSn: string;
  jobId: string;
  /** `missing`: the ledger's job did not exist; `nojob`: the revocation had no open job. */
  why: 'missing' | 'nojob';
}

/** What one sweep fixed. */
export interface ReconcileReport {
  /** Batches marked enqueued because their producer stopped. */
  cutShort: string[];
  /** Subscriber sets removed (jobs long gone). */
  droppedSets: number;
  /** Open jobs that never reached BullMQ and that nobody waits for: closed in the ledger. */
  closedRevocations: number;
  /** Jobs of BullMQ's failed set retried. */
  retried: string[];
  /** Jobs of BullMQ's failed set removed (the ledger had moved on). */
  removedFailed: string[];
  /** Batches put back into their job's subscriber set. */
  resubscribed: number;
  /** Devices given a job. */
  requeued: RequeuedDevice[];
}

/** Thrown when a sweep finds another process holding the lock it had (its own lapsed): it stops. */
export class ReconcilerLockLost extends Error {
  constructor() {
    super('the reconciler lock lapsed and another process took it: this sweep stopped (that one goes on)');
    this.name = 'ReconcilerLockLost';
  }
}

/** True when a sweep fixed nothing. */
export function nothingFixed(report: ReconcileReport): boolean {
  return report.cutShort.length + report.droppedSets + report.closedRevocations + report.retried.length + report.removedFailed.length + report.resubscribed + report.requeued.length === 0;
}

/** What the reconciler talks to. */
export interface ReconcilerDeps {
  redis: Redis;
  keys: Keys;
  queue: Queue<RevocationJobData>;
  batches: BatchStore;
  results: ResultStore;
  deadLetters: DeadLetters;
  log: Logger;
}

type ScriptClient = Redis & {
  revokerProbePending(n: number, ...args: string[]): Promise<string[]>;
  revokerReleaseLock(n: number, lock: string, token: string): Promise<number>;
  revokerRefreshLock(n: number, lock: string, token: string, ms: number): Promise<number>;
  revokerCloseOrphan(n: number, rev: string, subs: string, job: string, jobId: string, cutoff: number, prefix: string, rid: string): Promise<string>;
};

function withScripts(redis: Redis): ScriptClient {
  const client = redis as ScriptClient;
  if (typeof client.revokerProbePending !== 'function') {
    redis.defineCommand('revokerProbePending', { lua: loadLua(import.meta.url, 'lua/probe-pending.lua') });
    redis.defineCommand('revokerReleaseLock', { lua: loadLua(import.meta.url, 'lua/release-lock.lua') });
    redis.defineCommand('revokerRefreshLock', { lua: loadLua(import.meta.url, 'lua/refresh-lock.lua') });
    redis.defineCommand('revokerCloseOrphan', { lua: loadLua(import.meta.url, 'lua/close-orphan.lua') });
  }
  return client;
}

function emptyReport(): ReconcileReport {
  return { cutShort: [], droppedSets: 0, closedRevocations: 0, retried: [], removedFailed: [], resubscribed: 0, requeued: [] };
}

/** Sweeps for what crashes left unfinished, one process at a time. */
export class Reconciler {
  readonly options: ReconcilerOptions;
  private readonly redis: ScriptClient;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;

  constructor(
    private readonly deps: ReconcilerDeps,
    options: Partial<ReconcilerOptions> = {},
  ) {
    this.options = { ...RECONCILER_DEFAULTS, ...options };
    this.redis = withScripts(deps.redis);
  }

  /** Sweeps every `intervalMs` (the first after one interval, with jitter so workers spread out). */
  start(): void {
    const schedule = () => {
      this.timer = setTimeout(() => {
        this.running = this.runOnce()
          .then((report) => {
            if (report !== null && !nothingFixed(report)) this.deps.log.warn({ report }, 'reconciler repaired the ledger');
          })
          .catch((error: unknown) => this.deps.log.error({ err: error }, 'reconciler sweep failed'))
          .finally(() => {
            this.running = null;
            if (this.timer !== null) schedule();
          });
      }, this.options.intervalMs * (0.75 + Math.random() / 2));
      this.timer.unref();
    };
    schedule();
  }

  /** Stops sweeping; waits for a sweep in progress. */
  async close(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /**
   * One sweep (of one batch's records when `batchId` is given) under the lock; null when another
   * process holds it and `waitMs` passed without it coming free.
   */
  async runOnce(batchId?: string, waitMs = 0): Promise<ReconcileReport | null> {
    const token = randomUUID();
    const lock = this.deps.keys.reconcileLock();
    const deadline = Date.now() + waitMs;
    while ((await this.redis.set(lock, token, 'PX', this.options.lockMs, 'NX')) !== 'OK') {
      if (Date.now() >= deadline) return null;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    // Called at every step and page: keeps the lock (or takes it back if it lapsed and is free).
    const refresh = async (): Promise<void> => {
      if ((await this.redis.revokerRefreshLock(1, lock, token, this.options.lockMs)) !== 1) throw new ReconcilerLockLost();
    };
    try {
      return await this.sweep(batchId, refresh);
    } finally {
      await this.redis.revokerReleaseLock(1, lock, token).catch(() => undefined);
    }
  }

  private async sweep(batchId: string | undefined, refresh: () => Promise<void>): Promise<ReconcileReport> {
    const report = emptyReport();
    const batchIds = batchId === undefined ? await this.deps.batches.unfinishedBatchIds() : [batchId];
    await this.cutShort(batchIds, report, refresh);
    await refresh();
    await this.orphanSets(report, refresh);
    await refresh();
    await this.failedJobs(batchId, report, refresh);
    for (const id of batchIds) {
      await refresh();
      await this.pendingRecords(id, report, refresh);
    }
    return report;
  }

  /** Step 1: a batch still `enqueuing` whose producer stopped heartbeating. */
  private async cutShort(batchIds: readonly string[], report: ReconcileReport, refresh: () => Promise<void>): Promise<void> {
    for (const [index, batchId] of batchIds.entries()) {
      if (index > 0 && index % this.options.pageSize === 0) await refresh();
      const batch = await this.deps.batches.get(batchId);
      if (batch === null || batch.enqueued || batch.state === 'completed') continue;
      if (await this.deps.batches.producerAlive(batchId)) continue;
      const note = `the producer stopped before the end of its input (no sign of it for ${Math.round(PRODUCER_HEARTBEAT_MS / 1_000)} s): the batch holds the ${batch.accepted} devices accepted until then; enqueue the rest again`;
      await this.deps.results.markEnqueued(batchId, new Date(), note);
      report.cutShort.push(batchId);
    }
  }

  /** Step 2: subscriber sets of jobs that are gone. */
  private async orphanSets(report: ReconcileReport, refresh: () => Promise<void>): Promise<void> {
    const cutoff = Date.now() - this.options.graceMs;
    for (const node of scanNodes(this.deps.redis)) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', this.deps.keys.subscribers('*'), 'COUNT', this.options.pageSize);
        cursor = next;
        for (const key of keys) {
          const jobId = key.slice(this.deps.keys.subscribers('').length);
          const rid = revocationIdOf(jobId);
          const verdict = await this.redis.revokerCloseOrphan(3, this.deps.keys.revocation(rid), key, this.deps.keys.jobKeyPrefix() + jobId, jobId, cutoff, this.deps.keys.prefix, rid);
          if (verdict === 'dropped') report.droppedSets += 1;
          if (verdict === 'closed') report.closedRevocations += 1;
        }
        await refresh();
      } while (cursor !== '0');
    }
  }

  /** Step 3: jobs BullMQ failed (a bug, or Redis errors on every one of its attempts). */
  private async failedJobs(batchId: string | undefined, report: ReconcileReport, refresh: () => Promise<void>): Promise<void> {
    const ids: string[] = [];
    for (let start = 0; ; start += this.options.pageSize) {
      const jobs = await this.deps.queue.getFailed(start, start + this.options.pageSize - 1);
      for (const job of jobs) if (job?.id !== undefined) ids.push(job.id);
      if (jobs.length < this.options.pageSize) break;
    }
    for (const [index, id] of ids.entries()) {
      if (index > 0 && index % this.options.pageSize === 0) await refresh();
      const job = await this.deps.queue.getJob(id);
      if (job === undefined) continue;
      if (batchId !== undefined && job.data.batchId !== batchId && !(await this.deps.results.subscribersOf(id)).includes(batchId)) continue;
      const rid = job.data.revocationId ?? revocationIdOf(id);
      const open = (await this.deps.results.revocation(rid))?.job ?? null;
      if (open === id) {
        await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
        report.retried.push(id);
      } else {
        // The ledger moved on (its subscribers are found again by step 4): this job must never run.
        await job.remove();
        await this.deps.redis.del(this.deps.keys.subscribers(id));
        report.removedFailed.push(id);
      }
    }
  }

  /** Step 4: pending records without a job (or without their subscription). */
  private async pendingRecords(batchId: string, report: ReconcileReport, refresh: () => Promise<void>): Promise<void> {
    // A producer at work may be between REGISTER and addBulk right now: leave its batch alone.
    if (await this.deps.batches.producerAlive(batchId)) return;
    const batch = await this.deps.batches.get(batchId);
    if (batch === null) return;
    for await (const page of this.deps.results.scanFields(batchId, this.options.pageSize)) {
      await refresh();
      const pending = page.filter((entry) => entry.record.outcome === 'pending' && entry.field.startsWith('r-'));
      if (pending.length === 0) continue;
      const keys = [this.deps.keys.results(batchId), ...pending.map((entry) => this.deps.keys.revocation(entry.field))];
      const flat = await this.redis.revokerProbePending(keys.length, ...keys, this.deps.keys.prefix, batchId, this.deps.keys.jobKeyPrefix(), ...pending.map((entry) => entry.field));
      for (const [index, entry] of pending.entries()) {
        const status = flat[3 * index];
        const jobId = flat[3 * index + 1] ?? '';
        if (flat[3 * index + 2] === '1') report.resubscribed += 1;
        const record = entry.record as PendingRecord;
        if (status === 'missing') {
          if (await this.addMissing(entry.field, jobId, record, batch.priority)) report.requeued.push({ batchId, deviceSn: record.deviceSn, jobId, why: 'missing' });
        } else if (status === 'nojob') {
          const answer = await this.deps.results.openJob(entry.field, [batchId], 'reconciler');
          if (answer.flag === 'queue') {
            await this.add(answer.jobId, revocationJobData(batchId, record, record.action, entry.field), batch.priority);
            report.requeued.push({ batchId, deviceSn: record.deviceSn, jobId: answer.jobId, why: 'nojob' });
          } else if (answer.flag === 'following_parked') {
            await wakeJobs(this.deps.queue, [answer.jobId], { mayBeParking: (active) => this.deps.results.markedParked(active) });
          }
        }
      }
    }
  }

  /** Adds the ledger's open job that BullMQ does not have, once nobody else can be about to. */
  private async addMissing(rid: string, jobId: string, record: PendingRecord, priority: Parameters<typeof jobPriority>[0]): Promise<boolean> {
    const entry = await this.deps.results.revocation(rid);
    if (entry?.job !== jobId) return false;
    if (entry.openedBy !== null && entry.openedBy !== 'redrive' && entry.openedBy !== 'reconciler') {
      // Opened by a producer's REGISTER, which set its heartbeat in the same step: while that lasts
      // (a running producer refreshes it) the producer may be about to add the job itself.
      if (await this.deps.batches.producerAlive(entry.openedBy)) return false;
    } else if (entry.openedAtMs !== null && Date.now() - entry.openedAtMs < this.options.graceMs) {
      return false;
    }
    const deadLetter = entry.redrivenFrom === null ? null : await this.deps.deadLetters.get(entry.redrivenFrom);
    const data = deadLetter === null ? revocationJobData(record.batchId, record, record.action, rid) : redrivenJobData(deadLetter, rid, [record.batchId]);
    await this.add(jobId, data, priority);
    return true;
  }

  private async add(jobId: string, data: RevocationJobData, priority: Parameters<typeof jobPriority>[0]): Promise<void> {
    // BullMQ ignores an add whose id exists: a job that appeared meanwhile is never doubled.
    await this.deps.queue.add('revoke', data, { jobId, priority: jobPriority(priority, await this.deps.batches.servingPosition(priority)) });
    this.deps.log.info({ jobId, batchId: data.batchId, deviceSn: data.deviceSn }, 'reconciler added a missing revocation job');
  }
}
