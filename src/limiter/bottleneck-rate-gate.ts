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
import { duplicateRedis, type RedisClient as Redis } from '../redis/redis-connection.js';
import type { Logger } from 'pino';
import type { RateGate } from './rate-gate.js';
import { SlotGuard } from './slot-guard.js';

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
  /** How many times one `acquire` rebuilds a broken limiter before giving up. */
  maxRebuilds: number;
  /**
   * Key of the exact slot guard that follows Bottleneck (see `SlotGuard`), or null to rely on
   * Bottleneck's spacing alone.
   */
  guardKey: string | null;
  /**
   * A permit not granted within this long means the limiter is wedged (it lost its state in a
   * way that reported no error): rebuild it and ask again. Far above any legitimate wait.
   */
  permitWaitLimitMs: number;
}

/** Defaults of `BottleneckRateGateOptions`. */
export const BOTTLENECK_RATE_GATE_DEFAULTS = {
  permitExpirationMs: 10_000,
  maxRebuilds: 20,
  permitWaitLimitMs: 60_000,
  guardKey: null,
} as const;


/** Runs a Bottleneck teardown call, which may return a promise or nothing, ignoring its errors. */
async function quietly(teardown: () => unknown): Promise<void> {
  try {
    await teardown();
  } catch {
    // Tearing down a limiter whose connection is already gone: nothing left to release.
  }
}

type ScriptCallback = (error: Error | null, replies: unknown) => void;
interface ScriptArgsHook {
  __scriptArgs__(name: string, id: string, args: unknown[], callback: ScriptCallback): unknown[];
}

/**
 * Bottleneck recovers by itself from `SETTINGS_KEY_NOT_FOUND` (re-initialises the settings) and
 * `UNKNOWN_CLIENT` (re-registers) when the error message is exactly that word, as older Redis
 * clients reported it. ioredis 5+ reports "ERR SETTINGS_KEY_NOT_FOUND", so Bottleneck's recovery
 * never triggers and, after Redis loses the keys, every call fails or heartbeats fail forever.
 * This shim strips the prefix from those two errors, through the connection's one hook for script
 * callbacks, so Bottleneck's own recovery runs.
 */
export function normaliseScriptErrors(connection: Bottleneck.IORedisConnection): void {
  const hook = connection as unknown as ScriptArgsHook;
  const original = hook.__scriptArgs__.bind(connection);
  hook.__scriptArgs__ = (name, id, args, callback) =>
    original(name, id, args, (error, replies) => {
      const match = error !== null ? /\b(SETTINGS_KEY_NOT_FOUND|UNKNOWN_CLIENT)\b/.exec(error.message) : null;
      if (error !== null && match !== null) error.message = match[1] ?? error.message;
      callback(error, replies);
    });
}

/** Errors after which the limiter must be recreated. */
export function isRecoverableLimiterError(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /SETTINGS_KEY_NOT_FOUND|NOSCRIPT|UNKNOWN_CLIENT|limiter wedged|Connection is closed|This limiter has been stopped|READONLY|LOADING/.test(message);
}

/** Minimum spacing in ms for a rate; Bottleneck takes integers, so round up (never faster). */
export function minTimeFor(ratePerSecond: number): number {
  return Math.ceil(1_000_000 / ratePerSecond) / 1_000;
}

/** Bottleneck-backed account-wide rate gate. */
export class BottleneckRateGate implements RateGate {
  private readonly options: BottleneckRateGateOptions;
  private readonly guard: SlotGuard | null;
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
    this.guard = this.options.guardKey === null ? null : new SlotGuard(redis, { key: this.options.guardKey });
    [this.limiter, this.connection] = this.build();
  }

  private build(): [Bottleneck, Bottleneck.IORedisConnection] {
    // A connection of its own: Bottleneck subscribes on a duplicate and must not share BullMQ's.
    const connection = new Bottleneck.IORedisConnection({ client: duplicateRedis(this.redis) });
    normaliseScriptErrors(connection);
    connection.on('error', (error: unknown) => this.log.warn({ err: error }, 'rate limiter connection error'));
    const limiter = new Bottleneck({
      id: this.options.id,
      datastore: 'ioredis',
      connection,
      clearDatastore: false,
      minTime: minTimeFor(this.rate),
      maxConcurrent: null,
      // No `timeout` (key expiry): Bottleneck's Lua then PEXPIREs with a fractional TTL whenever
      // minTime is fractional (480/s → 2.084 ms) and every schedule fails with "value is not an
      // integer". The limiter's few keys per account stay; they are tiny.
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
        await this.withinLimit(limiter.schedule({ priority, expiration: this.options.permitExpirationMs }, () => Promise.resolve()));
        await this.guard?.take(this.rate);
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

  private async withinLimit(permit: Promise<void>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const wedged = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`limiter wedged: no permit within ${this.options.permitWaitLimitMs} ms`)), this.options.permitWaitLimitMs);
      timer.unref();
    });
    try {
      await Promise.race([permit, wedged]);
    } finally {
      clearTimeout(timer);
    }
  }

  async setRatePerSecond(ratePerSecond: number): Promise<void> {
    this.rate = ratePerSecond;
    try {
      // Typed as returning the limiter, but it returns a promise of the Redis write: await it.
      await (this.limiter.updateSettings({ minTime: minTimeFor(ratePerSecond) }) as unknown as Promise<unknown>);
    } catch (error) {
      if (!isRecoverableLimiterError(error)) throw error;
      await this.rebuild(error);
    }
  }

  ratePerSecond(): number {
    return this.rate;
  }


  async close(): Promise<void> {
    this.closed = true;
    await quietly(() => this.limiter.disconnect(false));
    await quietly(() => this.connection.disconnect(false));
  }
}
