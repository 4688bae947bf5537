/**
 * What the worker does with a call's answer: the answer (its class from `classifyFailure`), the
 * revocation's history and whether an earlier call's answer was lost → the next step. Pure; the
 * worker does the I/O (records, retries, pauses). Before the call, `decideRun` decides from the
 * subscribers; together they are the worker's whole decision.
 */
import type { RevocationAction } from '../cloud/certificate-api.js';
import type { FailureClass } from '../cloud/classify.js';
import { countedAttempts, type AttemptRecord } from '../queue/revocation-job.js';
import type { Evidence, Outcome } from '../results/result-record.js';

/** The inputs of `stepAfterAnswer`. */
export interface AnswerInput {
  action: RevocationAction;
  /** The class of the failure; null when the call succeeded. */
  verdict: FailureClass | null;
  /** The failure's code and message (when the call failed). */
  failure: { code: string; message: string } | null;
  /** Attempts before this call. */
  history: readonly AttemptRecord[];
  /** An earlier call's answer was lost (its history or the ledger says so). */
  lostBefore: boolean;
  /**
   * What an existence snapshot says of the device, asked only after a lost answer followed by
   * "not registered" (see ExistenceSnapshots.lookup); null when none knows.
   */
  snapshot?: 'present' | 'absent' | null;
  maxAttempts: number;
  /** This undocumented refusal completes a streak over several devices (`RepeatedRefusals`). */
  refusedInARow: boolean;
  /** The account is paused now (for an undocumented refusal that was in flight when it paused). */
  accountPaused: boolean;
}

/** The next step after an answer. */
export type AnswerStep =
  /** The revocation's outcome (evidence: the answer, unless said otherwise). */
  | { kind: 'record'; outcome: Outcome; message: string | null; evidence?: Evidence }
  /** Call again after backoff number `retry` (throttled: the short backoff; not an attempt). */
  | { kind: 'retry'; retry: number; end: 'retry' | 'throttled' }
  | { kind: 'dead_letter'; reason: string }
  /** The instance is refused: pause the running subscribers (or end a row's override, see instance-rule). */
  | { kind: 'pause_instance' }
  /** Every call of the account would fail: pause the account. */
  | { kind: 'pause_account'; why: 'account' | 'ip_blocked' | 'refusals' }
  /** The account paused while this call was in flight: keep it for after the fix. */
  | { kind: 'park' };

/** Why "not registered" after a lost answer is `gone`. */
export const GONE_AFTER_LOST_ANSWER =
  'not registered now, after an earlier call whose answer was lost: that call may have removed it, or it was never registered (no existence snapshot to tell)';

/** Throttled answers at the end of the history (the throttle backoff grows with them). */
export function trailingThrottles(history: readonly AttemptRecord[]): number {
  let count = 0;
  for (let i = history.length - 1; i >= 0 && history[i]?.code.startsWith('Throttling') === true; i -= 1) count += 1;
  return count;
}

/** Why a snapshot turned "not registered" after a lost answer into `deleted`. */
export const DELETED_BY_SNAPSHOT =
  "an earlier call's answer was lost; an existence snapshot saw the certificate registered before revoker's first call and it is not registered now: that call removed it";
/** Why a snapshot turned "not registered" after a lost answer into `not_found`. */
export const NOT_FOUND_BY_SNAPSHOT =
  "an earlier call's answer was lost; the certificate is not registered now and was absent from an existence snapshot completed before revoker's first call";

/** "Not registered" after an earlier lost answer: the snapshot decides, else `gone`. */
export function afterLostAnswer(input: Pick<AnswerInput, 'action' | 'snapshot'>): Extract<AnswerStep, { kind: 'record' }> {
  if (input.snapshot === 'absent') return { kind: 'record', outcome: 'not_found', message: NOT_FOUND_BY_SNAPSHOT, evidence: 'snapshot' };
  // An inactivate never removes a certificate: seen before and missing now is someone else's doing.
  if (input.snapshot === 'present' && input.action === 'delete') return { kind: 'record', outcome: 'deleted', message: DELETED_BY_SNAPSHOT, evidence: 'snapshot' };
  return { kind: 'record', outcome: 'gone', message: GONE_AFTER_LOST_ANSWER };
}

/** Decides the step after an answer (see the module comment). */
export function stepAfterAnswer(input: AnswerInput): AnswerStep {
  const { verdict, failure } = input;
  if (verdict === null || failure === null) return { kind: 'record', outcome: input.action === 'delete' ? 'deleted' : 'inactivated', message: null };
  if (verdict.action === 'permanent' && !verdict.documented) {
    if (input.refusedInARow) return { kind: 'pause_account', why: 'refusals' };
    if (input.accountPaused) return { kind: 'park' };
  }
  switch (verdict.action) {
    case 'not_found':
      return input.lostBefore ? afterLostAnswer(input) : { kind: 'record', outcome: 'not_found', message: null };
    case 'throttle':
      return { kind: 'retry', retry: trailingThrottles(input.history) + 1, end: 'throttled' };
    case 'retry': {
      const attempts = countedAttempts(input.history) + 1;
      if (attempts >= input.maxAttempts) return { kind: 'dead_letter', reason: `gave up after ${attempts} attempts; last: ${failure.code} ${failure.message}` };
      return { kind: 'retry', retry: attempts, end: 'retry' };
    }
    case 'permanent':
      return { kind: 'dead_letter', reason: `${failure.code}: ${failure.message}` };
    case 'fatal_for_batch':
      return { kind: 'pause_instance' };
    case 'fatal_for_account':
      return { kind: 'pause_account', why: 'account' };
    case 'ip_blocked':
      return { kind: 'pause_account', why: 'ip_blocked' };
  }
}
