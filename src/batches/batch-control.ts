/**
 * Operator actions on a batch (CLI and admin API share them): pause, resume, cancel.
 */
import type { Queue } from 'bullmq';
import { scanNodes, type RedisClient as Redis } from '../redis/redis-connection.js';
import type { Keys } from '../queue/keys.js';
import type { RevocationJobData } from '../queue/revocation-job.js';
import type { BatchStore } from './batch-store.js';

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
  ) {}

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

  /** Cancels a batch: its remaining devices are recorded `cancelled` without any call. */
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
        const [next, keys] = await node.scan(cursor, 'MATCH', this.keys.accountPause('*'), 'COUNT', 100);
        cursor = next;
        if (keys.length > 0) await this.redis.del(...keys);
      } while (cursor !== '0');
    }
  }

  /** Promotes the batch's parked (delayed) jobs so workers take them now. */
  private async wakeParked(batchId: string): Promise<number> {
    let woken = 0;
    for (;;) {
      const ids = await this.batches.takeParked(batchId, 500);
      if (ids.length === 0) return woken;
      for (const id of ids) {
        const job = await this.queue.getJob(id);
        if (job === undefined) continue;
        if ((await job.getState()) === 'delayed') {
          await job.promote().catch(() => undefined);
          woken += 1;
        }
      }
    }
  }
}
