/**
 * Test helpers for Redis: a unique key prefix per test file, and removal of everything under it.
 * Never FLUSHALL: the Redis is shared with other tests and services.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll } from 'vitest';

/** The Redis tests use (REDIS_URL, as CI sets it). */
export const TEST_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A fresh prefix with a hash tag, unique to one test file or test. */
export function uniquePrefix(label: string): string {
  return `{rvt-${label}-${randomBytes(3).toString('hex')}}`;
}

/** Deletes every key under `prefix` (and Bottleneck's, which embed it in `b_<id>`: the benchmark's comparison). */
export async function removePrefix(prefix: string, url: string = TEST_REDIS_URL): Promise<void> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    for (const pattern of [`${prefix}*`, `b_${prefix}*`]) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.unlink(...keys);
      } while (cursor !== '0');
    }
  } finally {
    redis.disconnect();
  }
}

/** A connection and a key prefix of one test file's own; after its tests, disconnected and the prefix's keys removed. */
export function useTestRedis(label: string): { prefix: string; redis: Redis } {
  const prefix = uniquePrefix(label);
  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  afterAll(async () => {
    redis.disconnect();
    await removePrefix(prefix);
  });
  return { prefix, redis };
}

/** Polls `condition` until it holds or `timeoutMs` passes (then throws with `what`). */
export async function waitFor<T>(condition: () => Promise<T | false | null | undefined> | T | false | null | undefined, what: string, timeoutMs = 30_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value !== false && value !== null && value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
