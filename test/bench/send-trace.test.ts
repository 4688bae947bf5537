/**
 * The benchmark's count of the busiest second at the senders: `busiestWindow` over send times,
 * and `send-trace.ts` loaded into a process, recording when its API requests left (and only
 * those). A wrong count here would make the benchmark vouch for budgets it never checked.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busiestWindow, readSendTraces } from '../../scripts/bench/bench-support.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('busiestWindow', () => {
  it('counts the fullest half-open window of the given length, in any input order', () => {
    // 0, 400, 999.9 share [0, 1000); 1000 starts a window without 0.
    expect(busiestWindow([1_000, 0, 999.9, 400])).toBe(3);
    expect(busiestWindow([0, 400, 999.9, 1_000, 1_400, 1_999])).toBe(4);
    expect(busiestWindow([0, 10, 20], 10)).toBe(1);
    expect(busiestWindow([0, 10, 20], 10.5)).toBe(2);
  });

  it('finds a burst inside a long, evenly spaced run', () => {
    const even = Array.from({ length: 5_000 }, (_, index) => index * 4); // 250 a second
    expect(busiestWindow(even)).toBe(250);
    const burst = Array.from({ length: 30 }, (_, index) => 10_000.5 + index * 0.01);
    expect(busiestWindow([...even, ...burst])).toBe(280);
  });

  it('is 0 for no times, and reads a missing trace directory as no times', async () => {
    expect(busiestWindow([])).toBe(0);
    expect(await readSendTraces(join(tmpdir(), 'revoker-no-such-trace'))).toEqual([]);
  });
});

describe('send-trace.ts in a process', () => {
  // The API on 127.0.0.1, and another service on 127.0.0.2 that the process also calls.
  const servers: Server[] = [];
  const ports: number[] = [];
  let dir = '';

  beforeAll(async () => {
    for (const address of ['127.0.0.1', '127.0.0.2']) {
      const server = createServer((_req, res) => res.end('{}'));
      server.listen(0, address);
      await once(server, 'listening');
      servers.push(server);
      ports.push((server.address() as { port: number }).port);
    }
    dir = await mkdtemp(join(tmpdir(), 'revoker-send-trace-'));
  });

  afterAll(async () => {
    for (const server of servers) server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('records when each request to the API was handed to the OS, and nothing else', async () => {
    // Three API calls; one to the other service and one to the emulator's control routes, which are not.
    const script = `
      const get = (host, port, path) => new Promise((resolve, reject) => {
        require('node:http').get({ host, port, path }, (res) => { res.resume(); res.on('end', resolve); }).on('error', reject);
      });
      (async () => {
        const api = ['127.0.0.1', ${ports[0]}, '/?Action=DeleteDeviceCertificate'];
        for (const [host, port, path] of [api, api, ['127.0.0.2', ${ports[1]}, '/'], ['127.0.0.1', ${ports[0]}, '/_emulator/stats'], api]) await get(host, port, path);
      })();
    `;
    const startedAt = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', '--import', './scripts/bench/send-trace.ts', '-e', script], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', BENCH_SEND_TRACE: dir, MQTT_API_ENDPOINT: `127.0.0.1:${ports[0]}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code, output).toBe(0);
    const times = await readSendTraces(dir);
    expect(times).toHaveLength(3);
    for (const at of times) {
      expect(at).toBeGreaterThanOrEqual(startedAt);
      expect(at).toBeLessThanOrEqual(Date.now());
    }
    expect([...times].sort((a, b) => a - b)).toEqual(times);
  });
});
