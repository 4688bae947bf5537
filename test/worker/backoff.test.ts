/** `backoffMs`: exponential ceiling with full jitter, capped, never overflowing. */
import { describe, it, expect } from 'vitest';
import { backoffMs } from '../../src/worker/backoff.js';

const OPTIONS = { baseMs: 1_000, maxMs: 60_000 };
const ALMOST_ONE = (): number => 0.999999;
const ZERO = (): number => 0;

/** A deterministic pseudo-random source (mulberry32), so failures reproduce. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

describe('backoffMs', () => {
  it.each([
    [1, 1_000],
    [2, 2_000],
    [3, 4_000],
    [4, 8_000],
    [5, 16_000],
    [6, 32_000],
    [7, 60_000],
    [8, 60_000],
    [20, 60_000],
  ])('retry %i: the top of the range is just under %i ms', (retry, ceiling) => {
    const wait = backoffMs(retry, OPTIONS, ALMOST_ONE);
    expect(wait).toBeLessThanOrEqual(ceiling);
    // 0.999999 of the ceiling, rounded down: within 1 ms (plus the 1e-6 share) of it.
    expect(wait).toBeGreaterThanOrEqual(ceiling - 1 - ceiling * 1e-6);
  });

  it('doubles the ceiling per retry until the cap', () => {
    const options = { baseMs: 100, maxMs: 1_000_000 };
    const ceilings = [1, 2, 3, 4, 5].map((retry) => backoffMs(retry, options, () => 0.5));
    expect(ceilings).toEqual([50, 100, 200, 400, 800]);
  });

  it.each([1, 2, 5, 30, 1_000])('retry %i with random 0 waits 0', (retry) => {
    expect(backoffMs(retry, OPTIONS, ZERO)).toBe(0);
  });

  it('is always an integer within [0, min(maxMs, baseMs·2^(retry−1))]', () => {
    const random = seeded(42);
    for (let retry = 1; retry <= 40; retry += 1) {
      const ceiling = Math.min(OPTIONS.maxMs, OPTIONS.baseMs * 2 ** Math.min(retry - 1, 1000));
      for (let sample = 0; sample < 200; sample += 1) {
        const wait = backoffMs(retry, OPTIONS, random);
        expect(Number.isInteger(wait)).toBe(true);
        expect(wait).toBeGreaterThanOrEqual(0);
        expect(wait).toBeLessThanOrEqual(ceiling);
      }
    }
  });

  it('spreads retries (jitter) rather than synchronising them', () => {
    const random = seeded(7);
    const waits = new Set(Array.from({ length: 100 }, () => backoffMs(6, OPTIONS, random)));
    expect(waits.size).toBeGreaterThan(90);
  });

  it.each([1_024, 10_000, 1e9, Number.MAX_SAFE_INTEGER])('retry %d neither overflows nor exceeds the cap', (retry) => {
    const wait = backoffMs(retry, OPTIONS, ALMOST_ONE);
    expect(Number.isFinite(wait)).toBe(true);
    expect(wait).toBeLessThanOrEqual(OPTIONS.maxMs);
    expect(wait).toBeGreaterThan(OPTIONS.maxMs * 0.99);
  });

  it('a huge maxMs still caps at the exponential ceiling, finite', () => {
    const wait = backoffMs(10_000, { baseMs: 1_000, maxMs: Number.MAX_SAFE_INTEGER }, ALMOST_ONE);
    expect(Number.isFinite(wait)).toBe(true);
    expect(wait).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
  });

  it('retry 0 (or below) is treated like the first retry', () => {
    expect(backoffMs(0, OPTIONS, ALMOST_ONE)).toBe(backoffMs(1, OPTIONS, ALMOST_ONE));
    expect(backoffMs(-5, OPTIONS, ALMOST_ONE)).toBe(backoffMs(1, OPTIONS, ALMOST_ONE));
  });
});
