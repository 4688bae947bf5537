/**
 * The result record: one per device per batch (DESIGN.md §3), the durable trace of a revocation.
 */
import type { RevocationAction } from '../cloud/certificate-api.js';

/**
 * Terminal outcomes of a device (shared DESIGN.md §3, "Result record"):
 * - `deleted` / `inactivated`: revoker's call was answered with success, or its answer was lost
 *   and the snapshot shows the certificate existed before that call;
 * - `not_found`: not registered, answered on a call with no earlier lost answer (or absent from
 *   the snapshot);
 * - `gone`: not registered now after a call whose answer was lost, and nothing says whether it
 *   existed before; counts as revoked;
 * - `failed`: dead-lettered; `cancelled`: no call of revoker's can have changed it.
 */
export type Outcome = 'deleted' | 'inactivated' | 'not_found' | 'gone' | 'failed' | 'cancelled';

/** Every terminal outcome, in report order. */
export const OUTCOMES: readonly Outcome[] = ['deleted', 'inactivated', 'not_found', 'gone', 'failed', 'cancelled'];

/** Outcomes after which the certificate is known not to be usable any more. */
export const REVOKED_OUTCOMES: readonly Outcome[] = ['deleted', 'inactivated', 'not_found', 'gone'];

/**
 * What an outcome rests on: `answer` (the API's answer to revoker's call), `snapshot` (the
 * batch's existence snapshot decided a lost answer), `read` (a later GetDeviceCertificate),
 * `ca_deleted` (removed with its CA), `none` (no call was made, e.g. cancelled).
 */
export type Evidence = 'answer' | 'snapshot' | 'read' | 'ca_deleted' | 'none';

/** One device's result in one batch. */
export interface ResultRecord {
  batchId: string;
  mqttInstanceId: string;
  caSn: string;
  deviceSn: string;
  action: RevocationAction;
  outcome: Outcome;
  /** What the outcome rests on. Absent on records written before it existed. */
  evidence?: Evidence;
  /** Calls made for this device, throttled ones excluded. */
  attempts: number;
  requestId: string | null;
  errorCode: string | null;
  httpStatus: number | null;
  message: string | null;
  firstAttemptAt: string | null;
  finishedAt: string;
  /** With `--verify`: what a read after the revocation saw (absent on batches without it). */
  verification?: Verification;
  /** When that read was answered (ISO 8601). */
  verifiedAt?: string;
  /** The read's RequestId. */
  verifyRequestId?: string | null;
}

/**
 * What a read after the revocation saw: `absent` (not registered), `inactive` / `active` (after an
 * inactivate), `registered` (after a delete: still or again there), `unreadable` (reads failed).
 */
export type Verification = 'absent' | 'inactive' | 'active' | 'registered' | 'unreadable';

/** The read-back fields of a record. */
export interface ReadBack {
  verification: Verification;
  verifiedAt: string;
  verifyRequestId: string | null;
}

/** What is stored for a device accepted into a batch but not finished yet. */
export interface PendingRecord {
  batchId: string;
  mqttInstanceId: string;
  caSn: string;
  deviceSn: string;
  action: RevocationAction;
  outcome: 'pending';
}
