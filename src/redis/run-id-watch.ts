/**
 * Tells whether Redis came back as a new instance (its `run_id` changed) since the last look. With
 * AOF `everysec` a crash loses about the last second of acknowledged writes; a process that wrote
 * in that second has to make up for it once it notices (a worker marks its recent calls, a producer
 * sends its recent chunks again: docs/RELIABILITY.md). A dropped connection makes the next look
 * ask Redis; otherwise a look costs nothing.
 *
 * Not on Redis Cluster (each master has its own run id): `changed` always answers false there.
 */
import { Cluster } from 'ioredis';
import type { RedisClient as Redis } from './redis-connection.js';

/**
 * Drops seen per connection, counted by one listener however many watches share the connection (a
 * webhook server runs many enqueues at once on one).
 */
const drops = new WeakMap<Redis, { count: number; watches: number; listener: () => void }>();

/** Watches one connection for a Redis restart. */
export class RunIdWatch {
  private runId: string | null = null;
  /** The connection's drop count at the last look; the next look asks Redis when it moved. */
  private seenDrops = 0;
  /** A failed look: the next one asks again. */
  private due = false;
  private looking: Promise<boolean> | null = null;
  private started = false;

  constructor(private readonly redis: Redis) {}

  /** Reads the run id now (waits for it) and watches reconnects. */
  async start(): Promise<void> {
    if (this.started || this.redis instanceof Cluster) return;
    this.started = true;
    let shared = drops.get(this.redis);
    if (shared === undefined) {
      const counter = { count: 0, watches: 0, listener: () => (counter.count += 1) };
      this.redis.on('reconnecting', counter.listener);
      drops.set(this.redis, counter);
      shared = counter;
    }
    shared.watches += 1;
    this.seenDrops = shared.count;
    this.runId ??= await readRunId(this.redis).catch(() => null);
  }

  stop(): void {
    if (!this.started) return;
    this.started = false;
    const shared = drops.get(this.redis);
    if (shared === undefined) return;
    shared.watches -= 1;
    if (shared.watches === 0) {
      this.redis.off('reconnecting', shared.listener);
      drops.delete(this.redis);
    }
  }

  /** True when the connection dropped since the last look (a look may be due). */
  get pending(): boolean {
    return this.due || this.looking !== null || (drops.get(this.redis)?.count ?? 0) !== this.seenDrops;
  }

  /**
   * True once for each change of instance: when the connection dropped since the last look and
   * Redis now answers with another run id. Concurrent callers share one look. A look that fails
   * (Redis still down) throws and stays due.
   */
  changed(): Promise<boolean> {
    if (!this.pending) return Promise.resolve(false);
    this.looking ??= (async () => {
      try {
        this.due = false;
        this.seenDrops = drops.get(this.redis)?.count ?? 0;
        const runId = await readRunId(this.redis);
        if (runId === null) return false;
        const before = this.runId;
        this.runId = runId;
        return before !== null && before !== runId;
      } catch (error) {
        this.due = true;
        throw error;
      } finally {
        this.looking = null;
      }
    })();
    return this.looking;
  }
}

async function readRunId(redis: Redis): Promise<string | null> {
  const info = await redis.info('server');
  return /run_id:([0-9a-f]+)/.exec(info)?.[1] ?? null;
}
