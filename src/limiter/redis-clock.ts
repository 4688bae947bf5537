/**
 * Redis' clock on this process's clock (docs/DESIGN.md, "Slots on Redis' clock").
 *
 * The slot scripts answer with Redis' time when they ran. The request left at `askedAt` and its
 * answer was read at `answeredAt` (performance.now()), so that moment lies between the two: the
 * narrowest such interval seen lately pins the offset between the clocks, as NTP does with its
 * best round trip. A slot then has a time on this process's clock however late its own answer was
 * read: a caller whose event loop read the answer late wakes at its slot rather than that much
 * after it, and its send delay counts from the slot (counting from the answer missed that delay).
 */

/** How fast the two clocks may drift apart: 500 ppm, the most NTP slews a clock. */
const DRIFT_PER_MS = 5e-4;

/** A moment on this process's clock and how far off it may be, ms. */
export interface LocalTime {
  atMs: number;
  errorMs: number;
}

/** The offset between Redis' clock and performance.now(), from the scripts' answers. */
export class RedisClock {
  private best: { offsetMs: number; errorMs: number; atMs: number } | null = null;

  /** Redis' time `redisNowMs` was read by a request sent at `askedAtMs` and answered at `answeredAtMs`. */
  sample(redisNowMs: number, askedAtMs: number, answeredAtMs: number): void {
    const errorMs = Math.max(0, answeredAtMs - askedAtMs) / 2;
    const offsetMs = redisNowMs - (askedAtMs + errorMs);
    const best = this.best;
    if (best !== null) {
      const agedErrorMs = best.errorMs + (answeredAtMs - best.atMs) * DRIFT_PER_MS;
      // The best so far stays while it is sharper and agrees with this one. Disagreeing means a
      // clock was stepped (NTP, a Redis failover to another host): the new sample wins.
      const agrees = Math.abs(offsetMs - best.offsetMs) <= agedErrorMs + errorMs;
      if (agrees && agedErrorMs <= errorMs) return;
    }
    this.best = { offsetMs, errorMs, atMs: answeredAtMs };
  }

  /** Redis' time `redisMs` on this process's clock (sample an answer first). */
  local(redisMs: number, nowMs = performance.now()): LocalTime {
    const best = this.best;
    if (best === null) throw new Error('RedisClock: no answer sampled yet');
    return { atMs: redisMs - best.offsetMs, errorMs: best.errorMs + Math.max(0, nowMs - best.atMs) * DRIFT_PER_MS };
  }
}
