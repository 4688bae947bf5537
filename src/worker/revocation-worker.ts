/**
 * The revocation worker: takes device jobs off the queue and revokes each through the
 * account-wide rate gate, classifying every outcome once and recording exactly one result.
 *
 * Per job (state machine):
 *   batch cancelled            → record `cancelled`, no call
 *   batch or account paused    → park (delay + parked set), no call
 *   otherwise                  → permit → call →
 *       success                → record deleted/inactivated
 *       not_found              → record not_found, or `deleted` when an earlier attempt's
 *                                result was unknown (confirmed by absence)
 *       throttle               → slow the shared rate, retry soon, not an attempt
 *       retry                  → backoff, or dead-letter after MAX_ATTEMPTS
 *       permanent              → dead-letter
 *       fatal_for_batch        → pause the batch, park the job (nothing dead-lettered)
 *       fatal_for_credentials  → pause every open batch of the account, park the job
 */
import { DelayedError, Worker, type Job } from 'bullmq';
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import type { Logger } from 'pino';
import { describeApiFailure, type ApiFailure } from '../cloud/api-failure.js';
import type { CallResult, DeviceRef, RevocationAction } from '../cloud/certificate-api.js';
import { classifyFailure } from '../cloud/classify.js';
import type { BatchStore } from '../batches/batch-store.js';
import type { BatchState } from '../batches/batch.js';
import type { DeadLetters } from '../dlq/dead-letters.js';
import type { AdaptiveRate } from '../limiter/adaptive-rate.js';
import type { RateGate } from '../limiter/rate-gate.js';
import { REVOCATION_QUEUE, type Keys } from '../queue/keys.js';
import { classOf, limiterPriority } from '../queue/priority.js';
import type { AttemptRecord, RevocationJobData } from '../queue/revocation-job.js';
import { OUTCOMES, type Outcome, type ResultRecord } from '../results/result-record.js';
import type { ResultStore } from '../results/result-store.js';
import { backoffMs, type BackoffOptions } from './backoff.js';
import { TtlCache } from './state-cache.js';

/** The one API call the worker makes. */
export interface Revoker {
  revoke(device: DeviceRef, action: RevocationAction): Promise<CallResult>;
}

/** Options of `RevocationWorker`. */
export interface RevocationWorkerOptions {
  /** In-flight jobs (and so API calls) in this process. */
  concurrency: number;
  /** Counted attempts per device before dead-lettering. */
  maxAttempts: number;
  /** Backoff of transient failures. */
  retry: BackoffOptions;
  /** Backoff of throttled calls: short, the rate gate does the real slowing. */
  throttleRetry: BackoffOptions;
  /** How stale a cached batch state may be: bounds how long a pause takes to bite. */
  stateMaxAgeMs: number;
  /** A parked job looks again after this long even if nobody resumes it (a safety net). */
  parkDelayMs: number;
  /** BullMQ lock duration: a crashed worker's jobs are retried after about this long. */
  lockDurationMs: number;
  /** How often the summary log line is written. */
  summaryEveryMs: number;
}

/** Defaults of `RevocationWorkerOptions`. */
export const REVOCATION_WORKER_DEFAULTS: RevocationWorkerOptions = {
  concurrency: 64,
  maxAttempts: 8,
  retry: { baseMs: 1_000, maxMs: 60_000 },
  throttleRetry: { baseMs: 250, maxMs: 5_000 },
  stateMaxAgeMs: 250,
  parkDelayMs: 300_000,
  lockDurationMs: 30_000,
  summaryEveryMs: 5_000,
};

/** What the worker needs from the rest of the system. */
export interface RevocationWorkerDeps {
  /** Connection for BullMQ (blocking commands; maxRetriesPerRequest null). */
  connection: Redis;
  /** Connection for revoker's own reads and writes. */
  redis: Redis;
  keys: Keys;
  api: Revoker;
  gate: RateGate;
  adaptive: AdaptiveRate | null;
  results: ResultStore;
  batches: BatchStore;
  deadLetters: DeadLetters;
  /** Limiter key of the account these credentials belong to. */
  rateKey: string;
  log: Logger;
  /** Observer of every call (metrics). */
  onCall?: (event: { action: RevocationAction; code: string; outcome: string; latencyMs: number }) => void;
}

type StateView = { state: BatchState | null; reason: string | null };

/** Result of one job, for the summary line. */
type JobEnd = Outcome | 'retry' | 'throttled' | 'parked' | 'dropped';

/** Runs a BullMQ worker over the revocation queue. */
export class RevocationWorker {
  readonly options: RevocationWorkerOptions;
  private worker: Worker<RevocationJobData> | null = null;
  private readonly batchState: TtlCache<StateView>;
  private readonly accountPause: TtlCache<string | null>;
  private summary = new Map<JobEnd, number>();
  private summaryTimer: NodeJS.Timeout | null = null;
  private lastSummaryAtMs = Date.now();

  constructor(
    private readonly deps: RevocationWorkerDeps,
    options: Partial<RevocationWorkerOptions> = {},
  ) {
    this.options = { ...REVOCATION_WORKER_DEFAULTS, ...options };
    this.batchState = new TtlCache(this.options.stateMaxAgeMs, (batchId) => deps.batches.state(batchId));
    this.accountPause = new TtlCache(this.options.stateMaxAgeMs, async () => deps.redis.hget(deps.keys.accountPause(deps.rateKey), 'reason'));
  }

  /** Starts taking jobs. */
  start(): void {
    this.worker = new Worker<RevocationJobData>(REVOCATION_QUEUE, (job, token) => this.process(job, token), {
      connection: this.deps.connection,
      prefix: this.deps.keys.prefix,
      concurrency: this.options.concurrency,
      lockDuration: this.options.lockDurationMs,
      // Look for stalled jobs as often as a lock can expire, so a dead worker's jobs wait at most ~2 locks.
      stalledInterval: this.options.lockDurationMs,
      // A job whose worker died is retried; it is counted in our history as an unknown result.
      maxStalledCount: 10,
      autorun: true,
    });
    this.worker.on('error', (error) => this.deps.log.error({ err: error }, 'worker error'));
    this.worker.on('failed', (job, error) => {
      this.deps.log.error({ err: error, jobId: job?.id, batchId: job?.data.batchId }, 'job failed inside revoker (not an API outcome); BullMQ retries it');
    });
    this.summaryTimer = setInterval(() => this.logSummary(), this.options.summaryEveryMs);
    this.summaryTimer.unref();
    this.deps.log.info({ concurrency: this.options.concurrency, maxAttempts: this.options.maxAttempts }, 'worker started');
  }

  /** Resolves once the worker is connected and waiting for jobs. */
  async waitUntilReady(): Promise<void> {
    await this.worker?.waitUntilReady();
  }

  /** Stops taking jobs, lets in-flight calls finish and record, then closes. */
  async close(): Promise<void> {
    if (this.summaryTimer) clearInterval(this.summaryTimer);
    await this.worker?.close();
    this.logSummary();
    this.deps.log.info('worker stopped');
  }

  private count(end: JobEnd): void {
    this.summary.set(end, (this.summary.get(end) ?? 0) + 1);
  }

  private logSummary(): void {
    if (this.summary.size === 0) return;
    const now = Date.now();
    const seconds = Math.max(0.001, (now - this.lastSummaryAtMs) / 1_000);
    const counts = Object.fromEntries(this.summary);
    const finished = OUTCOMES.reduce((sum, outcome) => sum + (this.summary.get(outcome) ?? 0), 0);
    this.deps.log.info({ counts, finishedPerSecond: Math.round(finished / seconds), ratePerSecond: Math.round(this.deps.gate.ratePerSecond()) }, 'progress');
    this.summary = new Map();
    this.lastSummaryAtMs = now;
  }

  private async process(job: Job<RevocationJobData>, token: string | undefined): Promise<void> {
    const end = await this.handle(job, token);
    this.count(end);
  }

  private async blockedReason(batchId: string): Promise<{ state: BatchState | null; reason: string | null; accountPaused: string | null }> {
    const [view, accountPaused] = await Promise.all([this.batchState.get(batchId), this.accountPause.get('account')]);
    return { ...view, accountPaused };
  }

  private async handle(job: Job<RevocationJobData>, token: string | undefined): Promise<JobEnd> {
    const data = job.data;
    const jobId = job.id ?? '';
    const gate = await this.blockedReason(data.batchId);
    if (gate.state === null) {
      // The batch expired or was never created: nothing to record into.
      this.deps.log.warn({ jobId, batchId: data.batchId }, 'job of an unknown batch dropped');
      return 'dropped';
    }
    if (gate.state === 'cancelled') return this.finish(job, 'cancelled', null, 'batch cancelled');
    if (gate.state === 'paused' || gate.accountPaused !== null) return this.park(job, token);

    // Urgent calls waiting in this process get the next permits (the queue already hands out
    // urgent jobs first; this covers the ones fetched while a bulk batch filled the process).
    await this.deps.gate.acquire(limiterPriority(classOf(job.priority)));
    // The permit may have taken a while: a pause issued meanwhile must still stop this call.
    const again = await this.blockedReason(data.batchId);
    if (again.state === 'cancelled') return this.finish(job, 'cancelled', null, 'batch cancelled');
    if (again.state === 'paused' || again.accountPaused !== null) return this.park(job, token);

    const startedAt = new Date();
    const firstAttemptAt = data.firstAttemptAt ?? startedAt.toISOString();
    const device: DeviceRef = { mqttInstanceId: data.mqttInstanceId, caSn: data.caSn, deviceSn: data.deviceSn };
    try {
      const result = await this.deps.api.revoke(device, data.action);
      this.deps.adaptive?.record(false);
      this.deps.onCall?.({ action: data.action, code: 'OK', outcome: 'success', latencyMs: Date.now() - startedAt.getTime() });
      const attempt: AttemptRecord = { at: new Date().toISOString(), code: 'OK', httpStatus: 200, requestId: result.requestId, counted: true, uncertain: false, message: '' };
      return this.finish(job, data.action === 'delete' ? 'deleted' : 'inactivated', attempt, null, firstAttemptAt);
    } catch (error) {
      const failure = describeApiFailure(error);
      const verdict = classifyFailure(failure);
      this.deps.onCall?.({ action: data.action, code: failure.code, outcome: verdict.action, latencyMs: Date.now() - startedAt.getTime() });
      this.deps.adaptive?.record(verdict.action === 'throttle');
      const counted = verdict.action !== 'throttle' && verdict.action !== 'fatal_for_batch' && verdict.action !== 'fatal_for_credentials';
      const attempt: AttemptRecord = {
        at: new Date().toISOString(),
        code: failure.code,
        httpStatus: failure.httpStatus,
        requestId: failure.requestId,
        counted,
        uncertain: verdict.uncertain,
        message: failure.message,
      };
      switch (verdict.action) {
        case 'not_found': {
          if (data.action === 'delete' && this.priorResultUnknown(job)) {
            return this.finish(job, 'deleted', attempt, 'confirmed by absence: an earlier attempt had an unknown result and the certificate is now gone', firstAttemptAt);
          }
          return this.finish(job, 'not_found', attempt, null, firstAttemptAt);
        }
        case 'throttle': {
          const throttles = this.trailingThrottles(data.history) + 1;
          return this.retryLater(job, token, attempt, firstAttemptAt, backoffMs(throttles, this.options.throttleRetry), 'throttled');
        }
        case 'retry': {
          const attempts = this.countedAttempts(data.history) + 1;
          if (attempts >= this.options.maxAttempts) {
            return this.deadLetter(job, attempt, firstAttemptAt, `gave up after ${attempts} attempts; last: ${failure.code} ${failure.message}`);
          }
          return this.retryLater(job, token, attempt, firstAttemptAt, backoffMs(attempts, this.options.retry), 'retry');
        }
        case 'permanent':
          return this.deadLetter(job, attempt, firstAttemptAt, `${failure.code}: ${failure.message}`);
        case 'fatal_for_batch':
          await this.pauseBatch(data.batchId, failure);
          return this.park(job, token, attempt, firstAttemptAt);
        case 'fatal_for_credentials':
          await this.pauseAccount(failure);
          return this.park(job, token, attempt, firstAttemptAt);
      }
    }
  }

  private countedAttempts(history: AttemptRecord[]): number {
    return history.filter((entry) => entry.counted).length;
  }

  private trailingThrottles(history: AttemptRecord[]): number {
    let count = 0;
    for (let i = history.length - 1; i >= 0 && history[i]?.code.startsWith('Throttling') === true; i -= 1) count += 1;
    return count;
  }

  /**
   * True when an earlier call for this job may have been applied: one failed ambiguously, or
   * one started and left no trace (its worker died or the job stalled mid-call).
   */
  private priorResultUnknown(job: Job<RevocationJobData>): boolean {
    if (job.data.history.some((entry) => entry.uncertain)) return true;
    // attemptsStarted counts this run too; every earlier run either made a call and left a
    // history entry, or made none and counted itself in runsWithoutCall. A run that did neither
    // died (or lost its lock) somewhere around a call.
    return job.attemptsStarted > job.data.history.length + (job.data.runsWithoutCall ?? 0) + 1 || job.stalledCounter > 0;
  }

  private async retryLater(job: Job<RevocationJobData>, token: string | undefined, attempt: AttemptRecord, firstAttemptAt: string, delayMs: number, end: JobEnd): Promise<never> {
    await job.updateData({ ...job.data, history: [...job.data.history, attempt], firstAttemptAt });
    await job.moveToDelayed(Date.now() + delayMs, token);
    this.count(end);
    throw new DelayedError();
  }

  private async park(job: Job<RevocationJobData>, token: string | undefined, attempt?: AttemptRecord, firstAttemptAt?: string): Promise<never> {
    if (attempt !== undefined) {
      await job.updateData({ ...job.data, history: [...job.data.history, attempt], firstAttemptAt: firstAttemptAt ?? job.data.firstAttemptAt });
    } else {
      // No call this run: say so, or the next run would take this one for a call with an unknown result.
      await job.updateData({ ...job.data, runsWithoutCall: (job.data.runsWithoutCall ?? 0) + 1 });
    }
    await this.deps.batches.park(job.data.batchId, job.id ?? '');
    await job.moveToDelayed(Date.now() + this.options.parkDelayMs, token);
    this.count('parked');
    throw new DelayedError();
  }

  private async deadLetter(job: Job<RevocationJobData>, attempt: AttemptRecord, firstAttemptAt: string, reason: string): Promise<JobEnd> {
    const history = [...job.data.history, attempt];
    // Dead letter first, record second: a crash in between retries the job, and both writes are idempotent.
    await this.deps.deadLetters.add({ ...job.data, history, firstAttemptAt, jobId: job.id ?? '', reason, deadLetteredAt: new Date().toISOString() });
    this.deps.log.warn({ batchId: job.data.batchId, deviceSn: job.data.deviceSn, code: attempt.code, reason }, 'device dead-lettered');
    return this.finish(job, 'failed', attempt, reason, firstAttemptAt);
  }

  private async finish(job: Job<RevocationJobData>, outcome: Outcome, last: AttemptRecord | null, message: string | null, firstAttemptAt: string | null = job.data.firstAttemptAt): Promise<JobEnd> {
    const history = last === null ? job.data.history : [...job.data.history, last];
    const record: ResultRecord = {
      batchId: job.data.batchId,
      mqttInstanceId: job.data.mqttInstanceId,
      caSn: job.data.caSn,
      deviceSn: job.data.deviceSn,
      action: job.data.action,
      outcome,
      attempts: this.countedAttempts(history),
      requestId: last?.requestId ?? null,
      errorCode: last === null || last.code === 'OK' ? null : last.code,
      httpStatus: last?.httpStatus ?? null,
      message: message ?? (last !== null && last.code !== 'OK' ? last.message : null),
      firstAttemptAt,
      finishedAt: new Date().toISOString(),
    };
    await this.deps.results.finalize(job.id ?? '', record);
    return outcome;
  }

  private async pauseBatch(batchId: string, failure: ApiFailure): Promise<void> {
    const reason = `${failure.code}: ${failure.message} (affects every device of the instance; fix it, then resume the batch)`;
    if (await this.deps.batches.pause(batchId, reason)) {
      this.deps.log.error({ batchId, code: failure.code, requestId: failure.requestId }, 'batch paused: the API refused the instance');
    }
    this.batchState.invalidate(batchId);
  }

  private async pauseAccount(failure: ApiFailure): Promise<void> {
    const reason = `${failure.code}: ${failure.message} (the credentials are unusable; fix them, then resume the batches)`;
    const set = await this.deps.redis.hsetnx(this.deps.keys.accountPause(this.deps.rateKey), 'reason', reason);
    this.accountPause.invalidate('account');
    if (set === 1) {
      this.deps.log.fatal({ code: failure.code, requestId: failure.requestId }, 'credentials refused by the API: pausing every batch of the account');
      for (const batchId of await this.deps.batches.openBatchIds()) {
        await this.deps.batches.pause(batchId, reason);
        this.batchState.invalidate(batchId);
      }
    }
  }
}
