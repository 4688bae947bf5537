/**
 * Batch priorities on one BullMQ queue: every job is "prioritized" with
 * `class base + the device's round-robin index`, so workers take urgent work before normal
 * before bulk, and batches of one class interleave (A0 B0 A1 B1 …) instead of queueing behind
 * each other. A batch that starts while another of its class is draining begins at the class's
 * current position (the lowest priority waiting), not at 0, so it shares rather than starves.
 *
 * BullMQ scores prioritized jobs `priority · 2³² + counter` and allows priorities up to 2²¹, so
 * each class spans 2¹⁹ values: devices of a batch beyond its 524,287th share the last value
 * (FIFO among themselves).
 */

/** A batch's priority. */
export type BatchPriority = 'urgent' | 'normal' | 'bulk';

/** Every priority, most urgent first. */
export const BATCH_PRIORITIES: readonly BatchPriority[] = ['urgent', 'normal', 'bulk'];

/** Values of one class: 2¹⁹. */
export const CLASS_SPAN = 2 ** 19;

/** First BullMQ priority of each class (BullMQ: lower is served first; 0 would mean "not prioritized"). */
export const CLASS_BASE: Record<BatchPriority, number> = { urgent: 1, normal: 1 + CLASS_SPAN, bulk: 1 + 2 * CLASS_SPAN };

/** The BullMQ priority of the device at round-robin position `index` of a batch of class `priority`. */
export function jobPriority(priority: BatchPriority, index: number): number {
  return CLASS_BASE[priority] + Math.max(0, Math.min(CLASS_SPAN - 1, Math.floor(index)));
}

/** The class of a BullMQ priority (jobs without one count as normal). */
export function classOf(bullPriority: number | undefined): BatchPriority {
  if (bullPriority === undefined || bullPriority < CLASS_BASE.urgent) return 'normal';
  if (bullPriority < CLASS_BASE.normal) return 'urgent';
  if (bullPriority < CLASS_BASE.bulk) return 'normal';
  return 'bulk';
}

/** The round-robin position encoded in a BullMQ priority. */
export function positionOf(bullPriority: number): number {
  return bullPriority - CLASS_BASE[classOf(bullPriority)];
}

/** The priority (0 first … 9 last) of a class's calls among those waiting in one process (local-order.ts). */
export function limiterPriority(priority: BatchPriority): number {
  return priority === 'urgent' ? 0 : priority === 'normal' ? 5 : 9;
}

/** Parses a user's priority, or null. */
export function parsePriority(value: unknown): BatchPriority | null {
  return typeof value === 'string' && (BATCH_PRIORITIES as readonly string[]).includes(value) ? (value as BatchPriority) : null;
}
