/**
 * What a revocation job carries. No secret ever goes in here: job data is visible to anyone
 * who can read Redis or the dashboard.
 */
import type { RevocationAction } from '../cloud/certificate-api.js';

/** One attempt's trace, kept in the job and copied into dead letters. */
export interface AttemptRecord {
  /** When the call was answered (ISO 8601). */
  at: string;
  /** `OK`, the API's Code, or a network/timeout code. */
  code: string;
  httpStatus: number | null;
  requestId: string | null;
  /**
   * Whether this call counts toward MAX_ATTEMPTS: throttled calls and calls refused for a
   * batch- or account-wide reason (which pause the batch) do not.
   */
  counted: boolean;
  /** The call may have been applied although it failed. */
  uncertain: boolean;
  message: string;
}

/** Data of a job on the revocation queue. */
export interface RevocationJobData {
  batchId: string;
  mqttInstanceId: string;
  caSn: string;
  deviceSn: string;
  action: RevocationAction;
  /** Earlier attempts of this job (empty on the first). */
  history: AttemptRecord[];
  /** ISO time of the first call, once made. */
  firstAttemptAt: string | null;
  /**
   * Runs of this job that ended without calling the API (parked while its batch was paused).
   * With `history`, it tells a run that called and left no trace (a crash: result unknown) from
   * one that never called. Absent on jobs enqueued before it existed.
   */
  runsWithoutCall?: number;
}
