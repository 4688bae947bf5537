/**
 * A dead letter: a revocation that could not be done, with everything needed to understand why
 * and to try again. One per revocation job; every batch subscribed to the job has a `failed`
 * record from it.
 */
import type { RevocationJobData } from '../queue/revocation-job.js';

/** Data of a job on the dead-letter queue. */
export interface DeadLetterData extends RevocationJobData {
  /** Id of the revocation job it came from (`<revocation id>-<generation>`). */
  jobId: string;
  /**
   * The batches subscribed to that job when it was dead-lettered: each has a `failed` record from
   * it. Absent on dead letters of before the ledger (then only `batchId`).
   */
  subscribers?: string[];
  /** Why it was dead-lettered: the last code and message. */
  reason: string;
  deadLetteredAt: string;
}
