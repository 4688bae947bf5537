/**
 * A batch: one enqueue (a CSV file, a webhook delivery, a CA listing) and its devices.
 */
import type { RevocationAction } from '../cloud/certificate-api.js';
import type { BatchPriority } from '../queue/priority.js';
import type { Outcome } from '../results/result-record.js';

/** Where a batch came from. */
export type BatchSource = 'csv' | 'webhook' | 'ca_listing';

/**
 * Lifecycle: enqueuing → running → completed, with paused ⇄ running at any time before the
 * end, and cancelled from any unfinished state.
 */
export type BatchState = 'enqueuing' | 'running' | 'paused' | 'completed' | 'cancelled';

/** A batch as read back, counters included. */
export interface Batch {
  id: string;
  name: string;
  source: BatchSource;
  action: RevocationAction;
  /** Urgent work is taken before normal before bulk. */
  priority: BatchPriority;
  /** Who or what created it: a user name, a webhook id, a host. */
  createdBy: string;
  createdAt: string;
  finishedAt: string | null;
  state: BatchState;
  /** Why the batch is paused or cancelled (or why its input ended early). */
  reason: string | null;
  /** Set when the batch's input ended before its end: the producer stopped (see the reconciler). */
  inputNote: string | null;
  /** True once every input row was read and enqueued. */
  enqueued: boolean;
  accepted: number;
  rejected: number;
  duplicates: number;
  /** Devices with a terminal outcome. */
  done: number;
  counts: Record<Outcome, number>;
  /** Completion events given up on after every delivery attempt. */
  eventsFailed: number;
  /** `--verify`: each device is read back after its revocation (present only when asked for). */
  verify?: boolean;
}
