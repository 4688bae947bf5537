/**
 * Completion events: what revoker POSTs to a batch's callback URL when the batch completes, is
 * paused (by a breaker, an API error that affects every device, or an operator) or is cancelled.
 */
import type { Batch } from '../batches/batch.js';

/** The transitions that produce an event. */
export type BatchEventType = 'batch.completed' | 'batch.paused' | 'batch.cancelled';

/** An entry of the outbox, written by the same Lua script that changes the batch's state. */
export interface OutboxEntry {
  batchId: string;
  /** Per-batch sequence number: with the batch id, the event's stable id. */
  seq: number;
  state: 'completed' | 'paused' | 'cancelled';
  at: string;
}

/** The body POSTed to the receiver. */
export interface BatchEventBody {
  type: BatchEventType;
  /** Also sent as `webhook-id`: the same on every retry, so the receiver can dedupe. */
  eventId: string;
  batchId: string;
  name: string;
  state: string;
  reason: string | null;
  occurredAt: string;
  accepted: number;
  rejected: number;
  duplicates: number;
  counts: Batch['counts'];
  /** Admin API path of the batch's report. */
  reportPath: string;
}

/**
 * Lua defining `emit(batchKey, outboxKey, state, now)`: appends an `OutboxEntry` to the outbox.
 * Prepended to every script that completes, pauses or cancels a batch, so the event is written
 * in the same atomic step as the state change it reports.
 */
export const EMIT_EVENT_LUA = `local function emit(batchKey, outboxKey, state, now)
  local seq = redis.call('HINCRBY', batchKey, 'eventSeq', 1)
  redis.call('RPUSH', outboxKey, cjson.encode({batchId = redis.call('HGET', batchKey, 'id'), seq = seq, state = state, at = now}))
end
`;

/** The stable id of an outbox entry's event. */
export function eventId(entry: Pick<OutboxEntry, 'batchId' | 'seq'>): string {
  return `evt-${entry.batchId}-${entry.seq}`;
}

/** Builds the event body from the entry and the batch as it is when delivered. Pure. */
export function buildBatchEvent(entry: OutboxEntry, batch: Batch): BatchEventBody {
  return {
    type: `batch.${entry.state}`,
    eventId: eventId(entry),
    batchId: batch.id,
    name: batch.name,
    state: entry.state,
    reason: entry.state === 'completed' ? null : batch.reason,
    occurredAt: entry.at,
    accepted: batch.accepted,
    rejected: batch.rejected,
    duplicates: batch.duplicates,
    counts: batch.counts,
    reportPath: `/v1/batches/${encodeURIComponent(batch.id)}/report?format=csv`,
  };
}
