/**
 * Operator actions on a batch (CLI and admin API share them): pause, resume, cancel.
 */
import type { Queue } from 'bullmq';
import { scanNodes, type RedisClient as Redis } from '../redis/redis-connection.js';
import type { Keys } from '../queue/keys.js';
import type { RevocationJobData } from '../queue/revocation-job.js';
import { classOf, jobPriority, type BatchPriority } from '../queue/priority.js';
import { moreUrgent } from '../queue/revocation-queue.js';
import type { ResultStore } from '../results/result-store.js';
import type { BatchStore } from './batch-store.js';
import { wakeJobs, type JobWakerOptions } from './job-waker.js';

/**
 * Keys looked at per SCAN step when finding account pauses (one per account, with any credentials
 * the workers use). The keyspace holds a ledger entry per revoked device for the retention time,
 * millions after a large leak: at 100 a step, a resume took 30 s per scan on 1.2 million keys; at
 * 10,000 it takes a few seconds, each step still short.
 */
const ACCOUNT_PAUSE_SCAN_COUNT = 10_000;

/** Outcome of an operator action. */
export interface ControlResult {
  ok: boolean;
  /** Why nothing happened, when `ok` is false. */
  message: string;
  /** Parked jobs woken up. */
  woken: number;
}

/** Pause, resume and cancel, with the side effects each needs. */
export class BatchControl {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly batches: BatchStore,
    private readonly queue: Queue<RevocationJobData>,
    private readonly results: ResultStore,
    private readonly waker: Partial<JobWakerOptions> = {},
  ) {}

  /**
   * Changes a batch's priority and moves its waiting jobs to the new class, at the position now
   * being served there (so an upgraded batch goes next, a downgraded one after what is waiting).
   * A job other batches share is raised by an upgrade but never lowered: it runs at the most
   * urgent of its subscribers' priorities.
   */
  async setPriority(batchId: string, priority: BatchPriority): Promise<ControlResult & { moved: number }> {
    const batch = await this.batches.get(batchId);
    if (batch === null) return { ok: false, message: `batch ${batchId} not found`, woken: 0, moved: 0 };
    await this.batches.setPriority(batchId, priority);
    let position = await this.batches.servingPosition(priority);
    let moved = 0;
    for await (const page of this.results.scanFields(batchId)) {
      const pending = page.filter((entry) => entry.record.outcome === 'pending').map((entry) => entry.field);
      // One round trip for the page's open jobs, then two per job (as before the ledger).
      for (const jobId of await this.results.openJobs(pending)) {
        if (jobId === null) continue;
        const job = await this.queue.getJob(jobId);
        if (job === undefined) continue;
        const state = await job.getState();
        if (state !== 'prioritized' && state !== 'delayed' && state !== 'waiting') continue;
        // Never lower a job another batch shares: it runs at its most urgent subscriber's class.
        if (!moreUrgent(priority, classOf(job.priority)) && (await this.results.subscribersOf(jobId)).some((other) => other !== batchId)) continue;
        await job.changePriority({ priority: jobPriority(priority, position++) }).catch(() => undefined);
        moved += 1;
      }
    }
    return { ok: true, message: `priority ${priority}`, woken: 0, moved };
  }

  /** Pauses a batch: workers stop calling for it within a fraction of a second. */
  async pause(batchId: string, reason = 'paused by an operator'): Promise<ControlResult> {
    const ok = await this.batches.pause(batchId, reason);
    return { ok, message: ok ? 'paused' : await this.notOpen(batchId), woken: 0 };
  }

  /**
   * Resumes a paused batch and wakes its parked jobs. Also lifts an account-wide pause (bad
   * credentials): an operator resuming says the cause is fixed; if not, the first call pauses again.
   */
  async resume(batchId: string): Promise<ControlResult> {
    const ok = await this.batches.resume(batchId);
    if (!ok) return { ok, message: await this.notOpen(batchId, 'is not paused'), woken: 0 };
    await this.clearAccountPauses();
    const woken = await this.wakeParked(batchId);
    return { ok, message: 'resumed', woken };
  }

  /**
   * Lifts every account-wide pause (the operator says the cause — credentials, permissions, a
   * blocked source IP — is fixed): resumes the batches that the account pause paused, and wakes
   * the parked jobs of every open batch, including batches started after the pause. This is the
   * way out when the batch paused first has been cancelled since.
   */
  async resumeAccount(): Promise<{ lifted: string[]; resumed: string[]; woken: number }> {
    const lifted = await this.accountPauseReasons();
    await this.clearAccountPauses();
    const resumed: string[] = [];
    let woken = 0;
    for (const batchId of await this.batches.openBatchIds()) {
      const batch = await this.batches.get(batchId);
      if (batch === null) continue;
      if (batch.state === 'paused' && batch.reason !== null && lifted.includes(batch.reason) && (await this.batches.resume(batchId))) resumed.push(batchId);
      woken += await this.wakeParked(batchId);
    }
    return { lifted, resumed, woken };
  }

  /** The reasons of the account-wide pauses in force. */
  async accountPauseReasons(): Promise<string[]> {
    const reasons: string[] = [];
    for (const node of scanNodes(this.redis)) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', this.keys.accountPause('*'), 'COUNT', ACCOUNT_PAUSE_SCAN_COUNT);
        cursor = next;
        for (const key of keys) {
          const reason = await this.redis.hget(key, 'reason');
          if (reason !== null) reasons.push(reason);
        }
      } while (cursor !== '0');
    }
    return reasons;
  }

  /**
   * Cancels a batch: it leaves its revocations. Each device is recorded `cancelled` as its job
   * next runs — unless an earlier call's answer was lost (then it gets the revocation's outcome,
   * or one read decides) — while other batches that want the same devices still get them revoked.
   */
  async cancel(batchId: string, reason = 'cancelled by an operator'): Promise<ControlResult> {
    const ok = await this.batches.cancel(batchId, reason);
    if (!ok) return { ok, message: await this.notOpen(batchId), woken: 0 };
    // Parked jobs must run once more to be recorded as cancelled.
    const woken = await this.wakeParked(batchId);
    return { ok, message: 'cancelled', woken };
  }

  private async notOpen(batchId: string, what = 'is not open'): Promise<string> {
    const batch = await this.batches.get(batchId);
    return batch === null ? `batch ${batchId} not found` : `batch ${batchId} ${what} (state ${batch.state})`;
  }

  private async clearAccountPauses(): Promise<void> {
    // Every master on a Redis Cluster (the keys share one hash tag, so one of them holds them all).
    for (const node of scanNodes(this.redis)) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', this.keys.accountPause('*'), 'COUNT', ACCOUNT_PAUSE_SCAN_COUNT);
        cursor = next;
        if (keys.length > 0) await this.redis.del(...keys);
      } while (cursor !== '0');
    }
  }

  /**
   * Promotes the batch's parked (delayed) jobs so workers take them now, also those still being
   * parked (active: see `wakeJobs`). All pages first, then one wait for the active ones: the set
   * also holds jobs in a retry backoff, which may be running, and a resume must not wait for them
   * page after page.
   */
  private async wakeParked(batchId: string): Promise<number> {
    const ids: string[] = [];
    for (;;) {
      const page = await this.batches.takeParked(batchId, 500);
      if (page.length === 0) break;
      ids.push(...page);
    }
    return ids.length === 0 ? 0 : wakeJobs(this.queue, ids, { mayBeParking: (active) => this.results.markedParked(active), ...this.waker });
  }
}
