/**
 * Wakes parked revocation jobs: what a resume, a cancel, an account resume, a redrive or a
 * reconciler sweep does for the jobs that were waiting for it.
 *
 * A worker parks a job in two steps: park.lua writes the job id into its batches' parked sets,
 * then the worker moves the job to delayed for `parkDelayMs` (5 minutes, a safety net). A wake
 * that comes between the two finds the job still active: promoting it does nothing, and the job
 * then sleeps for the whole safety delay although nothing holds it any more. (Found by the soak:
 * a source-IP block paused the account, the soak resumed within a quarter of a second, and 94 jobs
 * slept 5 minutes.) So an active job that may be parking (`mayBeParking`: the ledger marks it
 * parked) is looked at again until it leaves `active`: delayed → it is promoted; anything else → it
 * runs or ran, nothing to wake. Other active jobs (running, or between retries) are left alone: a
 * resume must not wait for them.
 */
import type { Queue } from 'bullmq';
import type { RevocationJobData } from '../queue/revocation-job.js';

/** Options of `wakeJobs`. */
export interface JobWakerOptions {
  /**
   * How long to keep looking at jobs that are still active, in all. A parking worker moves its job
   * to delayed one Redis round trip after parking it (5 s leave room for a stalled event loop);
   * an active job that is simply running keeps a resume waiting this long at most.
   */
  activeGraceMs: number;
  /** How often to look again. */
  everyMs: number;
  /**
   * Which of these active jobs may be in the middle of parking (absent: all of them, e.g. a job
   * the ledger calls parked). Only those are looked at again.
   */
  mayBeParking?: (jobIds: readonly string[]) => Promise<ReadonlySet<string>>;
}

/** Defaults of `JobWakerOptions`. */
export const JOB_WAKER_DEFAULTS: Omit<JobWakerOptions, 'mayBeParking'> = { activeGraceMs: 5_000, everyMs: 100 };

/** Promotes the delayed ones of these jobs, waiting for active ones to settle; returns how many it promoted. */
export async function wakeJobs(queue: Queue<RevocationJobData>, jobIds: readonly string[], options: Partial<JobWakerOptions> = {}): Promise<number> {
  const { activeGraceMs, everyMs, mayBeParking } = { ...JOB_WAKER_DEFAULTS, ...options };
  const deadline = Date.now() + activeGraceMs;
  let woken = 0;
  let pending = [...new Set(jobIds)];
  for (;;) {
    // In slices: a large parked set must not put thousands of commands on the wire at once.
    const states: string[] = [];
    for (let start = 0; start < pending.length; start += 500) states.push(...(await Promise.all(pending.slice(start, start + 500).map((id) => queue.getJobState(id)))));
    let active = pending.filter((_, index) => states[index] === 'active');
    const delayed = pending.filter((_, index) => states[index] === 'delayed');
    // A hundred at a time: a resume after a long pause wakes thousands, and the batch waits for them.
    for (let start = 0; start < delayed.length; start += 100) {
      woken += (await Promise.all(delayed.slice(start, start + 100).map((id) => promote(queue, id)))).filter(Boolean).length;
    }
    if (active.length > 0 && mayBeParking !== undefined) {
      const parking = await mayBeParking(active);
      active = active.filter((id) => parking.has(id));
    }
    if (active.length === 0 || Date.now() >= deadline) return woken;
    pending = active;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Promotes one delayed job; false when it was not delayed any more. */
async function promote(queue: Queue<RevocationJobData>, jobId: string): Promise<boolean> {
  const job = await queue.getJob(jobId);
  if (job === undefined) return false;
  try {
    await job.promote();
    return true;
  } catch {
    // It left `delayed` meanwhile (its delay ran out, or another wake promoted it).
    return false;
  }
}
