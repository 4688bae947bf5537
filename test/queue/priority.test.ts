import { describe, expect, it } from 'vitest';
import { CLASS_BASE, CLASS_SPAN, classOf, jobPriority, limiterPriority, parsePriority, positionOf } from '../../src/queue/priority.js';

describe('priority encoding', () => {
  it('orders every urgent job before every normal before every bulk', () => {
    expect(jobPriority('urgent', CLASS_SPAN * 10)).toBeLessThan(jobPriority('normal', 0));
    expect(jobPriority('normal', CLASS_SPAN * 10)).toBeLessThan(jobPriority('bulk', 0));
    expect(jobPriority('urgent', 0)).toBeGreaterThanOrEqual(1);
    // BullMQ's largest priority.
    expect(jobPriority('bulk', Number.MAX_SAFE_INTEGER)).toBeLessThanOrEqual(2 ** 21);
  });

  it('interleaves batches of one class by position', () => {
    const a = [0, 1, 2].map((index) => ({ batch: 'A', priority: jobPriority('normal', index) }));
    const b = [0, 1, 2].map((index) => ({ batch: 'B', priority: jobPriority('normal', index) }));
    const order = [...a, ...b].sort((x, y) => x.priority - y.priority).map((job) => job.batch);
    expect(order).toEqual(['A', 'B', 'A', 'B', 'A', 'B']);
  });

  it('decodes class and position back', () => {
    for (const priority of ['urgent', 'normal', 'bulk'] as const) {
      for (const index of [0, 7, CLASS_SPAN - 1]) {
        const encoded = jobPriority(priority, index);
        expect(classOf(encoded)).toBe(priority);
        expect(positionOf(encoded)).toBe(index);
      }
    }
    expect(classOf(undefined)).toBe('normal');
    expect(classOf(0)).toBe('normal');
    expect(CLASS_BASE.bulk - CLASS_BASE.normal).toBe(CLASS_SPAN);
  });

  it('maps classes to priorities in the local order and parses user input', () => {
    expect([limiterPriority('urgent'), limiterPriority('normal'), limiterPriority('bulk')]).toEqual([0, 5, 9]);
    expect(parsePriority('urgent')).toBe('urgent');
    expect(parsePriority('URGENT')).toBeNull();
    expect(parsePriority(3)).toBeNull();
  });
});
