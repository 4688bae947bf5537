/**
 * Sliding-window counting over the last `windowMs` (1000 ms for the API's "calls per second"),
 * in amortised O(1) per event: timestamps enter a deque and leave it once they fall out of the
 * window, so neither admission nor "busiest second so far" ever scans history.
 */

/** A FIFO of non-decreasing timestamps with cheap removal from the front. */
export class TimestampDeque {
  private items: number[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(timestampMs: number): void {
    this.items.push(timestampMs);
  }

  /** Removes every timestamp ≤ cutoffMs from the front. */
  dropThrough(cutoffMs: number): void {
    while (this.head < this.items.length && (this.items[this.head] as number) <= cutoffMs) this.head += 1;
    // Compact once the dead prefix dominates, so memory stays proportional to the window.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

/**
 * Counts events in the window (t - windowMs, t] ending at each new event, and remembers the
 * largest such count: the busiest window seen, in any alignment.
 */
export class SlidingWindowCounter {
  private readonly deque = new TimestampDeque();
  private maxInWindow = 0;
  private maxAtMs: number | null = null;
  private lastMs = -Infinity;

  constructor(private readonly windowMs = 1000) {}

  /** Records an event at `nowMs`; returns how many events fall in the window ending now. */
  record(nowMs: number): number {
    // Clocks can step back a little (NTP); treat that as "same instant" to keep the deque sorted.
    const at = Math.max(nowMs, this.lastMs);
    this.lastMs = at;
    this.deque.dropThrough(at - this.windowMs);
    this.deque.push(at);
    const count = this.deque.size;
    if (count > this.maxInWindow) {
      this.maxInWindow = count;
      this.maxAtMs = at;
    }
    return count;
  }

  /** Events in the window ending at `nowMs`, without recording one. */
  countAt(nowMs: number): number {
    this.deque.dropThrough(Math.max(nowMs, this.lastMs) - this.windowMs);
    return this.deque.size;
  }

  /** The largest number of events seen in any window of `windowMs`. */
  get max(): number {
    return this.maxInWindow;
  }

  /** When the busiest window ended (the first time it was reached), null before any event. */
  get maxAt(): number | null {
    return this.maxAtMs;
  }

  reset(): void {
    this.deque.clear();
    this.maxInWindow = 0;
    this.maxAtMs = null;
    this.lastMs = -Infinity;
  }
}

/**
 * A per-key sliding-window rate limit: a call is admitted only if fewer than `limit` calls for
 * the same key were admitted in the preceding window. Refused calls are not counted, so a
 * client that keeps hammering still gets `limit` calls per window through.
 */
export class SlidingWindowLimiter {
  private readonly windows = new Map<string, SlidingWindowCounter>();

  constructor(private readonly windowMs = 1000) {}

  /** Decides for one call at `nowMs` and counts it if admitted. */
  tryAdmit(key: string, nowMs: number, limit: number): boolean {
    let window = this.windows.get(key);
    if (!window) {
      window = new SlidingWindowCounter(this.windowMs);
      this.windows.set(key, window);
    }
    if (window.countAt(nowMs) >= limit) return false;
    window.record(nowMs);
    return true;
  }
}
