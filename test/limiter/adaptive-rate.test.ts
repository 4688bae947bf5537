/** `nextRate`: multiplicative decrease, additive climb, slow probing near the remembered ceiling. */
import { describe, it, expect } from 'vitest';
import { ADAPTIVE_RATE_DEFAULTS, nextRate, type AdaptiveRateOptions, type RateState } from '../../src/limiter/adaptive-rate.js';

const CAP = 480;
const OPTIONS: AdaptiveRateOptions = { ...ADAPTIVE_RATE_DEFAULTS, capPerSecond: CAP };
const NOW = 1_700_000_000_000;
const FLOOR = CAP * OPTIONS.floorFraction;
const FAST_STEP = CAP * OPTIONS.fastStepFraction;
const SLOW_STEP = CAP * OPTIONS.slowStepFraction;

const state = (rate: number, ceiling: number | null = null, lastThrottleAtMs = 0): RateState => ({ rate, ceiling, lastThrottleAtMs });

describe('on throttling', () => {
  it('drops the rate by decreaseFactor and remembers where throttling began', () => {
    const next = nextRate(state(400), 5, NOW, OPTIONS);
    expect(next.rate).toBeCloseTo(400 * OPTIONS.decreaseFactor, 9);
    expect(next.ceiling).toBe(400);
    expect(next.lastThrottleAtMs).toBe(NOW);
  });

  it('with the call count, drops straight under what the API admitted', () => {
    // 100 of 400 calls throttled: the API admitted 300/s.
    const next = nextRate(state(400), 100, NOW, OPTIONS, 400);
    expect(next.rate).toBeLessThan(300);
    expect(next.rate).toBeCloseTo(400 * 0.75 * 0.97, 9);
    // The ceiling remembers where throttling began, to climb back slowly near it.
    expect(next.ceiling).toBe(400);
  });

  it('with a small throttled share still drops by at least 5%', () => {
    const next = nextRate(state(400), 1, NOW, OPTIONS, 1000);
    expect(next.rate).toBeCloseTo(380, 9);
  });

  it('moves the ceiling to the rate of each new throttling, up or down (no ratchet)', () => {
    expect(nextRate(state(350, 320, NOW - 1000), 3, NOW, OPTIONS).ceiling).toBe(350);
    expect(nextRate(state(310, 320, NOW - 1000), 3, NOW, OPTIONS).ceiling).toBe(310);
  });

  it('never goes below the floor, however long the storm', () => {
    let current = state(CAP);
    const seen: number[] = [];
    for (let tick = 0; tick < 100; tick += 1) {
      current = nextRate(current, 1_000, NOW + tick * 1000, OPTIONS, tick % 2 === 0 ? 1_000 : 0);
      seen.push(current.rate);
    }
    expect(Math.min(...seen)).toBeGreaterThanOrEqual(FLOOR);
    expect(current.rate).toBeCloseTo(FLOOR, 9);
  });

  it('the floor is at least 1 call/s for a tiny cap', () => {
    const tiny = { ...OPTIONS, capPerSecond: 4 };
    let current = state(4);
    for (let tick = 0; tick < 50; tick += 1) current = nextRate(current, 10, NOW + tick * 1000, tiny);
    expect(current.rate).toBe(1);
  });
});

describe('without throttling', () => {
  it('climbs additively by the fast step when nothing is remembered', () => {
    expect(nextRate(state(100), 0, NOW, OPTIONS)).toEqual({ rate: 100 + FAST_STEP, ceiling: null, lastThrottleAtMs: 0 });
  });

  it('climbs back to the cap and never above it', () => {
    let current = state(FLOOR);
    const seen: number[] = [];
    for (let tick = 0; tick < 100; tick += 1) {
      current = nextRate(current, 0, NOW + tick * 1000, OPTIONS);
      seen.push(current.rate);
    }
    expect(Math.max(...seen)).toBeLessThanOrEqual(CAP);
    expect(current.rate).toBe(CAP);
    // Additive: from the floor to the cap takes (cap − floor) / fastStep ticks, not one.
    const ticksToCap = seen.findIndex((rate) => rate === CAP) + 1;
    expect(ticksToCap).toBe(Math.ceil((CAP - FLOOR) / FAST_STEP));
  });

  it('at the cap stays at the cap', () => {
    expect(nextRate(state(CAP), 0, NOW, OPTIONS).rate).toBe(CAP);
  });

  it('climbs fast up to 95% of a remembered ceiling, not past it', () => {
    const lastThrottle = NOW - 2_000;
    expect(nextRate(state(200, 300, lastThrottle), 0, NOW, OPTIONS).rate).toBeCloseTo(200 + FAST_STEP, 9);
    expect(nextRate(state(270, 300, lastThrottle), 0, NOW, OPTIONS).rate).toBeCloseTo(285, 9);
  });

  it('climbs slowly near the remembered ceiling, and past it', () => {
    const lastThrottle = NOW - 2_000;
    expect(nextRate(state(285, 300, lastThrottle), 0, NOW, OPTIONS).rate).toBeCloseTo(285 + SLOW_STEP, 9);
    expect(nextRate(state(310, 300, lastThrottle), 0, NOW, OPTIONS).rate).toBeCloseTo(310 + SLOW_STEP, 9);
    expect(nextRate(state(310, 300, lastThrottle), 0, NOW, OPTIONS).ceiling).toBe(300);
  });

  it('forgets the ceiling after ceilingMemoryMs and climbs fast again', () => {
    const justBefore = nextRate(state(290, 300, NOW - OPTIONS.ceilingMemoryMs + 1), 0, NOW, OPTIONS);
    expect(justBefore.rate).toBeCloseTo(290 + SLOW_STEP, 9);
    expect(justBefore.ceiling).toBe(300);
    const after = nextRate(state(290, 300, NOW - OPTIONS.ceilingMemoryMs), 0, NOW, OPTIONS);
    expect(after.rate).toBeCloseTo(290 + FAST_STEP, 9);
    expect(after.ceiling).toBeNull();
  });
});

/** Result of running the controller against a fixed quota. */
interface Simulation {
  rates: number[];
  throttled: boolean[];
  averageLast60: number;
  throttledShareLast60: number;
  throttledShareAll: number;
}

/**
 * 120 one-second ticks against an account whose real quota is `quota` (someone else uses the
 * rest): a tick whose rate is above the quota is throttled; the excess calls are the throttled
 * ones. `withCallCount` feeds the tick's call count as `AdaptiveRate.tick` does.
 */
function simulate(quota: number, withCallCount: boolean): Simulation {
  let current = state(CAP);
  const rates: number[] = [];
  const throttled: boolean[] = [];
  for (let tick = 0; tick < 120; tick += 1) {
    const rate = current.rate;
    const excess = Math.max(0, Math.ceil(rate - quota));
    rates.push(rate);
    throttled.push(excess > 0);
    current = nextRate(current, excess, NOW + tick * 1000, OPTIONS, withCallCount ? Math.ceil(rate) : 0);
  }
  const last = rates.slice(60);
  const lastThrottled = throttled.slice(60);
  return {
    rates,
    throttled,
    averageLast60: last.reduce((sum, rate) => sum + rate, 0) / last.length,
    throttledShareLast60: lastThrottled.filter(Boolean).length / lastThrottled.length,
    throttledShareAll: throttled.filter(Boolean).length / throttled.length,
  };
}

describe('a quota of 300/s under a cap of 480/s, over 120 ticks', () => {
  it.each([
    ['decreaseFactor only', false],
    ['with the call count', true],
  ])('%s: settles near the quota with few throttled ticks', (_name, withCallCount) => {
    const run = simulate(300, withCallCount);
    // Reported in the suite's output so a tuning change shows its effect.
    console.info(
      `adaptive-rate simulation (${_name}): avg last 60 = ${run.averageLast60.toFixed(1)}/s, ` +
        `throttled ticks last 60 = ${(run.throttledShareLast60 * 100).toFixed(1)}%, all 120 = ${(run.throttledShareAll * 100).toFixed(1)}%, ` +
        `min = ${Math.min(...run.rates.slice(60)).toFixed(1)}, max = ${Math.max(...run.rates.slice(60)).toFixed(1)}`,
    );
    expect(run.averageLast60).toBeGreaterThanOrEqual(0.85 * 300);
    expect(run.throttledShareLast60).toBeLessThanOrEqual(0.2);
    expect(run.throttledShareAll).toBeLessThanOrEqual(0.2);
    expect(Math.max(...run.rates)).toBeLessThanOrEqual(CAP);
    expect(Math.min(...run.rates)).toBeGreaterThanOrEqual(FLOOR);
  });

  it('climbs back to the cap within ~20 ticks once the other client goes away', () => {
    const afterStorm = simulate(300, true);
    let current: RateState = { rate: afterStorm.rates.at(-1)!, ceiling: 300, lastThrottleAtMs: NOW + 119_000 };
    let ticks = 0;
    // The quota is back to the full 500/s: nothing is throttled at or under the cap.
    while (current.rate < CAP && ticks < 200) {
      ticks += 1;
      current = nextRate(current, 0, NOW + (120 + ticks) * 1000, OPTIONS);
    }
    expect(current.rate).toBe(CAP);
    // Slow probing while the ceiling is remembered (30 s), then fast: well under a minute.
    expect(ticks).toBeLessThanOrEqual(50);
  });
});
