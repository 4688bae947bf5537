/**
 * The calls this process made recently, kept in memory for what Redis may forget.
 *
 * A call intent is written to Redis before each call, but with AOF `everysec` a Redis crash (a
 * host crash, or a kill before the kernel flushed) can lose up to about a second of acknowledged
 * writes: the intent of a call that the API applied may vanish, and the job's next run would take
 * "not registered" for `not_found`. The worker process usually outlives Redis: when it sees Redis
 * come back as a new instance (its run id changed), it tells the ledger which of its recent calls
 * may have lost their trace (`ResultStore.markLostAnswers`), and their jobs' next runs treat the
 * earlier result as unknown. Pure state, no I/O.
 */

/** A call the journal remembers. */
export interface JournalEntry {
  jobId: string;
  rid: string;
}

/** Calls started in this process, kept until `keepMs` after they ended. */
export class CallJournal {
  private readonly entries = new Map<string, { rid: string; endedAtMs: number | null }>();
  private lastTrimAtMs = 0;

  /**
   * @param keepMs how long an ended call stays: longer than Redis can lose (AOF `everysec` loses
   *   about a second; a busy disk can delay the fsync by a few more).
   */
  constructor(private readonly keepMs = 30_000) {}

  /** A call is being made (its intent was written; nothing is awaited between this and the call). */
  started(jobId: string, rid: string): void {
    this.entries.set(jobId, { rid, endedAtMs: null });
  }

  /** The call was answered (or failed): it stays for `keepMs`. */
  ended(jobId: string, nowMs: number = Date.now()): void {
    const entry = this.entries.get(jobId);
    if (entry !== undefined) entry.endedAtMs = nowMs;
    this.trim(nowMs);
  }

  /** The calls in flight and those ended within `keepMs`. */
  recent(nowMs: number = Date.now()): JournalEntry[] {
    this.trim(nowMs, true);
    return [...this.entries].map(([jobId, entry]) => ({ jobId, rid: entry.rid }));
  }

  private trim(nowMs: number, force = false): void {
    // A pass over every entry is O(calls in keepMs): at 500 calls/s once a second, not per call.
    if (!force && nowMs - this.lastTrimAtMs < 1_000) return;
    this.lastTrimAtMs = nowMs;
    for (const [jobId, entry] of this.entries) {
      if (entry.endedAtMs !== null && nowMs - entry.endedAtMs > this.keepMs) this.entries.delete(jobId);
    }
  }
}
