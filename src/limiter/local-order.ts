/**
 * The order of the callers waiting in one process (docs/DESIGN.md §2, "In a process: order, not
 * rate"): callers run their step in priority order (0 first … 9 last, first come first served
 * within a priority), at most `maxConcurrent` at once. The rate itself is the shared budgets'.
 *
 * It replaced a local Bottleneck, which did the same with events, locks and a generator per
 * step: measured on a worker at 270 calls/s, a third of everything the process allocated, and
 * the garbage collections that made its calls leave late (the numbers are in DESIGN).
 */

/** Thrown to callers still waiting when the order is stopped. */
export class LocalOrderStopped extends Error {
  constructor() {
    super('rate gate closed');
    this.name = 'LocalOrderStopped';
  }
}

type Waiter = { start: () => void; stop: (error: Error) => void };

/** A priority queue in front of at most `maxConcurrent` running steps. */
export class LocalOrder {
  private readonly waiting: Waiter[][];
  private running = 0;
  private stopped = false;

  constructor(
    private readonly maxConcurrent: number,
    priorities = 10,
  ) {
    this.waiting = Array.from({ length: priorities }, () => []);
  }

  /** Runs `step` once its turn comes; resolves or rejects as it does. */
  async schedule<T>(priority: number, step: () => Promise<T>): Promise<T> {
    if (this.stopped) throw new LocalOrderStopped();
    if (this.running < this.maxConcurrent && this.waitingCount() === 0) {
      this.running += 1;
    } else {
      // `next` counts the step as running when it hands the turn over (no one can slip in between).
      const level = Math.max(0, Math.min(this.waiting.length - 1, Math.trunc(priority)));
      await new Promise<void>((start, stop) => this.waiting[level]?.push({ start, stop }));
    }
    try {
      return await step();
    } finally {
      this.running -= 1;
      this.next();
    }
  }

  /** Callers waiting (not running), for tests and stats. */
  waitingCount(): number {
    return this.waiting.reduce((sum, queue) => sum + queue.length, 0);
  }

  /** Refuses new steps and rejects every waiting one; running steps finish. */
  stop(): void {
    this.stopped = true;
    for (const queue of this.waiting) for (const waiter of queue.splice(0)) waiter.stop(new LocalOrderStopped());
  }

  private next(): void {
    for (const queue of this.waiting) {
      while (this.running < this.maxConcurrent) {
        const waiter = queue.shift();
        if (waiter === undefined) break;
        this.running += 1;
        waiter.start();
      }
    }
  }
}
