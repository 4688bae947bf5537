/**
 * What a revocation job's run does before any call, decided from the ledger: its subscriber
 * batches and their states, the account pause, and whether an earlier call's result is unknown.
 * Pure: the worker reads the inputs (one script) and applies the plan.
 *
 * Subscribers decide only for themselves:
 * - a batch that is gone (expired) leaves, nothing to write;
 * - a cancelled batch leaves with `cancelled` (no call of revoker's can have changed the
 *   certificate) — unless an earlier call's result is unknown: then it stays and gets the final
 *   outcome, and when only such cancelled batches remain, one read decides for them all;
 * - a completed batch has no pending record of this job: it leaves;
 * - a paused batch holds the revocation back only if no running batch wants it.
 * The call's priority is the most urgent among the running subscribers.
 */
import type { BatchState } from '../batches/batch.js';
import { BATCH_PRIORITIES, type BatchPriority } from '../queue/priority.js';

/** One subscriber as the run sees it. */
export interface SubscriberView {
  batchId: string;
  /** Null when the batch is gone. */
  state: BatchState | null;
  priority: BatchPriority;
}

/** The inputs of `decideRun`. */
export interface RunInput {
  subscribers: readonly SubscriberView[];
  /** An account-wide pause is in force. */
  accountPaused: boolean;
  /** An earlier call of this revocation may have been applied (its answer was lost or ambiguous). */
  priorResultUnknown: boolean;
}

/** A subscriber that leaves the job before the call. */
export interface Leaving {
  batchId: string;
  /** `cancelled`: write that record into the batch; `none`: nothing to write (gone, or finished). */
  record: 'cancelled' | 'none';
}

/** What the run does next. */
export type RunStep =
  /** No subscriber is left: end the job without a call. */
  | { kind: 'close' }
  /** Wait for a resume: park the job in these batches' parked sets. */
  | { kind: 'park'; parkIn: string[] }
  /** Only cancelled subscribers remain after a call whose result is unknown: one read decides. */
  | { kind: 'read_for_cancel' }
  /** Call the API at this priority for these running subscribers (the others get the outcome too). */
  | { kind: 'call'; priority: BatchPriority; running: string[] };

/** The plan: who leaves first, then the step. */
export interface RunPlan {
  leaving: Leaving[];
  step: RunStep;
}

const RUNNING: readonly (BatchState | null)[] = ['enqueuing', 'running'];

/** Decides a run (see the module comment). */
export function decideRun(input: RunInput): RunPlan {
  const leaving: Leaving[] = [];
  const staying: SubscriberView[] = [];
  for (const subscriber of input.subscribers) {
    if (subscriber.state === null || subscriber.state === 'completed') leaving.push({ batchId: subscriber.batchId, record: 'none' });
    else if (subscriber.state === 'cancelled' && !input.priorResultUnknown) leaving.push({ batchId: subscriber.batchId, record: 'cancelled' });
    else staying.push(subscriber);
  }
  if (staying.length === 0) return { leaving, step: { kind: 'close' } };
  const running = staying.filter((subscriber) => RUNNING.includes(subscriber.state));
  if (input.accountPaused) return { leaving, step: { kind: 'park', parkIn: staying.map((subscriber) => subscriber.batchId) } };
  if (running.length > 0) {
    const priority = BATCH_PRIORITIES.find((candidate) => running.some((subscriber) => subscriber.priority === candidate)) ?? 'normal';
    return { leaving, step: { kind: 'call', priority, running: running.map((subscriber) => subscriber.batchId) } };
  }
  const paused = staying.filter((subscriber) => subscriber.state === 'paused');
  if (paused.length > 0) return { leaving, step: { kind: 'park', parkIn: paused.map((subscriber) => subscriber.batchId) } };
  return { leaving, step: { kind: 'read_for_cancel' } };
}

/**
 * Whether a call decided on `running` may still go ahead after the wait for a permit, given the
 * states now (possibly a fraction of a second old): at least one of them still runs and the
 * account is not paused.
 */
export function stillRunning(states: readonly (BatchState | null)[], accountPaused: boolean): boolean {
  return !accountPaused && states.some((state) => RUNNING.includes(state));
}
