/**
 * The result record: one per device per batch (DESIGN.md §3), the durable trace of a revocation.
 */
import type { RevocationAction } from '../cloud/certificate-api.js';

/** Terminal outcomes of a device. */
export type Outcome = 'deleted' | 'inactivated' | 'not_found' | 'failed' | 'cancelled';

/** Every terminal outcome, in report order. */
export const OUTCOMES: readonly Outcome[] = ['deleted', 'inactivated', 'not_found', 'failed', 'cancelled'];

/** One device's result in one batch. */
export interface ResultRecord {
  batchId: string;
  mqttInstanceId: string;
  caSn: string;
  deviceSn: string;
  action: RevocationAction;
  outcome: Outcome;
  /** Calls made for this device, throttled ones excluded. */
  attempts: number;
  requestId: string | null;
  errorCode: string | null;
  httpStatus: number | null;
  message: string | null;
  firstAttemptAt: string | null;
  finishedAt: string;
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
