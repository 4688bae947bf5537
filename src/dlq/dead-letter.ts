/**
 * A dead letter: a device that could not be revoked, with everything needed to understand why
 * and to try again.
 */
import type { RevocationJobData } from '../queue/revocation-job.js';

/** Data of a job on the dead-letter queue. */
export interface DeadLetterData extends RevocationJobData {
  /** Id of the revocation job (the device key) it came from. */
  jobId: string;
  /** Why it was dead-lettered: the last code and message. */
  reason: string;
  deadLetteredAt: string;
}
