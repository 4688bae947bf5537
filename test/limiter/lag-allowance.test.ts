/**
 * The jitter allowance grows with the event loop's lag: a process starved of CPU sends some calls
 * long after their slots, and only a wider spacing keeps them from bunching at the API (4 workers
 * on 2 cores put 304 calls into one second at a 280/s egress with a fixed allowance).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { LagAllowance } from '../../src/limiter/lag-allowance.js';

/** Blocks the event loop for `ms` from inside a timer, then lets the lag monitor see it. */
async function blockFor(ms: number): Promise<void> {
  await new Promise<void>((resolve) =>
    setTimeout(() => {
      const until = performance.now() + ms;
      while (performance.now() < until) {
        // busy: the event loop cannot run
      }
      setTimeout(resolve, 40);
    }, 20),
  );
}

describe('LagAllowance', () => {
  let allowance: LagAllowance | null = null;
  afterEach(() => allowance?.stop());

  it('stays at the base without lag, grows by the lag beyond what the base covers, is capped, and comes back', async () => {
    allowance = new LagAllowance({ baseMs: 30, coveredLagMs: 10, maxMs: 250, memorySeconds: 2 });
    allowance.start();
    await new Promise((resolve) => setTimeout(resolve, 200));
    allowance.sample();
    // The base, or a little more when the machine is busy (the test files run in parallel): far
    // below what a 150 ms block gives.
    const idle = allowance.current();
    expect(idle).toBeGreaterThanOrEqual(30);
    expect(idle).toBeLessThan(100);

    await blockFor(150);
    allowance.sample();
    // 150 ms of lag: 30 + 150 - 10, less up to one sampling period of the monitor's timer.
    expect(allowance.current()).toBeGreaterThanOrEqual(150);
    expect(allowance.current()).toBeLessThan(250);

    await blockFor(600);
    allowance.sample();
    expect(allowance.current()).toBe(250);

    // Remembered for `memorySeconds` samples, then gone.
    for (let i = 0; i < 3; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      allowance.sample();
    }
    expect(allowance.current()).toBeLessThan(100);
  });
});
