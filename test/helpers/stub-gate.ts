/**
 * A rate gate for tests that decide themselves when a permit is granted (`acquire`): the rest of
 * `RateGate` does nothing.
 */
import type { ApiAction } from '../../src/limiter/api-action.js';
import type { Permit, RateGate } from '../../src/limiter/rate-gate.js';

/** Base of a test's own gate: only `acquire` is the test's. */
export abstract class StubGate implements RateGate {
  abstract acquire(action: ApiAction, priority?: number, whileWaiting?: () => Promise<void>): Promise<Permit>;

  setRatePerSecond(): Promise<void> {
    return Promise.resolve();
  }

  ratePerSecond(): number {
    return 100;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
