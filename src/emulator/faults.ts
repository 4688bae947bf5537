/**
 * What can go wrong with one call, and the pure decision of what does, given the configured
 * rates or a per-device script and a random source.
 */
import type { FaultOptions } from './emulator-options.js';

/**
 * How one admitted call is handled:
 * - `none`: normally.
 * - `service_unavailable`: HTTP 503 `ServiceUnavailable`, nothing applied.
 * - `internal_error`: HTTP 500 `InternalError`, nothing applied.
 * - `drop`: the socket is destroyed before anything is applied.
 * - `drop_after_apply`: applied, then the socket is destroyed (scripts only).
 * - `timeout`: applied, then the answer is held for `timeoutDelayMs` ("result unknown").
 * - `timeout_before_apply`: held for `timeoutDelayMs` and never applied; then the socket is
 *   closed with no answer (scripts only).
 * - `nonjson`: HTTP 502 with an HTML body, nothing applied.
 * - `scripted_error`: a scripted `{code, httpStatus}` error answer, nothing applied.
 */
export type FaultKind =
  | 'none'
  | 'service_unavailable'
  | 'internal_error'
  | 'drop'
  | 'drop_after_apply'
  | 'timeout'
  | 'timeout_before_apply'
  | 'nonjson'
  | 'scripted_error';

/** A scripted error answer: `code` in the JSON body, with that HTTP status. */
export interface ScriptedError {
  code: string;
  httpStatus: number;
  /** Message in the body; a generic one when omitted. */
  message?: string;
}

/** One step of a per-device script (see `EmulatorHandle.script`). */
export type ScriptStep = 'ok' | 'timeout' | 'timeout_before_apply' | 'drop' | 'drop_after_apply' | 'nonjson' | ScriptedError;

/** The decision for one call. */
export interface FaultDecision {
  kind: FaultKind;
  /** Set when kind is `scripted_error`. */
  error?: ScriptedError;
}

const NONE: FaultDecision = Object.freeze({ kind: 'none' });

/**
 * Picks a fault from the configured rates with ONE uniform draw: the rates are laid end to
 * end on [0, 1) and the draw lands in one of them or past them all (no fault). Skips the draw
 * entirely when every rate is 0, so a seeded random source is not consumed needlessly.
 */
export function decideFault(faults: FaultOptions, random: () => number): FaultDecision {
  const total = faults.serviceUnavailableRate + faults.internalErrorRate + faults.dropConnectionRate + faults.timeoutRate + faults.nonJsonRate;
  if (total <= 0) return NONE;
  let draw = random();
  const table: Array<[number, FaultKind]> = [
    [faults.serviceUnavailableRate, 'service_unavailable'],
    [faults.internalErrorRate, 'internal_error'],
    [faults.dropConnectionRate, 'drop'],
    [faults.timeoutRate, 'timeout'],
    [faults.nonJsonRate, 'nonjson'],
  ];
  for (const [rate, kind] of table) {
    if (draw < rate) return { kind };
    draw -= rate;
  }
  return NONE;
}

/** Turns a script step into a decision. */
export function decisionForStep(step: ScriptStep): FaultDecision {
  if (typeof step === 'object') return { kind: 'scripted_error', error: step };
  switch (step) {
    case 'ok':
      return NONE;
    case 'timeout':
      return { kind: 'timeout' };
    case 'timeout_before_apply':
      return { kind: 'timeout_before_apply' };
    case 'drop':
      return { kind: 'drop' };
    case 'drop_after_apply':
      return { kind: 'drop_after_apply' };
    case 'nonjson':
      return { kind: 'nonjson' };
  }
}

/** Checks a script step given from outside (the control API); returns an error message or undefined. */
export function invalidScriptStep(step: unknown): string | undefined {
  if (typeof step === 'string') {
    return ['ok', 'timeout', 'timeout_before_apply', 'drop', 'drop_after_apply', 'nonjson'].includes(step) ? undefined : `unknown script step "${step}"`;
  }
  if (step !== null && typeof step === 'object') {
    const { code, httpStatus } = step as { code?: unknown; httpStatus?: unknown };
    if (typeof code !== 'string' || code === '') return 'a scripted error needs a non-empty string code';
    if (typeof httpStatus !== 'number' || !Number.isInteger(httpStatus) || httpStatus < 400 || httpStatus > 599) {
      return 'a scripted error needs an integer httpStatus from 400 to 599';
    }
    return undefined;
  }
  return 'a script step is a string or {code, httpStatus}';
}
