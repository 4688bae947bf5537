/**
 * Short-lived caches of batch and account state, so that 500 jobs a second do not each read
 * Redis, while a pause still takes effect within a fraction of a second on every worker.
 */

/** A value read through at most once per `maxAgeMs`, concurrent readers sharing one read. */
export class TtlCache<T> {
  private readonly entries = new Map<string, { value: T; readAtMs: number }>();
  private readonly inFlight = new Map<string, Promise<T>>();

  constructor(
    private readonly maxAgeMs: number,
    private readonly load: (key: string) => Promise<T>,
    /** Entries beyond this count are dropped oldest-first (batches come and go). */
    private readonly maxEntries = 1_000,
  ) {}

  /** The cached value, reloaded when older than `maxAgeMs`. */
  async get(key: string, nowMs: number = Date.now()): Promise<T> {
    const entry = this.entries.get(key);
    if (entry !== undefined && nowMs - entry.readAtMs < this.maxAgeMs) return entry.value;
    const pending = this.inFlight.get(key);
    if (pending !== undefined) return pending;
    const loading = this.load(key)
      .then((value) => {
        this.entries.delete(key);
        this.entries.set(key, { value, readAtMs: Date.now() });
        if (this.entries.size > this.maxEntries) {
          const oldest = this.entries.keys().next().value;
          if (oldest !== undefined) this.entries.delete(oldest);
        }
        return value;
      })
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, loading);
    return loading;
  }

  /** Forgets a key so the next read goes to Redis (after this process changed it). */
  invalidate(key: string): void {
    this.entries.delete(key);
  }
}
