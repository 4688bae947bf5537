/**
 * Retry delays: exponential backoff with full jitter (a uniformly random wait up to the
 * exponential ceiling), which spreads retries of many devices instead of synchronising them.
 */

/** Options of `backoffMs`. */
export interface BackoffOptions {
  /** Ceiling of the first retry's wait. */
  baseMs: number;
  /** Largest wait. */
  maxMs: number;
}

/**
 * The wait before retry number `retry` (1 = first retry): uniform in
 * [0, min(maxMs, baseMs · 2^(retry−1))]. `random` is injectable for tests.
 */
export function backoffMs(retry: number, options: BackoffOptions, random: () => number = Math.random): number {
  const exponent = Math.max(0, Math.min(retry - 1, 30));
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** exponent);
  return Math.floor(random() * ceiling);
}
