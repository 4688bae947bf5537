/** The pure parts of the Bottleneck gate: rate → minTime, and which limiter errors it survives. */
import { describe, it, expect } from 'vitest';
import { isRecoverableLimiterError, minTimeFor } from '../../src/limiter/bottleneck-rate-gate.js';

describe('minTimeFor', () => {
  it('never spaces calls closer than the asked rate allows, for every rate 1..500', () => {
    for (let rate = 1; rate <= 500; rate += 1) {
      const minTime = minTimeFor(rate);
      expect(minTime).toBeGreaterThan(0);
      // Calls per second that spacing allows: never above the asked rate.
      expect(1000 / minTime, `rate ${rate}`).toBeLessThanOrEqual(rate);
      // And not needlessly slow: within 1 µs of the exact spacing.
      expect(minTime - 1000 / rate, `rate ${rate}`).toBeLessThanOrEqual(0.001 + 1e-9);
    }
  });

  it.each([
    [1, 1000],
    [500, 2],
    [480, 2.084],
    [3, 333.334],
  ])('rate %d → %d ms', (rate, expected) => {
    expect(minTimeFor(rate)).toBeCloseTo(expected, 9);
  });

  it('holds for fractional rates the adaptive controller produces', () => {
    for (const rate of [0.5, 24.7, 241.152, 307.2, 479.999]) {
      expect(1000 / minTimeFor(rate)).toBeLessThanOrEqual(rate);
    }
  });
});

describe('isRecoverableLimiterError', () => {
  it.each([
    ['ERR SETTINGS_KEY_NOT_FOUND'],
    ['NOSCRIPT No matching script. Please use EVAL.'],
    ['ERR UNKNOWN_CLIENT'],
  ])('%s → recoverable', (message) => {
    expect(isRecoverableLimiterError(new Error(message))).toBe(true);
    // Bottleneck sometimes rejects with a plain string.
    expect(isRecoverableLimiterError(message)).toBe(true);
  });

  it.each([['ERR wrong number of arguments for \'evalsha\' command'], ['WRONGTYPE Operation against a key holding the wrong kind of value'], ['']])(
    '%j → not recoverable',
    (message) => {
      expect(isRecoverableLimiterError(new Error(message))).toBe(false);
    },
  );
});
