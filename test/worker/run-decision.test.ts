/**
 * The worker's decisions as tables (issue 11, part 8): before a call, who leaves a revocation and
 * whether the run calls, parks, closes or reads (part 3); after it, what the answer leads to; and
 * what an instance error does (part 6, symptom 12).
 */
import { describe, expect, it } from 'vitest';
import type { InstanceView } from '../../src/batches/batch-store.js';
import type { BatchState } from '../../src/batches/batch.js';
import type { BatchPriority } from '../../src/queue/priority.js';
import type { FailureClass } from '../../src/cloud/classify.js';
import type { AttemptRecord } from '../../src/queue/revocation-job.js';
import { DELETED_BY_SNAPSHOT, GONE_AFTER_LOST_ANSWER, NOT_FOUND_BY_SNAPSHOT, stepAfterAnswer, type AnswerInput, type AnswerStep } from '../../src/worker/answer-step.js';
import { decideInstanceError } from '../../src/worker/instance-rule.js';
import { decideRun, stillRunning, type RunPlan } from '../../src/worker/run-decision.js';

function sub(batchId: string, state: BatchState | null, priority: BatchPriority = 'normal') {
  return { batchId, state, priority };
}

describe('decideRun', () => {
  const cases: [string, Parameters<typeof decideRun>[0], RunPlan][] = [
    ['one running batch: call at its priority', { subscribers: [sub('a', 'running', 'bulk')], accountPaused: false, priorResultUnknown: false }, { leaving: [], step: { kind: 'call', priority: 'bulk', running: ['a'] } }],
    ['an enqueuing batch runs too', { subscribers: [sub('a', 'enqueuing')], accountPaused: false, priorResultUnknown: false }, { leaving: [], step: { kind: 'call', priority: 'normal', running: ['a'] } }],
    [
      'the most urgent running subscriber sets the priority; a paused one does not',
      { subscribers: [sub('a', 'running', 'bulk'), sub('b', 'running', 'normal'), sub('c', 'paused', 'urgent')], accountPaused: false, priorResultUnknown: false },
      { leaving: [], step: { kind: 'call', priority: 'normal', running: ['a', 'b'] } },
    ],
    ['no subscriber: close', { subscribers: [], accountPaused: false, priorResultUnknown: false }, { leaving: [], step: { kind: 'close' } }],
    [
      'a gone batch leaves without a record; a completed one too',
      { subscribers: [sub('gone', null), sub('done', 'completed')], accountPaused: false, priorResultUnknown: false },
      {
        leaving: [
          { batchId: 'gone', record: 'none' },
          { batchId: 'done', record: 'none' },
        ],
        step: { kind: 'close' },
      },
    ],
    [
      'a cancelled batch leaves with `cancelled` while another runs: the call goes on for the other',
      { subscribers: [sub('x', 'cancelled'), sub('y', 'running')], accountPaused: false, priorResultUnknown: false },
      { leaving: [{ batchId: 'x', record: 'cancelled' }], step: { kind: 'call', priority: 'normal', running: ['y'] } },
    ],
    [
      'after an unknown result a cancelled batch stays: it gets the outcome of the call the running one wants',
      { subscribers: [sub('x', 'cancelled'), sub('y', 'running')], accountPaused: false, priorResultUnknown: true },
      { leaving: [], step: { kind: 'call', priority: 'normal', running: ['y'] } },
    ],
    ['only cancelled batches after an unknown result: one read decides', { subscribers: [sub('x', 'cancelled'), sub('z', 'cancelled')], accountPaused: false, priorResultUnknown: true }, { leaving: [], step: { kind: 'read_for_cancel' } }],
    ['only cancelled batches, nothing unknown: all leave, close', { subscribers: [sub('x', 'cancelled')], accountPaused: false, priorResultUnknown: false }, { leaving: [{ batchId: 'x', record: 'cancelled' }], step: { kind: 'close' } }],
    ['a paused batch alone: park in it', { subscribers: [sub('p', 'paused')], accountPaused: false, priorResultUnknown: false }, { leaving: [], step: { kind: 'park', parkIn: ['p'] } }],
    [
      'a paused batch holds back nothing a running batch wants',
      { subscribers: [sub('p', 'paused', 'urgent'), sub('r', 'running', 'bulk')], accountPaused: false, priorResultUnknown: false },
      { leaving: [], step: { kind: 'call', priority: 'bulk', running: ['r'] } },
    ],
    [
      'paused and cancelled-after-unknown: park in the paused one (its resume decides)',
      { subscribers: [sub('p', 'paused'), sub('x', 'cancelled')], accountPaused: false, priorResultUnknown: true },
      { leaving: [], step: { kind: 'park', parkIn: ['p'] } },
    ],
    [
      'the account paused: park in every remaining subscriber',
      { subscribers: [sub('r', 'running'), sub('p', 'paused'), sub('x', 'cancelled')], accountPaused: true, priorResultUnknown: false },
      { leaving: [{ batchId: 'x', record: 'cancelled' }], step: { kind: 'park', parkIn: ['r', 'p'] } },
    ],
  ];
  it.each(cases)('%s', (_name, input, plan) => {
    expect(decideRun(input)).toEqual(plan);
  });

  it('stillRunning: one running batch is enough, an account pause stops it', () => {
    expect(stillRunning(['paused', 'running'], false)).toBe(true);
    expect(stillRunning(['paused', 'cancelled', null], false)).toBe(false);
    expect(stillRunning(['running'], true)).toBe(false);
  });
});

describe('decideInstanceError', () => {
  function view(batchId: string, state: BatchState | null, usualInstance: string | null, pausedBefore: boolean): InstanceView {
    return { batchId, state, usualInstance, pausedBefore };
  }
  const cases: [string, InstanceView[], ReturnType<typeof decideInstanceError>][] = [
    ['first error on the usual instance: pause', [view('a', 'running', 'i1', false)], { kind: 'pause', batchIds: ['a'] }],
    ['again on the usual instance after a resume: pause again (the operator must fix it)', [view('a', 'running', 'i1', true)], { kind: 'pause', batchIds: ['a'] }],
    ['first error on a row override: pause (the operator may fix it)', [view('a', 'running', 'i1', false)].map((v) => ({ ...v, usualInstance: 'i9' })), { kind: 'pause', batchIds: ['a'] }],
    ['again on a row override after the resume: end it with a dead letter', [view('a', 'running', 'i9', true)], { kind: 'end', usualInstances: ['i9'] }],
    ['paused right now by a concurrent error: still a pause, not an end', [view('a', 'paused', 'i9', true)], { kind: 'pause', batchIds: ['a'] }],
    ['two batches, one still pauses: pause that one only', [view('a', 'running', 'i9', true), view('b', 'running', 'i1', true)], { kind: 'pause', batchIds: ['b'] }],
  ];
  it.each(cases)('%s', (_name, views, step) => {
    expect(decideInstanceError(views, 'i1')).toEqual(step);
  });
});

describe('stepAfterAnswer', () => {
  const attempt = (code: string, counted = true, uncertain = false): AttemptRecord => ({ at: '', code, httpStatus: null, requestId: null, counted, uncertain, message: '' });
  const verdict = (action: FailureClass['action'], documented = true, uncertain = false): FailureClass => ({ action, documented, uncertain });
  const base: AnswerInput = { action: 'delete', verdict: null, failure: null, history: [], lostBefore: false, maxAttempts: 3, refusedInARow: false, accountPaused: false };
  const failed = (v: FailureClass, code = 'X', more: Partial<AnswerInput> = {}): AnswerInput => ({ ...base, verdict: v, failure: { code, message: 'm' }, ...more });
  const cases: [string, AnswerInput, AnswerStep][] = [
    ['success of a delete: deleted', base, { kind: 'record', outcome: 'deleted', message: null }],
    ['success of an inactivate: inactivated', { ...base, action: 'inactivate' }, { kind: 'record', outcome: 'inactivated', message: null }],
    ['not registered, nothing lost before: not_found', failed(verdict('not_found'), 'FindDeviceBySnError'), { kind: 'record', outcome: 'not_found', message: null }],
    ['not registered after a lost answer: gone', failed(verdict('not_found'), 'FindDeviceBySnError', { lostBefore: true }), { kind: 'record', outcome: 'gone', message: GONE_AFTER_LOST_ANSWER }],
    [
      'not registered after a lost answer, seen by a snapshot before the first call: deleted (evidence snapshot)',
      failed(verdict('not_found'), 'FindDeviceBySnError', { lostBefore: true, snapshot: 'present' }),
      { kind: 'record', outcome: 'deleted', message: DELETED_BY_SNAPSHOT, evidence: 'snapshot' },
    ],
    [
      'not registered after a lost answer, absent from a complete snapshot before the first call: not_found (evidence snapshot)',
      failed(verdict('not_found'), 'FindDeviceBySnError', { lostBefore: true, snapshot: 'absent' }),
      { kind: 'record', outcome: 'not_found', message: NOT_FOUND_BY_SNAPSHOT, evidence: 'snapshot' },
    ],
    [
      'an inactivate: a snapshot that saw it is no proof that revoker removed it: gone',
      failed(verdict('not_found'), 'FindDeviceBySnError', { action: 'inactivate', lostBefore: true, snapshot: 'present' }),
      { kind: 'record', outcome: 'gone', message: GONE_AFTER_LOST_ANSWER },
    ],
    ['no lost answer: the snapshot is not asked', failed(verdict('not_found'), 'FindDeviceBySnError', { snapshot: 'present' }), { kind: 'record', outcome: 'not_found', message: null }],
    ['a transient failure: retry as attempt 1', failed(verdict('retry', true, true), 'ServiceUnavailable'), { kind: 'retry', retry: 1, end: 'retry' }],
    [
      'a second failure after a throttle: attempt 2 (throttles cost none)',
      failed(verdict('retry'), 'InternalError', { history: [attempt('InternalError'), attempt('Throttling.User', false)] }),
      { kind: 'retry', retry: 2, end: 'retry' },
    ],
    ['attempts used up: dead letter', failed(verdict('retry'), 'InternalError', { history: [attempt('InternalError'), attempt('InternalError')] }), { kind: 'dead_letter', reason: 'gave up after 3 attempts; last: InternalError m' }],
    ['throttled twice in a row before: the third throttle backoff, no attempt', failed(verdict('throttle'), 'Throttling.User', { history: [attempt('InternalError'), attempt('Throttling.User', false), attempt('Throttling.User', false)] }), { kind: 'retry', retry: 3, end: 'throttled' }],
    ['a documented permanent refusal: dead letter', failed(verdict('permanent'), 'ParameterFieldCheckFailed'), { kind: 'dead_letter', reason: 'ParameterFieldCheckFailed: m' }],
    ['an undocumented refusal: dead letter', failed(verdict('permanent', false), 'New.Code'), { kind: 'dead_letter', reason: 'New.Code: m' }],
    ['the same undocumented refusal on several devices in a row: pause the account', failed(verdict('permanent', false), 'New.Code', { refusedInARow: true }), { kind: 'pause_account', why: 'refusals' }],
    ['an undocumented refusal in flight when the account paused: park', failed(verdict('permanent', false), 'New.Code', { accountPaused: true }), { kind: 'park' }],
    ['an instance error: pause (instance rule)', failed(verdict('fatal_for_batch'), 'MqttInstanceNotFound'), { kind: 'pause_instance' }],
    ['refused credentials: pause the account', failed(verdict('fatal_for_account'), 'InvalidAccessKeyId.Inactive'), { kind: 'pause_account', why: 'account' }],
    ['a blocked IP: pause the account', failed(verdict('ip_blocked'), 'Forbidden.IpBlocked'), { kind: 'pause_account', why: 'ip_blocked' }],
  ];
  it.each(cases)('%s', (_name, input, step) => {
    expect(stepAfterAnswer(input)).toEqual(step);
  });
});
