/**
 * Redis' clock on a process's clock (src/limiter/redis-clock.ts): the sharpest answer pins the
 * offset, slower answers do not blur it, a stepped clock is followed, and the error bound holds
 * the truth.
 */
import { describe, expect, it } from 'vitest';
import { RedisClock } from '../../src/limiter/redis-clock.js';

/** Redis' clock runs this far ahead of performance.now() in these tests. */
const OFFSET_MS = 1_796_000_000_000.25;

/** An answer: the request took `outMs` to reach Redis and `backMs` to be read. */
function answer(clock: RedisClock, askedAtMs: number, outMs: number, backMs: number): void {
  clock.sample(askedAtMs + outMs + OFFSET_MS, askedAtMs, askedAtMs + outMs + backMs);
}

describe('RedisClock', () => {
  it('keeps the sharpest answer: a slot is placed within its error, whatever later answers took', () => {
    const clock = new RedisClock();
    answer(clock, 1_000, 0.1, 0.1);
    // Slower, lopsided answers (an answer read 40 ms late) must not move the estimate.
    answer(clock, 1_010, 0.2, 40);
    answer(clock, 1_060, 15, 0.3);
    const slot = clock.local(2_000 + OFFSET_MS, 1_100);
    expect(Math.abs(slot.atMs - 2_000)).toBeLessThanOrEqual(slot.errorMs);
    expect(slot.errorMs).toBeLessThan(0.2);
  });

  it('takes a sharper answer, and counts drift: an old answer blurs until a newer one is sharper', () => {
    const clock = new RedisClock();
    answer(clock, 0, 2, 2);
    expect(clock.local(OFFSET_MS + 10, 4).errorMs).toBeCloseTo(2, 1);
    answer(clock, 100, 0.5, 0.5);
    expect(clock.local(OFFSET_MS + 200, 101).errorMs).toBeCloseTo(0.5, 1);
    // Ten seconds on, the clocks may have drifted 5 ms apart (500 ppm): the error says so.
    expect(clock.local(OFFSET_MS + 10_200, 10_101).errorMs).toBeGreaterThan(5);
    // A 1 ms answer now is sharper than the aged one.
    answer(clock, 10_200, 1, 1);
    const slot = clock.local(OFFSET_MS + 10_300, 10_202);
    expect(slot.errorMs).toBeGreaterThan(0.99);
    expect(slot.errorMs).toBeLessThan(1.2);
    expect(Math.abs(slot.atMs - 10_300)).toBeLessThanOrEqual(slot.errorMs);
  });

  it('follows a stepped clock at once, even from a slower answer', () => {
    const clock = new RedisClock();
    answer(clock, 0, 0.1, 0.1);
    // Redis' clock steps 1 s ahead (NTP, a failover to another host).
    clock.sample(50 + 5 + OFFSET_MS + 1_000, 50, 60);
    const slot = clock.local(OFFSET_MS + 1_000 + 100, 60);
    expect(Math.abs(slot.atMs - 100)).toBeLessThanOrEqual(slot.errorMs);
  });

  it('refuses to place a slot before it has seen an answer', () => {
    expect(() => new RedisClock().local(OFFSET_MS)).toThrow(/no answer/);
  });
});
