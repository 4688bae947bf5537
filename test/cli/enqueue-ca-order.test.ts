/**
 * A CA listing's batch lists its devices in listing order in `revoker report` (issue 14, part 3):
 * the intake records each listed device's position. The emulator lists a CA's devices in the
 * order they were registered, which is not their serials' order. No worker runs: the records stay
 * pending, which is all the order needs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import { testEnv } from '../helpers/pipeline.js';
import { spawnTs } from '../helpers/processes.js';
import { removePrefix, uniquePrefix } from '../helpers/redis.js';

const INSTANCE = 'mqtt-cn-caorder01';
const CA = 'ca00000000caorder';

describe('revoker enqueue-ca: report order', () => {
  const prefix = uniquePrefix('caorder');
  let emulator: EmulatorHandle;
  let env: Record<string, string>;
  const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 250, prefix: 'order' });

  beforeAll(async () => {
    emulator = await startEmulator({ devices, latency: { medianMs: 1, p99Ms: 5 } });
    env = testEnv(prefix, emulator);
  });
  afterAll(async () => {
    await emulator?.stop();
    await removePrefix(prefix);
  });

  it('lists the devices in listing order, each at its position', async () => {
    const serials = devices.map((device) => device.deviceSn);
    expect([...serials].sort()).not.toEqual(serials);
    const enqueue = spawnTs('src/cli/main.ts', ['enqueue-ca', '--instance', INSTANCE, '--ca-sn', CA, '--page-size', '100', '--json', '--yes'], env);
    expect(await enqueue.exited, enqueue.output()).toBe(0);
    const { batchId, accepted } = JSON.parse(enqueue.output().trim().split('\n').at(-1)!) as { batchId: string; accepted: number };
    expect(accepted).toBe(250);

    const report = spawnTs('src/cli/main.ts', ['report', batchId, '--plain', '--format', 'ndjson'], env);
    expect(await report.exited, report.output()).toBe(0);
    const lines = report
      .output()
      .trim()
      .split('\n')
      // stdout carries the report; stderr (merged here) a summary line.
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { line: number; deviceSn: string });
    expect(lines.map((line) => line.deviceSn)).toEqual(serials);
    expect(lines.map((line) => line.line)).toEqual(serials.map((_, index) => index + 1));
  });
});
