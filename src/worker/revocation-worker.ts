/**
 * The revocation worker: takes revocation jobs off the queue and revokes each through the
 * account-wide rate gate, classifying every outcome once. BullMQ only delivers the job (at least
 * once); the ledger (ResultStore) decides who gets its outcome: every batch subscribed to the job.
 *
 * Per run (state machine):
 *   a call intent left behind  → that call's answer was lost: history gains an unknown result
 *   subscribers (decideRun)    → gone batches leave; cancelled ones leave with `cancelled` unless
 *                                an earlier call's result is unknown; none left → close, no call;
 *                                all paused or the account paused → park (delay + parked sets);
 *                                only cancelled ones after an unknown result → one
 *                                GetDeviceCertificate decides for them (`gone` or `cancelled`)
 *   attempts used up           → dead-letter (crashes each add a counted unknown result: bounded)
 *   otherwise                  → permit (at the most urgent running subscriber's priority) →
 *                                call intent → call →
 *       success                → record deleted/inactivated (evidence: answer)
 *       not_found              → record not_found, or `gone` when an earlier call's answer
 *                                was lost (the certificate may have been deleted by it)
 *       throttle               → slow the shared rate, retry soon, not an attempt
 *       retry                  → backoff, or dead-letter after MAX_ATTEMPTS
 *       permanent              → dead-letter (an undocumented code on 3 devices in a row
 *                                pauses the account instead)
 *       fatal_for_batch        → pause the running subscribers, park (instance-rule: a row's
 *                                instance override that fails again after a resume dead-letters)
 *       fatal_for_account      → pause every open batch of the account, park the job
 *       ip_blocked             → the same, with the egress's measured rate in the reason
 * Every record goes through FINALIZE into every subscriber still pending; dead letters list them.
 */
import { DelayedError, Worker, type Job } from 'bullmq';
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import type { Logger } from 'pino';
import { describeApiFailure, type ApiFailure } from '../cloud/api-failure.js';
import type { CallResult, DeviceRef, RevocationAction } from '../cloud/certificate-api.js';
import { classifyFailure, type FailureClass } from '../cloud/classify.js';
import type { BatchStore } from '../batches/batch-store.js';
import type { BatchState } from '../batches/batch.js';
import type { DeadLetters } from '../dlq/dead-letters.js';
import type { AdaptiveRate } from '../limiter/adaptive-rate.js';
import { revocationApiAction } from '../limiter/api-action.js';
import { readBudgetRates } from '../limiter/budget-status.js';
import type { Permit, RateGate } from '../limiter/rate-gate.js';
import { REVOCATION_QUEUE, type Keys } from '../queue/keys.js';
import { revocationIdOf } from '../queue/job-id.js';
import { limiterPriority } from '../queue/priority.js';
import { countedAttempts, type AttemptRecord, type RevocationJobData } from '../queue/revocation-job.js';
import { OUTCOMES, type Evidence, type Outcome, type ReadBack, type ResultRecord } from '../results/result-record.js';
import type { ResultStore } from '../results/result-store.js';
import type { ExistenceSnapshots } from '../results/existence-snapshot.js';
import type { RedisClock } from '../redis/redis-clock.js';
import { afterLostAnswer, stepAfterAnswer } from './answer-step.js';
import { readBack, readDevice } from './read-back.js';
import { backoffMs, type BackoffOptions } from './backoff.js';
import { CallJournal } from './call-journal.js';
import { JobDataWriter, LockLostError } from './job-data.js';
import { RedisRestartWatch } from './redis-restart-watch.js';
import { decideInstanceError } from './instance-rule.js';
import { RepeatedRefusals } from './repeated-refusals.js';
import { decideRun, stillRunning } from './run-decision.js';
import { TtlCache } from './state-cache.js';

/** The API calls the worker makes. */
export interface Revoker {
  revoke(device: DeviceRef, action: RevocationAction): Promise<CallResult>;
  /** Reads a certificate (to decide a cancel that follows a lost answer). */
  getDevice(device: DeviceRef): Promise<CallResult>;
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
  /**
   * BullMQ's stall limit. High on purpose: each stall during a call adds a counted unknown-result
   * attempt (the call intent), so MAX_ATTEMPTS bounds a device that keeps killing its worker; a
   * stall before any call costs nothing and must not fail the job without a record.
   */
  maxStalledCount: number;
  /** How often the summary log line is written. */
  summaryEveryMs: number;
  /**
   * After Redis came back as a new instance, how long runs wait before deciding anything: time for
   * every worker to reconnect and mark the recent calls whose intents Redis may have lost.
   */
  restartSettleMs: number;
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
  maxStalledCount: 1_000,
  summaryEveryMs: 5_000,
  restartSettleMs: 5_000,
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
  /** This process's egress group and its budget, for the message of an IP-block pause. */
  egress?: { egressId: string; ratePerSecond: number };
  log: Logger;
  /** Existence snapshots, asked after a lost answer followed by "not registered" (none: `gone`). */
  snapshots?: ExistenceSnapshots;
  /** Redis' clock, to stamp a revocation's first call for comparison with snapshots. */
  clock?: RedisClock;
  /** Observer of every call (metrics). */
  onCall?: (event: { action: RevocationAction; code: string; outcome: string; latencyMs: number }) => void;
}

type StateView = { state: BatchState | null; reason: string | null };

/** Result of one job, for the summary line. */
type JobEnd = Outcome | 'retry' | 'throttled' | 'parked' | 'closed';

/** Rounds of "decide, then the subscribers changed" before a run gives up (BullMQ retries it). */
const MAX_DECISION_ROUNDS = 20;

/** Runs a BullMQ worker over the revocation queue. */
export class RevocationWorker {
  readonly options: RevocationWorkerOptions;
  private worker: Worker<RevocationJobData> | null = null;
  private readonly batchState: TtlCache<StateView>;
  private readonly accountPause: TtlCache<string | null>;
  /** Whether a batch asked for `--verify` (fixed at creation, so cached long). */
  private readonly verifyWanted: TtlCache<boolean>;
  private summary = new Map<JobEnd, number>();
  private summaryTimer: NodeJS.Timeout | null = null;
  private lastSummaryAtMs = Date.now();
  private readonly refusals = new RepeatedRefusals();
  /** Recent calls, for when Redis comes back without their intents (see CallJournal). */
  private readonly journal = new CallJournal();
  private readonly restartWatch: RedisRestartWatch;
  private readonly jobData: JobDataWriter;

  constructor(
    private readonly deps: RevocationWorkerDeps,
    options: Partial<RevocationWorkerOptions> = {},
  ) {
    this.options = { ...REVOCATION_WORKER_DEFAULTS, ...options };
    this.batchState = new TtlCache(this.options.stateMaxAgeMs, (batchId) => deps.batches.state(batchId));
    this.accountPause = new TtlCache(this.options.stateMaxAgeMs, async () => deps.redis.hget(deps.keys.accountPause(deps.rateKey), 'reason'));
    this.jobData = new JobDataWriter(deps.redis, deps.keys);
    this.verifyWanted = new TtlCache(60_000, async (batchId) => (await deps.redis.hget(deps.keys.batch(batchId), 'verify')) === '1');
    this.restartWatch = new RedisRestartWatch(deps.redis, deps.results, this.journal, deps.log, this.options.restartSettleMs);
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
      // A job whose worker died mid-call is retried; its call intent counts as an unknown result.
      maxStalledCount: this.options.maxStalledCount,
      autorun: true,
    });
    this.worker.on('error', (error) => this.deps.log.error({ err: error }, 'worker error'));
    this.worker.on('failed', (job, error) => {
      this.deps.log.error({ err: error, jobId: job?.id, batchId: job?.data.batchId }, 'job failed inside revoker (not an API outcome); BullMQ retries it');
    });
    this.restartWatch.start();
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
    this.restartWatch.stop();
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
    const gate = this.deps.gate.takeStats?.();
    this.deps.log.info({ counts, finishedPerSecond: Math.round(finished / seconds), ratePerSecond: Math.round(this.deps.gate.ratePerSecond()), ...(gate === undefined ? {} : { gate }) }, 'progress');
    this.summary = new Map();
    this.lastSummaryAtMs = now;
  }

  private async process(job: Job<RevocationJobData>, token: string | undefined): Promise<void> {
    // After a dropped connection: did Redis restart (and forget call intents)? Decide nothing before knowing.
    await this.restartWatch.beforeRun();
    try {
      this.count(await this.handle(job, token));
    } catch (error) {
      if (!(error instanceof LockLostError)) throw error;
      // The job belongs to the run that took it over: leave it alone (DelayedError: BullMQ moves nothing).
      this.deps.log.warn({ jobId: job.id, batchId: job.data.batchId, deviceSn: job.data.deviceSn }, error.message);
      this.journal.ended(job.id ?? '');
      this.count('closed');
      throw new DelayedError();
    }
  }

  private async handle(job: Job<RevocationJobData>, token: string | undefined): Promise<JobEnd> {
    const jobId = job.id ?? '';
    const rid = job.data.revocationId ?? revocationIdOf(jobId);
    if (job.data.callIntent != null) await this.recordLostAnswer(job, token);
    const accountPauseKey = this.deps.keys.accountPause(this.deps.rateKey);
    for (let round = 0; round < MAX_DECISION_ROUNDS; round += 1) {
      const view = await this.deps.results.readSubscribers(rid, jobId, accountPauseKey);
      const unknown = this.priorResultUnknown(job) || view.lostAnswer;
      const plan = decideRun({ subscribers: view.subscribers, accountPaused: view.accountPaused !== null, priorResultUnknown: unknown });
      for (const leaving of plan.leaving) {
        const record = leaving.record === 'cancelled' ? this.record(job, 'cancelled', 'none', null, 'batch cancelled') : null;
        await this.deps.results.unsubscribe(jobId, rid, leaving.batchId, record);
        if (record !== null) this.count('cancelled');
      }
      const step = plan.step;
      if (step.kind === 'close') {
        // A batch may have subscribed since the read: then it wants the call, decide again.
        if (await this.deps.results.closeRevocation(rid, jobId)) return 'closed';
        continue;
      }
      if (step.kind === 'park') {
        // Refused when a resume came between the read and the park: decide again.
        await this.park(job, token, rid, step.parkIn, view.accountPaused !== null ? 'account' : 'batch');
        continue;
      }
      if (step.kind === 'read_for_cancel') return this.cancel(job, rid, unknown);
      const attempts = countedAttempts(job.data.history);
      if (attempts >= this.options.maxAttempts) {
        return this.deadLetter(job, rid, null, `gave up after ${attempts} attempts; the answer of the last was lost (the worker stopped during the call)`);
      }
      // Urgent calls waiting in this process get the next permits (the queue already hands out
      // urgent jobs first; this covers the ones fetched while a bulk batch filled the process).
      // The call's write-ahead intent is written in the last moments before the slot, not after
      // it: its Redis round trips used to make calls leave late (docs/DESIGN.md §2, "Slots on
      // Redis' clock").
      const before = job.data;
      const intent = { written: false };
      const permit = await this.deps.gate.acquire(revocationApiAction(job.data.action), limiterPriority(step.priority), async () => {
        intent.written = await this.writeIntent(job, token, step.running);
      });
      if (!intent.written) continue;
      // The slot may have taken a while: a pause or cancel issued meanwhile must still stop the
      // call, and then the intent of a call never made goes (a later run would count it lost).
      if (!(await this.stillRunning(step.running))) {
        await this.jobData.write(job, token, before);
        continue;
      }
      return this.call(job, token, rid, step.running, unknown, permit);
    }
    throw new Error(`job ${jobId}: its subscribers kept changing for ${MAX_DECISION_ROUNDS} rounds; BullMQ retries it`);
  }

  /** Whether every one of these batches still runs and the account is not paused (cached reads). */
  private async stillRunning(batchIds: readonly string[]): Promise<boolean> {
    const [states, accountPaused] = await Promise.all([Promise.all(batchIds.map((batchId) => this.batchState.get(batchId))), this.accountPause.get('account')]);
    return stillRunning(
      states.map((state) => state.state),
      accountPaused !== null,
    );
  }

  /**
   * Before a call, in the last moments before its slot, the write-ahead intent: if this process dies
   * before the answer is recorded, the next run sees it. False (nothing written) when a
   * subscriber stopped meanwhile.
   */
  private async writeIntent(job: Job<RevocationJobData>, token: string | undefined, running: readonly string[]): Promise<boolean> {
    if (!(await this.stillRunning(running))) return false;
    const data = job.data;
    const at = new Date().toISOString();
    const firstAttemptAt = data.firstAttemptAt ?? at;
    const firstCallAt = data.firstAttemptAt === null ? ((await this.deps.clock?.now()) ?? null) : (data.firstCallAt ?? null);
    await this.jobData.write(job, token, { ...data, firstAttemptAt, firstCallAt, callIntent: { at } });
    return true;
  }

  /** The call; `lostBefore`: an earlier call's answer was lost (its history or the ledger says so). */
  private async call(job: Job<RevocationJobData>, token: string | undefined, rid: string, running: string[], lostBefore: boolean, permit: Permit): Promise<JobEnd> {
    const jobId = job.id ?? '';
    const data = job.data;
    const device: DeviceRef = { mqttInstanceId: data.mqttInstanceId, caSn: data.caSn, deviceSn: data.deviceSn };
    // Last before sending: the call must still leave within the tolerance of its slot (else the
    // API could count more than the budget in a second); a late one is moved to now or retaken.
    await permit.confirm();
    const startedAt = new Date();
    // Journaled only now, with nothing awaited before the call: a write still pending when Redis
    // crashed (then failed, or the lock was gone) made no call, and marking it lost after the
    // restart turned a never-registered device `gone` instead of `not_found` (redis-crash.test.ts).
    this.journal.started(jobId, rid);
    let attempt: AttemptRecord;
    let failure: ApiFailure | null = null;
    let verdict: FailureClass | null = null;
    try {
      const result = await this.deps.api.revoke(device, data.action).finally(() => this.journal.ended(jobId));
      this.deps.adaptive?.record(false);
      this.deps.onCall?.({ action: data.action, code: 'OK', outcome: 'success', latencyMs: Date.now() - startedAt.getTime() });
      attempt = { at: new Date().toISOString(), code: 'OK', httpStatus: 200, requestId: result.requestId, counted: true, uncertain: false, message: '' };
    } catch (error) {
      failure = describeApiFailure(error);
      verdict = classifyFailure(failure);
      this.deps.onCall?.({ action: data.action, code: failure.code, outcome: verdict.action, latencyMs: Date.now() - startedAt.getTime() });
      this.deps.adaptive?.record(verdict.action === 'throttle');
      const pausing = verdict.action === 'fatal_for_batch' || verdict.action === 'fatal_for_account' || verdict.action === 'ip_blocked';
      attempt = {
        at: new Date().toISOString(),
        code: failure.code,
        httpStatus: failure.httpStatus,
        requestId: failure.requestId,
        counted: verdict.action !== 'throttle' && !pausing,
        uncertain: verdict.uncertain,
        message: failure.message,
      };
    }
    const undocumented = verdict !== null && verdict.action === 'permanent' && !verdict.documented;
    const refusedInARow = undocumented && failure !== null && this.refusals.refused(failure.code, jobId);
    if (!undocumented) this.refusals.reset();
    let accountPaused = false;
    if (undocumented && !refusedInARow) {
      this.accountPause.invalidate('account');
      accountPaused = (await this.accountPause.get('account')) !== null;
    }
    const snapshot = verdict?.action === 'not_found' && lostBefore ? await this.snapshotSays(job.data) : null;
    const step = stepAfterAnswer({
      action: data.action,
      verdict,
      failure,
      history: data.history,
      lostBefore,
      snapshot,
      maxAttempts: this.options.maxAttempts,
      refusedInARow,
      accountPaused,
    });
    switch (step.kind) {
      case 'record':
        return this.finish(job, rid, step.outcome, step.evidence ?? 'answer', attempt, step.message, await this.proofFor(step.outcome, data.action, device, running));
      case 'retry':
        return this.retryLater(job, token, attempt, backoffMs(step.retry, step.end === 'throttled' ? this.options.throttleRetry : this.options.retry), step.end, running);
      case 'dead_letter':
        return this.deadLetter(job, rid, attempt, step.reason);
      case 'park':
        return this.parkAfter(job, token, rid, running, attempt, 'account');
      case 'pause_instance':
        return this.instanceError(job, token, rid, running, failure as ApiFailure, attempt);
      case 'pause_account': {
        const code = failure?.code ?? '';
        const reason =
          step.why === 'refusals'
            ? `${code} (HTTP ${failure?.httpStatus ?? '?'}) refused several different devices in a row: the request itself is being refused, not the devices; find the cause, then run 'revoker account resume'`
            : step.why === 'ip_blocked'
              ? await this.ipBlockReason(failure as ApiFailure)
              : `${code}: ${failure?.message ?? ''} (every call of the account is refused: fix the credentials or permissions, then run 'revoker account resume' or resume a batch)`;
        await this.pauseAccount(failure as ApiFailure, reason);
        return this.parkAfter(job, token, rid, running, attempt, 'account');
      }
    }
  }

  /**
   * The API refused the device's instance: pause the running subscribers and park — except in a
   * batch resumed after such a pause where this instance is only a row's override (instance-rule):
   * there the revocation ends with a dead letter instead of pausing the batch forever.
   */
  private async instanceError(job: Job<RevocationJobData>, token: string | undefined, rid: string, running: string[], failure: ApiFailure, attempt: AttemptRecord): Promise<JobEnd> {
    const instance = job.data.mqttInstanceId;
    const step = decideInstanceError(await this.deps.batches.instanceView(running, instance), instance);
    if (step.kind === 'end') {
      return this.deadLetter(
        job,
        rid,
        attempt,
        `${failure.code}: ${failure.message} (instance ${instance} is refused again after the batch was resumed; the batch's devices are mostly on ${step.usualInstances.join(', ')}, so this row's instance looks wrong: dead-lettered instead of pausing the batch again)`,
      );
    }
    for (const batchId of step.batchIds) await this.pauseBatch(batchId, failure, instance);
    return this.parkAfter(job, token, rid, step.batchIds.length > 0 ? step.batchIds : running, attempt, 'force');
  }

  /**
   * A call intent left by an earlier run: that run called and nobody saw the answer (the worker
   * died, or lost the job, mid-call). Its history gains an attempt with an unknown result.
   */
  private async recordLostAnswer(job: Job<RevocationJobData>, token: string | undefined): Promise<void> {
    const intent = job.data.callIntent;
    const lost: AttemptRecord = {
      at: intent?.at ?? new Date().toISOString(),
      code: 'AnswerLost',
      httpStatus: null,
      requestId: null,
      counted: true,
      uncertain: true,
      message: 'the worker stopped during this call (crash, kill or lost lock): its result is unknown',
    };
    await this.jobData.write(job, token, { ...job.data, history: [...job.data.history, lost], callIntent: null });
  }

  /**
   * Every subscriber left is cancelled, and an earlier call's answer was lost: a single read
   * decides for them all: gone → `gone` (evidence: read), still there → `cancelled` (evidence:
   * read), inactive after an inactivate → `inactivated` (evidence: read).
   */
  private async cancel(job: Job<RevocationJobData>, rid: string, lostBefore: boolean): Promise<JobEnd> {
    if (!lostBefore) return this.finish(job, rid, 'cancelled', 'none', null, 'batch cancelled');
    const data = job.data;
    const read = await readDevice(this.deps.api, this.deps.gate, data, { tries: this.options.maxAttempts, retry: this.options.retry });
    // The read could not decide: say exactly that rather than claim either way.
    if (read.kind === 'unreadable') return this.deadLetter(job, rid, null, 'batch cancelled after a call whose answer was lost, and the certificate could not be read to decide; check it by hand');
    const at = new Date().toISOString();
    if (read.kind === 'registered') {
      const readAttempt: AttemptRecord = { at, code: 'OK', httpStatus: 200, requestId: read.requestId, counted: false, uncertain: false, message: `read after cancel: registered, status ${read.status || '?'}` };
      if (data.action === 'inactivate' && read.status === '0') {
        return this.finish(job, rid, 'inactivated', 'read', readAttempt, 'batch cancelled after a call whose answer was lost; a read shows the certificate inactive');
      }
      return this.finish(job, rid, 'cancelled', 'read', readAttempt, 'batch cancelled; a read after a lost answer shows the certificate still registered');
    }
    const readAttempt: AttemptRecord = { at, code: read.code, httpStatus: read.httpStatus, requestId: read.requestId, counted: false, uncertain: false, message: read.message };
    const step = afterLostAnswer({ action: data.action, snapshot: await this.snapshotSays(data) });
    if (step.evidence === 'snapshot') return this.finish(job, rid, step.outcome, 'snapshot', readAttempt, `batch cancelled; ${step.message ?? ''}`);
    return this.finish(job, rid, 'gone', 'read', readAttempt, 'batch cancelled after a call whose answer was lost; a read shows the certificate no longer registered');
  }

  /**
   * What the existence snapshots say of this device, compared with the revocation's first call:
   * on Redis' clock when the calling worker stamped it, else its ISO time less 5 s (another
   * host's clock). Null when no snapshot knows, when there is no first call on record, or when
   * the snapshots cannot be read (the outcome then stays `gone`: never a guess).
   */
  private async snapshotSays(data: RevocationJobData): Promise<'present' | 'absent' | null> {
    const snapshots = this.deps.snapshots;
    if (snapshots === undefined) return null;
    const firstCallAt = typeof data.firstCallAt === 'number' ? data.firstCallAt : data.firstAttemptAt === null ? null : Date.parse(data.firstAttemptAt) - 5_000;
    if (firstCallAt === null || !Number.isFinite(firstCallAt)) return null;
    const verdict = await snapshots.lookup(data, firstCallAt).catch((error: unknown) => {
      this.deps.log.warn({ err: error, deviceSn: data.deviceSn }, 'existence snapshot unreadable: the outcome stays gone');
      return null;
    });
    return verdict?.kind ?? null;
  }

  /** With `--verify` on a running subscriber: the read after the revocation (see read-back.ts). */
  private async proofFor(outcome: Outcome, action: RevocationAction, device: DeviceRef, running: readonly string[]): Promise<ReadBack | undefined> {
    if (outcome === 'failed' || outcome === 'cancelled') return undefined;
    const wanted = await Promise.all(running.map((batchId) => this.verifyWanted.get(batchId)));
    if (!wanted.includes(true)) return undefined;
    return readBack(this.deps.api, this.deps.gate, device, action, { tries: this.options.maxAttempts, retry: this.options.retry });
  }

  /** True when an earlier call for this job may have been applied: its answer was lost or ambiguous. */
  private priorResultUnknown(job: Job<RevocationJobData>): boolean {
    return job.data.history.some((entry) => entry.uncertain);
  }

  /**
   * Waits for a retry. The job is also noted in its running subscribers' parked sets, so that a
   * cancel (or a resume) of one of them runs it now instead of after the backoff: a cancelled
   * batch gets its records within a second, not after up to RETRY_MAX_MS.
   */
  private async retryLater(job: Job<RevocationJobData>, token: string | undefined, attempt: AttemptRecord, delayMs: number, end: JobEnd, running: readonly string[]): Promise<never> {
    await this.jobData.write(job, token, { ...job.data, history: [...job.data.history, attempt], callIntent: null });
    if (job.id !== undefined && running.length > 0) {
      const pipeline = this.deps.redis.pipeline();
      for (const batchId of running) pipeline.sadd(this.deps.keys.parked(batchId), job.id);
      await pipeline.exec();
    }
    await job.moveToDelayed(Date.now() + delayMs, token);
    this.count(end);
    throw new DelayedError();
  }

  /**
   * Parks the job in these batches' parked sets (any of their resumes, or an account resume,
   * wakes it) and throws DelayedError; returns when the ledger refused because the reason to park
   * is gone already (see park.lua's modes).
   */
  private async park(job: Job<RevocationJobData>, token: string | undefined, rid: string, batchIds: readonly string[], mode: 'account' | 'batch' | 'force'): Promise<void> {
    if (!(await this.deps.results.park(rid, job.id ?? '', batchIds, mode, this.deps.keys.accountPause(this.deps.rateKey)))) return;
    await job.moveToDelayed(Date.now() + this.options.parkDelayMs, token);
    this.count('parked');
    throw new DelayedError();
  }

  /**
   * After an answer that paused the account or batches: keep the attempt and park. If the pause
   * was lifted meanwhile, retry soon instead.
   */
  private async parkAfter(job: Job<RevocationJobData>, token: string | undefined, rid: string, batchIds: readonly string[], attempt: AttemptRecord, mode: 'account' | 'force'): Promise<never> {
    await this.jobData.write(job, token, { ...job.data, history: [...job.data.history, attempt], callIntent: null });
    await this.park(job, token, rid, batchIds, mode);
    await job.moveToDelayed(Date.now() + backoffMs(1, this.options.retry), token);
    this.count('retry');
    throw new DelayedError();
  }

  /**
   * Dead-letters the revocation: one entry for the job, listing its subscribers, each of which
   * gets a `failed` record. Dead letter first, records second: a crash in between retries the
   * job, and both writes are idempotent.
   */
  private async deadLetter(job: Job<RevocationJobData>, rid: string, attempt: AttemptRecord | null, reason: string): Promise<JobEnd> {
    const jobId = job.id ?? '';
    const history = attempt === null ? job.data.history : [...job.data.history, attempt];
    const subscribers = await this.deps.results.subscribersOf(jobId);
    await this.deps.deadLetters.add({ ...job.data, history, callIntent: null, jobId, subscribers, reason, deadLetteredAt: new Date().toISOString() });
    this.deps.log.warn({ batchId: job.data.batchId, subscribers, deviceSn: job.data.deviceSn, code: attempt?.code ?? null, reason }, 'device dead-lettered');
    const written = await this.write(job, rid, 'failed', attempt === null ? 'none' : 'answer', attempt, reason);
    // A batch that subscribed between the two steps has a `failed` record too: list it.
    const missing = written.filter((batchId) => !subscribers.includes(batchId));
    if (missing.length > 0) await this.deps.deadLetters.addSubscribers(jobId, missing);
    return 'failed';
  }

  /** The record of this job's outcome (as the opening batch's; FINALIZE rewrites the batch id per subscriber). */
  private record(job: Job<RevocationJobData>, outcome: Outcome, evidence: Evidence, last: AttemptRecord | null, message: string | null, proof?: ReadBack): ResultRecord {
    const history = last === null ? job.data.history : [...job.data.history, last];
    const answered = [...history].reverse().find((entry) => entry.requestId !== null) ?? last;
    return {
      batchId: job.data.batchId,
      mqttInstanceId: job.data.mqttInstanceId,
      caSn: job.data.caSn,
      deviceSn: job.data.deviceSn,
      action: job.data.action,
      outcome,
      evidence,
      attempts: countedAttempts(history),
      requestId: last?.requestId ?? answered?.requestId ?? null,
      errorCode: last === null || last.code === 'OK' ? null : last.code,
      httpStatus: last?.httpStatus ?? null,
      message: message ?? (last !== null && last.code !== 'OK' ? last.message : null),
      firstAttemptAt: job.data.firstAttemptAt,
      finishedAt: new Date().toISOString(),
      ...proof,
    };
  }

  /** Writes the outcome into every subscriber still pending and closes the job; returns the batches written. */
  private write(job: Job<RevocationJobData>, rid: string, outcome: Outcome, evidence: Evidence, last: AttemptRecord | null, message: string | null, proof?: ReadBack): Promise<string[]> {
    return this.deps.results.finalizeRevocation(rid, job.id ?? '', this.record(job, outcome, evidence, last, message, proof));
  }

  private async finish(job: Job<RevocationJobData>, rid: string, outcome: Outcome, evidence: Evidence, last: AttemptRecord | null, message: string | null, proof?: ReadBack): Promise<JobEnd> {
    await this.write(job, rid, outcome, evidence, last, message, proof);
    return outcome;
  }

  /** The reason of an IP-block pause: what was answered, and how fast this egress was calling. */
  private async ipBlockReason(failure: ApiFailure): Promise<string> {
    const egress = this.deps.egress;
    let measured = '';
    if (egress !== undefined) {
      const rates = await readBudgetRates(this.deps.redis, this.deps.keys).catch(() => []);
      const mine = rates.find((rate) => rate.kind === 'egress' && rate.label === egress.egressId);
      const perSecond = mine?.lastSecond ?? null;
      measured =
        perSecond === null
          ? ` Egress group '${egress.egressId}' has a budget of ${egress.ratePerSecond}/s.`
          : ` Egress group '${egress.egressId}' made ${perSecond} calls in the last second against its budget of ${egress.ratePerSecond}/s` +
            (perSecond > 300 ? ` (${perSecond - 300} over the API's 300/s per IP).` : ' (under the 300/s per IP limit: is another client or another EGRESS_ID using the same source IP?).');
    }
    return `${failure.code} (HTTP ${failure.httpStatus ?? '?'}): the API may have blocked this source IP for calling too fast.${measured} Every batch of the account is paused; wait for the block to lift, check EGRESS_ID / EGRESS_RATE_LIMIT_PER_SECOND on every host behind that IP, then run 'revoker account resume'.`;
  }

  private async pauseBatch(batchId: string, failure: ApiFailure, instance: string): Promise<void> {
    const reason = `${failure.code} on instance ${instance}: ${failure.message} (affects every device of the instance; fix it, then resume the batch)`;
    if (await this.deps.batches.pause(batchId, reason, instance)) {
      this.deps.log.error({ batchId, instance, code: failure.code, requestId: failure.requestId }, 'batch paused: the API refused the instance');
    }
    this.batchState.invalidate(batchId);
  }

  private async pauseAccount(failure: ApiFailure, reason: string): Promise<void> {
    const set = await this.deps.redis.hsetnx(this.deps.keys.accountPause(this.deps.rateKey), 'reason', reason);
    this.accountPause.invalidate('account');
    if (set === 1) {
      this.deps.log.fatal({ code: failure.code, httpStatus: failure.httpStatus, requestId: failure.requestId, reason }, 'the API refuses every call of the account: pausing every batch of the account');
      for (const batchId of await this.deps.batches.openBatchIds()) {
        await this.deps.batches.pause(batchId, reason);
        this.batchState.invalidate(batchId);
      }
    }
  }
}
