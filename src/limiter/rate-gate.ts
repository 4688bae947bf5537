/**
 * The rate budgets every API call passes, behind an interface of our own so the implementation
 * (`BudgetGate` today) can be replaced without touching the callers.
 */
import type { ApiAction } from './api-action.js';

/** A slot granted for one call. */
export interface Permit {
  /**
   * Resolves when the call may be sent now: at once when the slot is still close enough, else
   * after the slot has been moved to now or a new one taken. A caller that does work between
   * `acquire` and the call (the worker writes its call intent there) calls this last, right
   * before sending, so that whatever that work cost, the call still leaves within the tolerance
   * of its slot.
   */
  confirm(): Promise<void>;
}

/** What a gate did since it was last asked (see `RateGate.takeStats`). */
export interface GateStats {
  /** Permits granted. */
  permits: number;
  /** Slots whose caller came too late and that were moved to now. */
  lateMoved: number;
  /** Slots whose caller came too late and that were given up (a new one was taken). */
  lateGivenUp: number;
  /** The jitter allowance in force now, ms. */
  allowanceMs: number;
  /** The worst delay from a slot to its request on the wire, of the last seconds, ms. */
  sendDelayMs: number;
  /** The worst event-loop lag of the last seconds, ms. */
  lagMs: number;
}

/** Grants permission to make one API call within the shared budgets. */
export interface RateGate {
  /**
   * Resolves when this process may make one call of `action`. The permit is taken before the
   * call, not around it: a limiter error can then never make a call run twice. A limiter error
   * never rejects: the caller waits until the budgets answer again. Rejects only once closed.
   * @param priority 0 (first) … 9 (last), among the calls waiting in this process.
   * @param whileWaiting work the caller must do before its call (the worker's write-ahead call
   *   intent), run shortly before the slot is due, so that its Redis round trips do not make the
   *   call leave late. The permit resolves when both are done; if this rejects, `acquire`
   *   rejects with its error and the slot goes unused (never reused).
   */
  acquire(action: ApiAction, priority?: number, whileWaiting?: () => Promise<void>): Promise<Permit>;
  /** Tells the gate the account's adaptive rate now in force (the shared key is what binds). */
  setRatePerSecond(ratePerSecond: number): Promise<void>;
  /** The highest rate this process's calls can currently get (adaptive account rate, egress budget). */
  ratePerSecond(): number;
  /**
   * Counters since the last call (then reset), for the worker's progress line: permits granted,
   * slots woken up for too late (moved to now, or given up and taken again), and the jitter
   * allowance in force. Optional: a gate without shared budgets has nothing to say.
   */
  takeStats?(): GateStats;
  /** Stops granting permits. */
  close(): Promise<void>;
}
