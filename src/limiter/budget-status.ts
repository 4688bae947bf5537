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

/** Reads every announced budget and its last second; budgets with no key left are skipped. */
export async function readBudgetRates(redis: Redis, keys: Keys): Promise<BudgetRate[]> {
  const index = await redis.hgetall(keys.budgetIndex());
  const names = Object.keys(index).sort();
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
