/**
 * `RateGate` on Bottleneck in clustering mode: every process using the same Redis and limiter id
 * shares one `minTime` spacing, so together they never exceed the configured rate.
 *
 * Spacing, not reservoirs: measured on Redis 7 (DESIGN.md §2), `minTime` holds the cap while
 * clustered reservoirs stall and burst. Bottleneck 2.19.5 has known failure modes on Redis 7:
 * `SETTINGS_KEY_NOT_FOUND` after its keys expire or Redis restarts, and `NOSCRIPT` after a
 * reconnect to a Redis that lost its script cache. Both are handled by recreating the limiter
 * and asking again: permits are taken before the call, so asking again never calls twice.
 */
import Bottleneck from 'bottleneck';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { RateGate } from './rate-gate.js';

/** Options of `BottleneckRateGate`. */
export interface BottleneckRateGateOptions {
  /** Limiter id shared by every process of the account. */
  id: string;
  /** Initial rate. */
  ratePerSecond: number;
  /**
   * How long a permit may be held before Bottleneck forgets it: a process that crashed while
   * holding one must not hold capacity forever.
   */
  permitExpirationMs: number;
  /** Limiter keys expire after this much inactivity (Bottleneck's `timeout`). */
  idleExpiryMs: number;
  /** How many times one `acquire` rebuilds a broken limiter before giving up. */
  maxRebuilds: number;
}

/** Defaults of `BottleneckRateGateOptions`. */
export const BOTTLENECK_RATE_GATE_DEFAULTS = {
  permitExpirationMs: 10_000,
  // A day: keys of an idle account go away, those of a running batch never do.
  idleExpiryMs: 86_400_000,
  maxRebuilds: 20,
} as const;

/** Runs a Bottleneck teardown call, which may return a promise or nothing, ignoring its errors. */
async function quietly(teardown: () => unknown): Promise<void> {
  try {
    await teardown();
  } catch {
    // Tearing down a limiter whose connection is already gone: nothing left to release.
  }
}

/** Errors after which the limiter must be recreated. */
export function isRecoverableLimiterError(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /SETTINGS_KEY_NOT_FOUND|NOSCRIPT|UNKNOWN_CLIENT|Connection is closed|This limiter has been stopped|READONLY|LOADING/.test(message);
}

/** Minimum spacing in ms for a rate; Bottleneck takes integers, so round up (never faster). */
export function minTimeFor(ratePerSecond: number): number {
  return Math.ceil(1_000_000 / ratePerSecond) / 1_000;
}

/** Bottleneck-backed account-wide rate gate. */
export class BottleneckRateGate implements RateGate {
  private readonly options: BottleneckRateGateOptions;
  private limiter: Bottleneck;
  private connection: Bottleneck.IORedisConnection;
  private rate: number;
  private closed = false;
  private rebuilding: Promise<void> | null = null;

  constructor(
    private readonly redis: Redis,
    options: Partial<BottleneckRateGateOptions> & Pick<BottleneckRateGateOptions, 'id' | 'ratePerSecond'>,
    private readonly log: Logger,
  ) {
    this.options = { ...BOTTLENECK_RATE_GATE_DEFAULTS, ...options };
    this.rate = this.options.ratePerSecond;
    [this.limiter, this.connection] = this.build();
  }

  private build(): [Bottleneck, Bottleneck.IORedisConnection] {
    // A connection of its own: Bottleneck subscribes on a duplicate and must not share BullMQ's.
    const connection = new Bottleneck.IORedisConnection({ client: this.redis.duplicate() });
    connection.on('error', (error: unknown) => this.log.warn({ err: error }, 'rate limiter connection error'));
    const limiter = new Bottleneck({
      id: this.options.id,
      datastore: 'ioredis',
      connection,
      clearDatastore: false,
      minTime: minTimeFor(this.rate),
      maxConcurrent: null,
      timeout: this.options.idleExpiryMs,
    });
    limiter.on('error', (error: unknown) => this.log.warn({ err: error }, 'rate limiter error'));
    return [limiter, connection];
  }

  private rebuild(reason: unknown): Promise<void> {
    // One rebuild at a time; everyone waiting on a broken limiter shares it.
    this.rebuilding ??= (async () => {
      this.log.warn({ err: reason }, 'rate limiter lost its Redis state; recreating it');
      const [oldLimiter, oldConnection] = [this.limiter, this.connection];
      [this.limiter, this.connection] = this.build();
      await quietly(() => oldLimiter.disconnect(false));
      await quietly(() => oldConnection.disconnect(false));
    })().finally(() => {
      this.rebuilding = null;
    });
    return this.rebuilding;
  }

  async acquire(priority = 5): Promise<void> {
    for (let rebuilds = 0; ; rebuilds += 1) {
      if (this.closed) throw new Error('rate gate closed');
      if (this.rebuilding) await this.rebuilding;
      const limiter = this.limiter;
      try {
        await limiter.schedule({ priority, expiration: this.options.permitExpirationMs }, () => Promise.resolve());
        return;
      } catch (error) {
        if (this.closed || !isRecoverableLimiterError(error) || rebuilds >= this.options.maxRebuilds) throw error;
        // Only the first waiter on this limiter rebuilds it; the others wait and retry.
        if (limiter === this.limiter) await this.rebuild(error);
        // Back off a little while Redis is down: it reconnects by itself.
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * (rebuilds + 1), 1_000)));
      }
    }
  }

  async setRatePerSecond(ratePerSecond: number): Promise<void> {
    this.rate = ratePerSecond;
    try {
      await this.limiter.updateSettings({ minTime: minTimeFor(ratePerSecond) });
    } catch (error) {
      if (!isRecoverableLimiterError(error)) throw error;
      await this.rebuild(error);
    }
  }

  ratePerSecond(): number {
    return this.rate;
  }

  waiting(): number {
    return this.limiter.counts().QUEUED ?? 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    await quietly(() => this.limiter.disconnect(false));
    await quietly(() => this.connection.disconnect(false));
  }
}
