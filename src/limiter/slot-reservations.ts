/**
 * Call slots on Redis' clock, shared by every process, across several rate budgets at once
 * (an account's budget for one API operation and the egress budget of the source IP).
 *
 * Why slots on Redis' clock: spacing permits on each process's own timers lets a process whose
 * event loop lagged release several late permits together (measured: 2 processes at 400/s put
 * 428 calls into one second at the receiver). Here every call reserves a slot that no budget's
 * sliding window forbids, in one script for all budgets, and a caller that wakes up too late for
 * its slot asks to move it to now, which is granted only where the windows still hold.
 * docs/DESIGN.md, "Rate budgets", has the whole argument.
 */
import type { RedisClient as Redis } from '../redis/redis-connection.js';
import { loadLua } from '../redis/lua-script.js';

/** One budget's keys and configured rate, as the scripts take them. */
export interface SlotBudget {
  /** String: the earliest time (ms, Redis clock) of this budget's next slot. */
  nextKey: string;
  /** Sorted set: slots handed out, member → time. */
  windowKey: string;
  /** String: a lower rate in force (the adaptive rate), or a key that is never set. */
  adaptiveKey: string;
  /** Configured rate per second; may be fractional. */
  ratePerSecond: number;
}

type ScriptClient = Redis & {
  revokerReserveSlot(...args: string[]): Promise<[number, number]>;
  revokerRetimeSlot(...args: string[]): Promise<number>;
};

/** A slot script with the window check it shares with the other (lua/includes/fits.lua) in front. */
function slotScript(name: string): string {
  return `${loadLua(import.meta.url, 'lua/includes/fits.lua')}\n${loadLua(import.meta.url, name)}`;
}

/** Registers the two scripts on a connection once (ioredis sends EVALSHA, EVAL after NOSCRIPT). */
function withScripts(redis: Redis): ScriptClient {
  const client = redis as ScriptClient;
  if (typeof client.revokerReserveSlot !== 'function') {
    redis.defineCommand('revokerReserveSlot', { lua: slotScript('lua/reserve-slot.lua') });
    redis.defineCommand('revokerRetimeSlot', { lua: slotScript('lua/retime-slot.lua') });
  }
  return client;
}

function scriptArgs(budgets: readonly SlotBudget[], windowMs: number, member: string): string[] {
  const keys = budgets.flatMap((budget) => [budget.nextKey, budget.windowKey, budget.adaptiveKey]);
  return [String(keys.length), ...keys, String(windowMs), member, ...budgets.map((budget) => String(budget.ratePerSecond))];
}

/** The two slot operations over one connection. */
export class SlotReservations {
  private readonly redis: ScriptClient;

  constructor(redis: Redis) {
    this.redis = withScripts(redis);
  }

  /** Reserves a slot in every budget; resolves with the wait until it and Redis' time when it was taken, in ms. */
  async reserve(budgets: readonly SlotBudget[], windowMs: number, member: string): Promise<{ waitMs: number; redisNowMs: number }> {
    const [waitMicros, nowMicros] = await this.redis.revokerReserveSlot(...scriptArgs(budgets, windowMs, member));
    return { waitMs: waitMicros / 1000, redisNowMs: nowMicros / 1000 };
  }

  /**
   * Moves a reserved slot to now if every window allows it (resolves with Redis' time then, ms),
   * else gives it up (null).
   */
  async retime(budgets: readonly SlotBudget[], windowMs: number, member: string): Promise<number | null> {
    const nowMicros = await this.redis.revokerRetimeSlot(...scriptArgs(budgets, windowMs, member));
    return nowMicros === 0 ? null : nowMicros / 1000;
  }
}
