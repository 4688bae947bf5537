/**
 * The jitter allowance follows how late calls really leave (send delays), and the event loop's lag
 * only beyond what the egress margin absorbs: lag from garbage collection or long turns never
 * delays a send, and following it cost 3–6 % of the rate on 2 cores (docs/DESIGN.md).
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { JitterAllowance } from '../../src/limiter/jitter-allowance.js';
import { SendDelays } from '../../src/limiter/send-delays.js';
import { apiHostOf } from '../../src/runtime/open-budget-gate.js';

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

/** A send-delay source the test sets by hand. */
class FixedSends {
  next = 0;
  takeWorst(): number {
    const worst = this.next;
    this.next = 0;
    return worst;
  }
}

describe('JitterAllowance', () => {
  let allowance: JitterAllowance | null = null;
  afterEach(() => allowance?.stop());

  it('grows by the send delay beyond what the base covers, for as long as it remembers it, up to the cap', () => {
    const sends = new FixedSends();
    allowance = new JitterAllowance(sends, { baseMs: 20, coveredSendDelayMs: 10, lagMarginMs: 70, maxMs: 250, sendMemorySeconds: 3, lagMemorySeconds: 3, warmupSendDelayMs: 60 });
    // A new process starts wide (its first calls leave late) until its sends have been measured.
    expect(allowance.current()).toBe(70);
    expect(allowance.warmingUp()).toBe(true);
    allowance.sample();
    allowance.sample();
    expect(allowance.current()).toBe(70);
    allowance.sample();
    expect(allowance.current()).toBe(20);
    expect(allowance.warmingUp()).toBe(false);
    sends.next = 8;
    allowance.sample();
    expect(allowance.current()).toBe(20);
    sends.next = 45;
    allowance.sample();
    expect(allowance.current()).toBe(55);
    expect(allowance.recentSendDelayMs()).toBe(45);
    // Remembered for 3 samples (the one that saw it and two more), then gone.
    allowance.sample();
    allowance.sample();
    expect(allowance.current()).toBe(55);
    allowance.sample();
    expect(allowance.current()).toBe(20);
    sends.next = 900;
    allowance.sample();
    expect(allowance.current()).toBe(250);
  });

  it('lets lag grow it only beyond the margin the egress budget leaves', async () => {
    const sends = new FixedSends();
    allowance = new JitterAllowance(sends, { baseMs: 20, coveredSendDelayMs: 10, lagMarginMs: 70, maxMs: 250, sendMemorySeconds: 2, lagMemorySeconds: 2, warmupSendDelayMs: 0 });
    allowance.start();
    await new Promise((resolve) => setTimeout(resolve, 100));
    allowance.sample();
    await blockFor(60);
    allowance.sample();
    // 60 ms of lag is within the margin: the base, or a little more when the machine is busy (the
    // test files run in parallel), far below what the 300 ms block below gives.
    expect(allowance.current()).toBeLessThan(60);
    await blockFor(300);
    allowance.sample();
    // 300 ms of lag: 300 - 70, less up to one sampling period of the monitor's timer.
    expect(allowance.current()).toBeGreaterThanOrEqual(215);
    expect(allowance.current()).toBeLessThanOrEqual(250);
  });
});

describe('SendDelays', () => {
  let server: Server | null = null;
  let delays: SendDelays | null = null;
  afterEach(async () => {
    delays?.stop();
    await new Promise((resolve) => (server === null ? resolve(undefined) : server.close(resolve)));
    server = null;
  });

  async function listen(): Promise<number> {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('{}'));
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }

  function post(port: number, host = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = request({ host, port, method: 'POST', path: '/' }, (res) => {
        res.resume();
        res.on('end', () => resolve());
      });
      req.on('error', reject);
      req.end('x');
    });
  }

  it('measures from the slot to the request on the wire, first in first out, for the API host only', async () => {
    const port = await listen();
    delays = new SendDelays('127.0.0.1');
    delays.start();
    // A call that leaves 80 ms after its slot.
    delays.expect(performance.now() - 80);
    await post(port);
    const late = delays.takeWorst();
    expect(late).toBeGreaterThanOrEqual(80);
    expect(late).toBeLessThan(1_000);
    // One that leaves on time; the worst was reset by the last take.
    delays.expect(performance.now());
    await post(port);
    expect(delays.takeWorst()).toBeLessThan(80);
    // A request to another host (a credentials endpoint, say) is not an API call: it takes no expectation.
    delays.expect(performance.now() - 300);
    await post(port, 'localhost').catch(() => undefined);
    expect(delays.takeWorst()).toBe(0);
    await post(port);
    expect(delays.takeWorst()).toBeGreaterThanOrEqual(300);
  });

  it('drops an expectation no request followed in time instead of making a later request look late', async () => {
    const port = await listen();
    delays = new SendDelays(null, 200);
    delays.start();
    delays.expect(performance.now() - 500);
    delays.expect(performance.now());
    await post(port);
    expect(delays.takeWorst()).toBeLessThan(200);
  });

  it('two gates of one process share the queue of expected calls, and each hears every delay', async () => {
    const port = await listen();
    delays = new SendDelays('127.0.0.1');
    const other = new SendDelays('127.0.0.1');
    delays.start();
    other.start();
    try {
      // Gate one expects a call that leaves 120 ms late, gate two one on time; the requests come in that order.
      delays.expect(performance.now() - 120);
      other.expect(performance.now());
      await post(port);
      await post(port);
      expect(delays.takeWorst()).toBeGreaterThanOrEqual(120);
      expect(other.takeWorst()).toBeGreaterThanOrEqual(120);
    } finally {
      other.stop();
    }
    // With one gate stopped, the other goes on measuring.
    delays.expect(performance.now() - 90);
    await post(port);
    expect(delays.takeWorst()).toBeGreaterThanOrEqual(90);
  });

  it('finds the host of an endpoint', () => {
    expect(apiHostOf('onsmqtt.cn-hangzhou.aliyuncs.com')).toBe('onsmqtt.cn-hangzhou.aliyuncs.com');
    expect(apiHostOf('127.0.0.1:8080')).toBe('127.0.0.1');
  });
});
