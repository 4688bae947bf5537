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
  /** How many times one `acquire` rebuilds a broken limiter before giving up. */
  maxRebuilds: number;
  /**
   * Redis key of the exact sliding-window guard (a sorted set of permit times), or null to rely on
   * Bottleneck's spacing alone.
   */
  windowKey: string | null;
  /**
   * The guard counts permits over 1000 ms plus this much: a call reaches the API a little after
   * its permit (signing, the event loop, the network), and that jitter must not let more than
   * the rate land in any one second at the other end. Costs rate·allowance/(1000+allowance).
   */
  jitterAllowanceMs: number;
  /**
   * For this long after its first permit, this process asks the guard for half the rate: the
   * first calls also open their connections, arrive late and bunch with the ones after them
   * (measured: the busiest second of a 2-process run was its first, at 406 of 400/s).
   */
  warmupMs: number;
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
  windowKey: null,
  // Measured on 2 cores, 2 worker processes at 400/s: without it 410 calls landed in one second, at 30 ms still 401 when the receiver shared the CPUs.
  jitterAllowanceMs: 40,
  warmupMs: 1_000,
} as const;

/**
 * The exact guard: at most ARGV[1] permits in any ARGV[3] ms, timed by Redis' own clock so that
 * every process agrees. KEYS: the window's sorted set. ARGV: limit, a unique member, window ms.
 * Returns 0 when granted, else the ms to wait until the oldest permit leaves the window.
 */
const WINDOW_GUARD = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], 2000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
`;

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
  private permitCounter = 0;
  private firstPermitAtMs: number | null = null;
  private readonly memberPrefix = `${process.pid}-${Math.random().toString(36).slice(2, 8)}-`;
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
        await this.windowGuard();
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

  /**
   * Bottleneck spaces permits, but a process whose event loop lagged releases several late
   * permits at once; measured with 2 processes at 400/s, 428 calls landed in one second. This
   * exact sliding-window check on Redis' clock turns such a burst into a short wait, with room
   * for the jitter between a permit and the call's arrival.
   */
  private async windowGuard(): Promise<void> {
    const key = this.options.windowKey;
    if (key === null) return;
    this.firstPermitAtMs ??= Date.now();
    for (;;) {
      this.permitCounter += 1;
      const warming = Date.now() - this.firstPermitAtMs < this.options.warmupMs;
      const limit = Math.max(1, Math.floor(warming ? this.rate / 2 : this.rate));
      const waitMs = (await this.redis.eval(WINDOW_GUARD, 1, key, String(limit), `${this.memberPrefix}${this.permitCounter}`, String(1000 + this.options.jitterAllowanceMs))) as number;
      if (waitMs === 0) return;
      await new Promise((resolve) => setTimeout(resolve, waitMs));
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

  waiting(): number {
    return this.limiter.counts().QUEUED ?? 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    await quietly(() => this.limiter.disconnect(false));
    await quietly(() => this.connection.disconnect(false));
  }
}
