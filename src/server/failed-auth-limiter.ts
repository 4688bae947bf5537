/**
 * Slows token guessing: after `maxFailures` failed authentications from one client address
 * within `windowMs`, every further attempt from it is answered 429 until the oldest failure
 * leaves the window (3,000 wrong tokens used to be answered at ~1,940/s, all 401).
 *
 * Kept in the server's memory, not in Redis: an attacker's traffic then costs Redis nothing, and
 * with several servers each one allows its own `maxFailures` (still nowhere near guessing a
 * 32-character token). IPv6 clients are counted by /64, which one host usually owns whole.
 */
import { isIPv6 } from 'node:net';

/** Options of `FailedAuthLimiter`. */
export interface FailedAuthLimiterOptions {
  /** Failures allowed within the window; the next attempt is refused. */
  maxFailures: number;
  windowMs: number;
  /** Addresses tracked at most; the oldest are forgotten first (bounded memory whatever the spread of addresses). */
  maxAddresses: number;
}

/** Defaults of `FailedAuthLimiterOptions` (issue 13: 429 after 10 failures a minute). */
export const FAILED_AUTH_DEFAULTS: FailedAuthLimiterOptions = { maxFailures: 10, windowMs: 60_000, maxAddresses: 10_000 };

/** The key an address is counted under: the address, or its /64 for IPv6. */
export function clientKey(address: string): string {
  const bare = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  if (!isIPv6(bare)) return bare;
  // Expand "::" to get the first four groups.
  const [head = '', tail = ''] = bare.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = bare.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  const groups = bare.includes('::') ? [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups] : headGroups;
  return `${groups.slice(0, 4).map((group) => group.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/** Failed authentications per client address, in a sliding window. */
export class FailedAuthLimiter {
  private readonly options: FailedAuthLimiterOptions;
  private readonly failures = new Map<string, number[]>();

  constructor(options: Partial<FailedAuthLimiterOptions> = {}) {
    this.options = { ...FAILED_AUTH_DEFAULTS, ...options };
  }

  private recent(key: string, nowMs: number): number[] {
    const times = (this.failures.get(key) ?? []).filter((at) => at > nowMs - this.options.windowMs);
    if (times.length === 0) this.failures.delete(key);
    else this.failures.set(key, times);
    return times;
  }

  /** Seconds until `address` may try again, or null when it may try now. */
  blockedFor(address: string, nowMs: number = Date.now()): number | null {
    const times = this.recent(clientKey(address), nowMs);
    if (times.length < this.options.maxFailures) return null;
    const oldest = times[times.length - this.options.maxFailures] ?? nowMs;
    return Math.max(1, Math.ceil((oldest + this.options.windowMs - nowMs) / 1000));
  }

  /** Records a failure; returns how many `address` has in the window now. */
  recordFailure(address: string, nowMs: number = Date.now()): number {
    const key = clientKey(address);
    const times = this.recent(key, nowMs);
    times.push(nowMs);
    // Re-inserted last: the map's order is least recently failed first, which is what is evicted.
    this.failures.delete(key);
    this.failures.set(key, times.slice(-this.options.maxFailures));
    while (this.failures.size > this.options.maxAddresses) {
      const oldest = this.failures.keys().next().value;
      if (oldest === undefined) break;
      this.failures.delete(oldest);
    }
    return times.length;
  }
}
