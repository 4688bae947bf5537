/**
 * The account-wide rate, behind an interface of our own so the implementation (Bottleneck in
 * clustering mode today) can be replaced without touching the worker.
 */

/** Grants permission to make one API call at the account-wide rate. */
export interface RateGate {
  /**
   * Resolves when this process may make one call. The permit is taken before the call, not
   * around it: a limiter error can then never make a call run twice.
   * @param priority 0 (first) … 9 (last), among the calls waiting in this process.
   */
  acquire(priority?: number): Promise<void>;
  /** Changes the spacing shared by every process on this key. */
  setRatePerSecond(ratePerSecond: number): Promise<void>;
  /** The rate this process last applied. */
  ratePerSecond(): number;
  /** Stops granting permits and releases connections. */
  close(): Promise<void>;
}
