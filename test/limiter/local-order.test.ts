import { describe, expect, it } from 'vitest';
import { LocalOrder, LocalOrderStopped } from '../../src/limiter/local-order.js';

/** A step that runs until `finish()` is called, noting when it started. */
function heldStep(log: string[], name: string) {
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return {
    run: async () => {
      log.push(name);
      await done;
      return name;
    },
    finish: () => finish(),
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('LocalOrder: the order of callers waiting in one process', () => {
  it('runs at most maxConcurrent steps at once, then the waiting ones by priority, first come first served within one', async () => {
    const order = new LocalOrder(2);
    const started: string[] = [];
    const running = [heldStep(started, 'a'), heldStep(started, 'b')];
    const results = running.map((step) => order.schedule(5, step.run));
    const bulk1 = heldStep(started, 'bulk1');
    const bulk2 = heldStep(started, 'bulk2');
    const urgent = heldStep(started, 'urgent');
    const read = heldStep(started, 'read');
    const waiting = [order.schedule(7, bulk1.run), order.schedule(9, read.run), order.schedule(7, bulk2.run), order.schedule(0, urgent.run)];
    await tick();
    expect(started).toEqual(['a', 'b']);
    expect(order.waitingCount()).toBe(4);
    running[0]?.finish();
    await tick();
    expect(started).toEqual(['a', 'b', 'urgent']);
    running[1]?.finish();
    urgent.finish();
    await tick();
    expect(started).toEqual(['a', 'b', 'urgent', 'bulk1', 'bulk2']);
    bulk1.finish();
    bulk2.finish();
    await tick();
    expect(started.at(-1)).toBe('read');
    read.finish();
    expect(await Promise.all([...results, ...waiting])).toEqual(['a', 'b', 'bulk1', 'read', 'bulk2', 'urgent']);
  });

  it('under load, never runs more than maxConcurrent at once, and keeps arrival order within each priority', async () => {
    const order = new LocalOrder(3);
    let inside = 0;
    let most = 0;
    const started: { priority: number; index: number }[] = [];
    const all: Promise<void>[] = [];
    for (let index = 0; index < 200; index += 1) {
      const priority = (index * 7) % 10;
      all.push(
        order.schedule(priority, async () => {
          inside += 1;
          most = Math.max(most, inside);
          started.push({ priority, index });
          // Steps of different lengths, so turns are handed over in many different orders.
          for (let turns = index % 4; turns >= 0; turns -= 1) await tick();
          inside -= 1;
        }),
      );
      // Newcomers keep arriving while turns are being handed over.
      if (index % 5 === 0) await tick();
    }
    await Promise.all(all);
    expect(most).toBe(3);
    expect(started).toHaveLength(200);
    for (let priority = 0; priority < 10; priority += 1) {
      const indexes = started.filter((entry) => entry.priority === priority).map((entry) => entry.index);
      expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
    }
  });

  it('a step that fails frees its turn and rejects only its own caller', async () => {
    const order = new LocalOrder(1);
    const failing = order.schedule(5, () => Promise.reject(new Error('lock lost')));
    const next = order.schedule(5, () => Promise.resolve('next'));
    await expect(failing).rejects.toThrow('lock lost');
    await expect(next).resolves.toBe('next');
  });

  it('stop rejects the waiting callers and refuses new ones; the running step finishes', async () => {
    const order = new LocalOrder(1);
    const started: string[] = [];
    const running = heldStep(started, 'running');
    const result = order.schedule(5, running.run);
    const waiting = order.schedule(5, () => Promise.resolve('never'));
    await tick();
    order.stop();
    await expect(waiting).rejects.toBeInstanceOf(LocalOrderStopped);
    await expect(order.schedule(0, () => Promise.resolve('late'))).rejects.toThrow('rate gate closed');
    running.finish();
    await expect(result).resolves.toBe('running');
  });
});
