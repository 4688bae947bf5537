/** Sampling of the emulator's added response time. */
import type { LatencyOptions } from './emulator-options.js';

// The standard normal quantile at 0.99: a log-normal's p99 is median * exp(sigma * Z99).
const Z_99 = 2.3263478740408408;

/**
 * Draws one delay in ms from a log-normal distribution with the given median and p99 (so there
 * is a realistic long tail), using `random` for the uniform draws (Box–Muller). Returns 0 when
 * the median is 0; a p99 equal to the median gives a constant delay.
 */
export function sampleLatencyMs(latency: LatencyOptions, random: () => number): number {
  if (latency.medianMs <= 0) return 0;
  if (latency.p99Ms <= latency.medianMs) return latency.medianMs;
  const sigma = Math.log(latency.p99Ms / latency.medianMs) / Z_99;
  // 1 - u keeps the argument of log in (0, 1] for a random source returning [0, 1).
  const u1 = 1 - random();
  const u2 = random();
  const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  return latency.medianMs * Math.exp(sigma * z);
}
