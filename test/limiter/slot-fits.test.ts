/**
 * The window check both slot scripts share (src/limiter/lua/includes/fits.lua), against a direct
 * count: on random slot sets around a candidate slot, it answers "fits" exactly when no half-open
 * window of `window` ms around the candidate would hold more than the limit with it added. Its
 * single read of the slots a sliding window leaves behind is what this checks; the scripts' own
 * tests (budget-gate.test.ts) check the slots they hand out.
 */
import { describe, expect, it } from 'vitest';
import { loadLua } from '../../src/redis/lua-script.js';
import { useTestRedis } from '../helpers/redis.js';

const { prefix, redis } = useTestRedis('fits');

const script = `${loadLua(import.meta.url, '../../src/limiter/lua/includes/fits.lua')}
return fits(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])) and 1 or 0`;

/** Whether adding `s` keeps every window (e - window, e] that holds it within `limit`, counted directly. */
function fitsDirectly(times: number[], windowMs: number, limit: number, s: number): boolean {
  const all = [...times, s].sort((a, b) => a - b);
  // The fullest window holding s ends at s or at a slot after it.
  for (const end of all.filter((at) => at >= s && at < s + windowMs)) {
    if (all.filter((at) => at > end - windowMs && at <= end).length > limit) return false;
  }
  return true;
}

/** A small deterministic generator, so that a failure can be replayed. */
function generator(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state / 2_147_483_648;
  };
}

describe('fits.lua', () => {
  it('agrees with a direct count on random slot sets, later slots and crowded windows included', async () => {
    const random = generator(7);
    const windowMs = 1020;
    const key = `${prefix}:win`;
    let fitting = 0;
    for (let round = 0; round < 400; round += 1) {
      const limit = 2 + Math.floor(random() * 10);
      const s = 1_000_000 + random() * 1000;
      // Between none and twice the limit of slots, from a window before s to a window after it:
      // enough for windows over the limit both before and after s.
      const count = Math.floor(random() * (2 * limit + 1));
      const times = Array.from({ length: count }, () => s - windowMs - 50 + random() * (2 * windowMs + 100));
      await redis.del(key);
      if (times.length > 0) await redis.zadd(key, ...times.flatMap((at, index) => [at, `m${index}`]));
      const answer = (await redis.eval(script, 1, key, String(windowMs), String(limit), String(s))) as number;
      const expected = fitsDirectly(times, windowMs, limit, s);
      expect({ round, answer: answer === 1 }).toEqual({ round, answer: expected });
      if (expected) fitting += 1;
    }
    // Both answers occur often enough for the comparison to mean something.
    expect(fitting).toBeGreaterThan(60);
    expect(fitting).toBeLessThan(340);
  });
});
