/**
 * Steering a batch from the console: what each action will do, said with the batch's numbers
 * before it is done ("cancel 41,207 devices not yet revoked"), and doing it through the same
 * `BatchControl` and dead-letter operations as the CLI and the admin API, audited under the
 * signed-in token's name.
 */
import type { AuditTrail } from '../../audit/audit-trail.js';
import type { Batch } from '../../batches/batch.js';
import type { ControlResult } from '../../batches/batch-control.js';
import { controlCharacterProblem } from '../../producer/free-text.js';
import { parsePriority, type BatchPriority } from '../../queue/priority.js';
import type { Context } from '../../runtime/context.js';
import { count } from './html.js';

/** What an operator can do to a batch. */
export type SteeringAction = 'pause' | 'resume' | 'cancel' | 'priority' | 'redrive';

/** Every action, in the order the controls show them. */
export const STEERING_ACTIONS: readonly SteeringAction[] = ['pause', 'resume', 'cancel', 'priority', 'redrive'];

/** Longest reason an operator may give (the admin API's limit). */
export const MAX_REASON_CHARS = 1_000;

/** What the confirmation says and whether the action applies now. */
export interface Confirmation {
  action: SteeringAction;
  /** Short title: "Cancel batch leaked.csv?" */
  title: string;
  /** What will happen, with the numbers: the button's text. */
  button: string;
  /** Sentences a person reads before deciding. */
  details: string[];
  /** Why it cannot be done now (a finished batch cannot be paused), or null. */
  unavailable: string | null;
  /** Whether the form asks for a reason. */
  asksReason: boolean;
  /** For `priority`: the new priority. */
  priority: BatchPriority | null;
}

function remaining(batch: Batch): number {
  return Math.max(0, batch.accepted - batch.done);
}

function devices(n: number): string {
  return `${count(n)} ${n === 1 ? 'device' : 'devices'}`;
}

const OPEN = new Set(['enqueuing', 'running', 'paused']);

/** Which actions the batch's state allows (the controls shown). */
export function availableActions(batch: Batch): SteeringAction[] {
  const out: SteeringAction[] = [];
  if (batch.state === 'running' || batch.state === 'enqueuing') out.push('pause');
  if (batch.state === 'paused') out.push('resume');
  if (OPEN.has(batch.state)) out.push('cancel', 'priority');
  if (batch.counts.failed > 0 && batch.state !== 'cancelled') out.push('redrive');
  return out;
}

/**
 * The confirmation of `action` on `batch` as it is now. `priority` is the new priority asked for
 * (`priority` action). Pure: the numbers come from the batch's counters.
 */
export function confirmationOf(batch: Batch, action: SteeringAction, priority: BatchPriority | null = null, accountPauses: readonly string[] = []): Confirmation {
  const left = remaining(batch);
  const notYet = `${devices(left)} not yet revoked`;
  const allowed = availableActions(batch).includes(action);
  const stateNote = `the batch is ${batch.state}`;
  const base = { action, unavailable: allowed ? null : `Not possible now: ${stateNote}.`, asksReason: false, priority: null };
  const enqueuing = batch.enqueued ? '' : ' (the input is still being read: more devices may follow)';
  switch (action) {
    case 'pause':
      return {
        ...base,
        asksReason: true,
        title: `Pause ${batch.name}?`,
        button: `Pause: stop calls for ${notYet}`,
        details: [`Workers stop calling for this batch within a second; calls already in flight finish and are recorded.`, `${notYet}${enqueuing} wait until someone resumes the batch. Other batches go on.`],
      };
    case 'resume':
      return {
        ...base,
        title: `Resume ${batch.name}?`,
        button: `Resume: call again for ${notYet}`,
        details: [
          `Calls for ${notYet} start again at the rate the budgets allow.`,
          ...(batch.reason !== null ? [`It was paused because: ${batch.reason}. Resume only once that is fixed; if not, the first call pauses it again.`] : []),
          ...(accountPauses.length > 0 ? [`This also lifts the account-wide pause (${accountPauses.join('; ')}) for every batch of the account.`] : []),
        ],
      };
    case 'cancel':
      return {
        ...base,
        asksReason: true,
        title: `Cancel ${batch.name}?`,
        button: `Cancel ${notYet}`,
        details: [
          `${notYet}${enqueuing} will be recorded cancelled, without calls (a device whose last call's answer was lost is read once, so its record is true).`,
          `${devices(batch.done)} already finished keep their outcomes. Other batches that want the same devices still get them revoked.`,
          'A cancelled batch cannot be resumed: start a new one to revoke these devices later.',
        ],
      };
    case 'priority': {
      const wanted = priority ?? batch.priority;
      const same = wanted === batch.priority;
      return {
        ...base,
        unavailable: base.unavailable ?? (same ? `The batch is already ${wanted}.` : null),
        priority: wanted,
        title: `Change the priority of ${batch.name}?`,
        button: `Make ${notYet} ${wanted}`,
        details: [
          `From ${batch.priority} to ${wanted}: its waiting devices (up to ${devices(left)}) move to the ${wanted} class${wanted === 'urgent' ? ', ahead of normal and bulk work' : wanted === 'bulk' ? ', behind urgent and normal work' : ''}.`,
          'A device another batch also waits for is never moved down.',
        ],
      };
    }
    case 'redrive':
      return {
        ...base,
        title: `Redrive the dead letters of ${batch.name}?`,
        button: `Redrive ${devices(batch.counts.failed)} recorded failed`,
        details: [
          `The dead letters of this batch (${devices(batch.counts.failed)} recorded failed) go back on the queue with fresh attempts; their records become pending again and get a new outcome.`,
          'Fix the cause first (see each dead letter\'s history): otherwise they fail again.',
        ],
      };
  }
}

/** A reason from a form: trimmed, bounded, no control characters. Null when empty; throws a message when refused. */
export function reasonFromForm(value: string | null): string | null {
  if (value === null) return null;
  const trimmed = value.trim();
  if (trimmed === '') return null;
  if (trimmed.length > MAX_REASON_CHARS) throw new RangeError(`the reason is longer than ${MAX_REASON_CHARS} characters`);
  const problem = controlCharacterProblem('the reason', trimmed);
  if (problem !== null) throw new RangeError(problem);
  return trimmed;
}

/** A priority from a form, or null. */
export function priorityFromForm(value: string | null): BatchPriority | null {
  return value === null ? null : parsePriority(value.trim());
}

/** What doing an action came to. */
export interface SteeringResult {
  ok: boolean;
  /** One sentence for the page. */
  message: string;
}

/** Does `action`, records it in the audit trail as `actor` from `from`. */
export async function steer(context: Context, audit: AuditTrail, batch: Batch, action: SteeringAction, input: { reason: string | null; priority: BatchPriority | null; actor: string; from: string }): Promise<SteeringResult> {
  const record = (args: Record<string, string | number | boolean | null>, ok: boolean) => audit.record({ action, batchId: batch.id, actor: input.actor, from: input.from, args: { ...args, via: 'console' }, ok });
  // What the confirmation offered is checked again: someone else may have changed the batch since.
  if (!availableActions(batch).includes(action)) {
    await record({ reason: input.reason, refused: `the batch is ${batch.state}` }, false);
    return { ok: false, message: `the batch is ${batch.state}: ${action} is not possible now` };
  }
  if (action === 'redrive') {
    const summary = await context.deadLetters.redrive(batch.id);
    await record({ redriven: summary.redriven, skipped: summary.skipped }, true);
    return { ok: true, message: `${count(summary.redriven)} dead letters redriven${summary.skipped > 0 ? `, ${count(summary.skipped)} skipped (their batches expired or were cancelled)` : ''}.` };
  }
  if (action === 'priority') {
    if (input.priority === null) return { ok: false, message: 'Choose urgent, normal or bulk.' };
    const result = await context.control.setPriority(batch.id, input.priority);
    await record({ priority: input.priority, moved: result.moved }, result.ok);
    return { ok: result.ok, message: result.ok ? `Priority is now ${input.priority}: ${count(result.moved)} waiting devices moved.` : result.message };
  }
  let result: ControlResult;
  if (action === 'pause') result = await context.control.pause(batch.id, input.reason ?? undefined);
  else if (action === 'cancel') result = await context.control.cancel(batch.id, input.reason ?? undefined);
  else result = await context.control.resume(batch.id);
  await record({ reason: input.reason }, result.ok);
  if (!result.ok) return { ok: false, message: result.message };
  const woken = result.woken > 0 ? ` ${count(result.woken)} parked devices woken.` : '';
  const done = { pause: 'Paused: workers stop calling for it within a second.', resume: 'Resumed.', cancel: 'Cancelled: the devices not yet revoked are being recorded cancelled.' }[action];
  return { ok: true, message: `${done}${woken}` };
}
