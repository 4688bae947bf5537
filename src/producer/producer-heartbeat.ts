/**
 * The producer heartbeat of a batch being enqueued: a key with a short TTL that says its producer
 * is alive. The reconciler cuts short a batch still `enqueuing` without one (docs/DESIGN.md §4),
 * so it is kept for as long as the producer works on the batch: reading a slow input, waiting for
 * room below the high-water mark, or listing a CA before the first chunk.
 */
import type { BatchStore } from '../batches/batch-store.js';
import { PRODUCER_HEARTBEAT_MS } from '../results/result-store.js';

/** Renews a batch's producer heartbeat until stopped. */
export class ProducerHeartbeat {
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly batches: Pick<BatchStore, 'heartbeat'>,
    private readonly batchId: string,
  ) {}

  /**
   * Renews now and then every third of the heartbeat's lifetime (a missed renewal or two is not
   * death). The timer does not keep the process alive.
   */
  static async start(batches: Pick<BatchStore, 'heartbeat'>, batchId: string): Promise<ProducerHeartbeat> {
    const heartbeat = new ProducerHeartbeat(batches, batchId);
    await batches.heartbeat(batchId);
    heartbeat.timer = setInterval(() => void heartbeat.beat(), PRODUCER_HEARTBEAT_MS / 3);
    heartbeat.timer.unref();
    return heartbeat;
  }

  /** Renews it now (a producer waiting for room says it is alive). */
  async beat(): Promise<void> {
    await this.batches.heartbeat(this.batchId).catch(() => undefined);
  }

  /** Stops renewing; the key lapses on its own (MARK_ENQUEUED deletes it). Idempotent. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
