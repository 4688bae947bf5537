/**
 * This process's estimate of Redis' clock. Times that different hosts compare (an existence
 * snapshot's page times, written by a producer, against a worker's first call) are kept on Redis'
 * clock, so that a host whose own clock is off does not make one look earlier than the other.
 * The offset is measured with TIME and corrected for half the round trip; it is measured again
 * every `refreshMs`.
 */
import type { RedisClient } from './redis-connection.js';

/** Redis' clock as seen from here. */
export class RedisClock {
  private offsetMs: number | null = null;
  private measuredAt = 0;

  constructor(
    private readonly redis: Pick<RedisClient, 'time'>,
    private readonly refreshMs = 60_000,
  ) {}

  /** Milliseconds on Redis' clock now; null until a first measurement succeeded. */
  async now(): Promise<number | null> {
    if (this.offsetMs === null || Date.now() - this.measuredAt > this.refreshMs) await this.measure().catch(() => undefined);
    return this.offsetMs === null ? null : Date.now() + this.offsetMs;
  }

  /** Reads TIME once and keeps the offset of the local clock from it. */
  async measure(): Promise<void> {
    const before = Date.now();
    const [seconds, micros] = await this.redis.time();
    const after = Date.now();
    const redisMs = Number(seconds) * 1_000 + Math.floor(Number(micros) / 1_000);
    this.offsetMs = redisMs - Math.round((before + after) / 2);
    this.measuredAt = after;
  }
}
