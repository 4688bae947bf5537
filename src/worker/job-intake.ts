/**
 * How many jobs a worker process holds at once (docs/DESIGN.md §2, "Jobs held, not jobs waiting").
 * WORKER_CONCURRENCY is the most; the worker holds fewer when the extra ones would only wait in
 * this process for a slot.
 *
 * A job taken from the queue waits in the process for its turn at the rate budgets, and a process
 * whose share of a budget is small (four workers behind one egress get 70 calls/s each) held its 64
 * jobs for almost a second each. Jobs that live that long outlast a young-generation collection and
 * are copied, then promoted: measured with `WORKER_CONCURRENCY=16` against 64, worker CPU per
 * device fell from 2.55 to 2.18 ms with two egress groups of two workers, and so did the garbage
 * collections that make calls leave late and widen the jitter allowance. A fixed lower number
 * would starve one worker with a whole budget to itself, or an API that answers slowly: the calls
 * in flight alone are rate × latency. So the number follows what the process needs.
 *
 * The signal is the fewest callers waiting in the gate's local order during the last interval
 * (rate-gate.ts, `takeWaitingLow`): the jobs that could have been left in the queue. Where that
 * stayed above `spare`, half the excess is let go (a job in progress is never dropped: the worker
 * just takes no new one until it is under the limit); where the order ran dry, the limit grows by
 * half at once, since a dry order may leave slots unreserved.
 */

/** Options of `JobIntake`. */
export interface JobIntakeOptions {
  /** The most jobs held (WORKER_CONCURRENCY). */
  ceilingJobs: number;
  /** The fewest jobs held, whatever the order says (never above the ceiling). */
  floorJobs: number;
  /** Callers kept waiting at the low point of an interval, for a burst of slow answers. */
  spareJobs: number;
}

/** Defaults of `JobIntakeOptions` other than the ceiling. */
export const JOB_INTAKE_DEFAULTS = {
  // A few more than the gate's reservations in flight (8) plus the spare.
  floorJobs: 16,
  spareJobs: 4,
} as const;

/** The number of jobs a worker holds, adjusted once an interval. */
export class JobIntake {
  private limitJobs: number;
  private readonly floorJobs: number;

  constructor(private readonly options: JobIntakeOptions) {
    this.floorJobs = Math.min(options.floorJobs, options.ceilingJobs);
    // Starts at the most: the first interval shows what is needed.
    this.limitJobs = options.ceilingJobs;
  }

  /** The limit now. */
  current(): number {
    return this.limitJobs;
  }

  /**
   * The limit for the next interval, from the fewest callers waiting for the budgets in the last
   * one (null: the gate does not say, and the limit stays).
   */
  next(waitingLow: number | null): number {
    const { ceilingJobs, spareJobs } = this.options;
    if (waitingLow === null) return this.limitJobs;
    if (waitingLow === 0) {
      this.limitJobs = Math.min(ceilingJobs, this.limitJobs + Math.max(spareJobs, Math.ceil(this.limitJobs / 2)));
    } else if (waitingLow > spareJobs) {
      this.limitJobs = Math.max(this.floorJobs, this.limitJobs - Math.ceil((waitingLow - spareJobs) / 2));
    }
    return this.limitJobs;
  }
}
