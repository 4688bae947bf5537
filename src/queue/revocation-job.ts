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

/** Code of the history entry a dead-letter redrive adds: attempts are counted after the last one. */
export const REDRIVEN_CODE = 'Redriven';

/** Attempts that count toward MAX_ATTEMPTS: the counted entries since the last redrive. */
export function countedAttempts(history: readonly AttemptRecord[]): number {
  let count = 0;
  for (let i = history.length - 1; i >= 0; i -= 1) {
    const entry = history[i];
    if (entry === undefined || entry.code === REDRIVEN_CODE) break;
    if (entry.counted) count += 1;
  }
  return count;
}

/** Data of a job on the revocation queue. */
export interface RevocationJobData {
  /**
   * The batch that opened this job. Every batch subscribed to the job (the ledger's subscriber
   * set, this one included) gets its outcome; this one is also written when the set was lost.
   */
  batchId: string;
  /**
   * The revocation id: the results-hash field and ledger entry (`Keys.revocation`). Absent on jobs
   * enqueued before the ledger, whose job id is the revocation id.
   */
  revocationId?: string;
  mqttInstanceId: string;
  caSn: string;
  deviceSn: string;
  action: RevocationAction;
  /** Earlier attempts of this job (empty on the first). */
  history: AttemptRecord[];
  /** ISO time of the first call, once made. */
  firstAttemptAt: string | null;
  /**
   * The first call's time on Redis' clock (the calling worker's estimate, see RedisClock): what
   * existence snapshots are compared with. Absent on jobs from before snapshots.
   */
  firstCallAt?: number | null;
  /**
   * Write-ahead call intent: set just before an API call, replaced by the call's attempt record
   * once it is answered. A run that finds one left behind knows that a call was made whose
   * answer nobody saw (the worker died or lost the job mid-call): exactly the "unknown result"
   * case. Limiter waits, parks and stalls before a call leave none, so they never count as calls.
   */
  callIntent?: { at: string } | null;
}
