/**
 * The exact account-wide guard behind Bottleneck: hands out call slots on Redis' own clock.
 *
 * Why a second stage: Bottleneck spaces permits using each process's clock and timers, so a
 * process whose event loop lagged releases several late permits at once (measured: 2 processes
 * at 400/s put 428 calls into one second at the receiver). Here each call reserves a slot at
 * least `1000/rate` ms after the previous one, all processes agreeing through one Redis key,
 * and a sliding-window count over `1000 + jitterAllowanceMs` backs it up. A caller that wakes
 * up too late for its slot gives it back unused and reserves a new one, so lag turns into lost
 * time, never into a burst.
 */
import type { RedisClient as Redis } from '../redis/redis-connection.js';

/** Options of `SlotGuard`. */
export interface SlotGuardOptions {
  /** Key prefix for the guard's two keys (next slot, window). */
  key: string;
  /**
   * The window counts slots over 1000 ms plus this much: a call reaches the API a little after
   * its slot (signing, the event loop, the network) and that delay must not let more than the
   * rate land in any one second at the other end. Costs up to rate·allowance/(1000+allowance).
   */
  jitterAllowanceMs: number;
  /** A slot taken more than this late is given up and a new one reserved. */
  lateToleranceMs: number;
}

/** Defaults of `SlotGuardOptions`. */
export const SLOT_GUARD_DEFAULTS = {
  // 20 ms let 483 calls into one second at 480/s with 2 workers on 2 cores (benchmark); 30 ms costs ~3 %.
  jitterAllowanceMs: 30,
  lateToleranceMs: 10,
} as const;

/**
 * Reserves the next slot. KEYS: next-slot string, window sorted set. ARGV: rate per second,
 * window ms, unique member. Returns the wait in microseconds until the slot (0 = now).
 */
const RESERVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rate = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local spacing = 1000 / rate
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window - 1000)
-- Backstop: never more than 'rate' slots inside any window ending at this slot.
local inWindow = redis.call('ZCOUNT', KEYS[2], slot - window, '+inf')
if inWindow >= rate then
  local edge = redis.call('ZRANGEBYSCORE', KEYS[2], slot - window, '+inf', 'WITHSCORES', 'LIMIT', inWindow - rate, 1)
  slot = math.max(slot, tonumber(edge[2]) + window)
end
redis.call('SET', KEYS[1], tostring(slot + spacing), 'PX', 60000)
redis.call('ZADD', KEYS[2], slot, ARGV[3])
redis.call('PEXPIRE', KEYS[2], 60000)
return math.floor((slot - now) * 1000)
`;

/** Gives up a reserved slot that the caller woke too late for. KEYS: window. ARGV: member. */
const RELEASE = `return redis.call('ZREM', KEYS[1], ARGV[1])`;

type GuardClient = Redis & {
  revokerSlotReserve(next: string, window: string, rate: string, windowMs: string, member: string): Promise<number>;
  revokerSlotRelease(window: string, member: string): Promise<number>;
};

/** Slot reservations shared by every process using the same key. */
export class SlotGuard {
  private readonly options: SlotGuardOptions;
  private counter = 0;
  private readonly memberPrefix = `${process.pid}-${Math.random().toString(36).slice(2, 8)}-`;

  private readonly redis: GuardClient;

  constructor(redis: Redis, options: Partial<SlotGuardOptions> & Pick<SlotGuardOptions, 'key'>) {
    this.options = { ...SLOT_GUARD_DEFAULTS, ...options };
    // EVALSHA through ioredis' defined commands: the script text is not resent on every call.
    this.redis = redis as GuardClient;
    if (typeof this.redis.revokerSlotReserve !== 'function') {
      redis.defineCommand('revokerSlotReserve', { numberOfKeys: 2, lua: RESERVE });
      redis.defineCommand('revokerSlotRelease', { numberOfKeys: 1, lua: RELEASE });
    }
  }

  /** Resolves at this caller's slot, at most `ratePerSecond` slots a second across all processes. */
  async take(ratePerSecond: number): Promise<void> {
    const windowMs = String(1000 + this.options.jitterAllowanceMs);
    for (;;) {
      this.counter += 1;
      const member = `${this.memberPrefix}${this.counter}`;
      const waitMicros = await this.redis.revokerSlotReserve(`${this.options.key}:next`, `${this.options.key}:window`, String(ratePerSecond), windowMs, member);
      const waitMs = waitMicros / 1000;
      const due = performance.now() + waitMs;
      if (waitMs >= 1) await new Promise((resolve) => setTimeout(resolve, waitMs));
      if (performance.now() - due <= this.options.lateToleranceMs) return;
      // Woke too late: calling now could land together with the next process's slot.
      await this.redis.revokerSlotRelease(`${this.options.key}:window`, member);
    }
  }
}
