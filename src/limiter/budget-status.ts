/**
 * What the rate budgets are doing now: each budget in use, its configured rate and the calls it
 * handed out in the last second (on Redis' clock). For `revoker status`, /metrics and the
 * message of an IP-block pause.
 */
import type { Keys } from '../queue/keys.js';
import type { RedisClient as Redis } from '../redis/redis-connection.js';

/** One budget's state. */
export interface BudgetRate {
  /** `account:<key>:<Operation>` or `egress:<id>`. */
  name: string;
  kind: 'account' | 'egress';
  /** The account budget's operation, or the egress id. */
  label: string;
  /** Configured rate per second. */
  configuredPerSecond: number;
  /** Call slots handed out in the last 1000 ms. */
  lastSecond: number;
}

/** A budget no process announced for this long is left out (its processes stopped). */
export const BUDGET_STALE_MS = 120_000;
/** A budget unannounced for this long is removed from the index. */
const BUDGET_FORGOTTEN_MS = 24 * 3_600_000;

/**
 * Reads every budget announced within BUDGET_STALE_MS and its last second. Budgets announced by
 * processes that stopped are left out, and forgotten after a day.
 */
export async function readBudgetRates(redis: Redis, keys: Keys, nowLocalMs: number = Date.now()): Promise<BudgetRate[]> {
  const [index, seen] = await Promise.all([redis.hgetall(keys.budgetIndex()), redis.zrange(keys.budgetSeen(), '0', '-1', 'WITHSCORES')]);
  const seenAt = new Map<string, number>();
  for (let i = 0; i + 1 < seen.length; i += 2) seenAt.set(seen[i] ?? '', Number(seen[i + 1]));
  const forgotten = Object.keys(index).filter((name) => nowLocalMs - (seenAt.get(name) ?? 0) > BUDGET_FORGOTTEN_MS);
  if (forgotten.length > 0) await redis.multi().hdel(keys.budgetIndex(), ...forgotten).zrem(keys.budgetSeen(), ...forgotten).exec();
  const names = Object.keys(index)
    .filter((name) => nowLocalMs - (seenAt.get(name) ?? 0) <= BUDGET_STALE_MS)
    .sort();
  if (names.length === 0) return [];
  const [seconds, micros] = await redis.time();
  const nowMs = Number(seconds) * 1000 + Number(micros) / 1000;
  const pipeline = redis.pipeline();
  for (const name of names) pipeline.zcount(keys.budgetWindow(name), `(${nowMs - 1000}`, String(nowMs));
  const counts = ((await pipeline.exec()) ?? []).map(([, count]) => Number(count ?? 0));
  return names.map((name, index_) => {
    const kind = name.startsWith('egress:') ? 'egress' : 'account';
    const label = kind === 'egress' ? name.slice('egress:'.length) : name.slice(name.lastIndexOf(':') + 1);
    return { name, kind, label, configuredPerSecond: Number(index[name]), lastSecond: counts[index_] ?? 0 };
  });
}
