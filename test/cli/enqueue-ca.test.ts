/**
 * `revoker enqueue-ca`: lists every device certificate under one CA and revokes exactly those,
 * leaving another CA's devices alone; an unknown CA fails the preflight and enqueues nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, type EmulatorHandle } from '../../src/emulator/index.js';
import type { Context } from '../../src/runtime/context.js';
import { startPipeline, type Pipeline } from '../helpers/pipeline.js';
import { spawnTs } from '../helpers/processes.js';
import { waitFor } from '../helpers/redis.js';

const INSTANCE = 'mqtt-cn-enqueueca1';
const CA_A = 'ca00000000000aaaa';
const CA_B = 'ca00000000000bbbb';

describe('revoker enqueue-ca', () => {
  let pipeline: Pipeline;
  let emulator: EmulatorHandle;
  let context: Context;
  let env: Record<string, string>;

  beforeAll(async () => {
    const underA = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA_A, count: 2_500, prefix: 'a' });
    const underB = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA_B, count: 400, prefix: 'b' });
    pipeline = await startPipeline('enqca', { emulator: { devices: [...underA, ...underB], latency: { medianMs: 1, p99Ms: 5 } }, env: { RATE_LIMIT_PER_SECOND: '500' } });
    ({ emulator, context, env } = pipeline);
  });
  afterAll(() => pipeline?.close());

  it('revokes exactly the devices under the named CA', async () => {
    const child = spawnTs('src/cli/main.ts', ['enqueue-ca', '--instance', INSTANCE, '--ca-sn', CA_A, '--json', '--yes'], env);
    expect(await child.exited).toBe(0);
    const summary = JSON.parse(child.output().trim().split('\n').at(-1)!) as { batchId: string; accepted: number; listed: number };
    expect(summary).toMatchObject({ accepted: 2_500, listed: 2_500 });
    const batch = await waitFor(async () => {
      const current = await context.batches.get(summary.batchId);
      return current?.state === 'completed' ? current : null;
    }, 'the CA batch to finish', 60_000, 100);
    expect(batch).toMatchObject({ source: 'ca_listing', accepted: 2_500 });
    expect(batch.counts.deleted).toBe(2_500);
    expect(emulator.registry.count(INSTANCE, CA_A)).toBe(0);
    expect(emulator.registry.count(INSTANCE, CA_B)).toBe(400);
    // Listing went through the shared rate too: 25 pages of 100, the empty 26th that ends it, and
    // at most two more asked for while the 26th was on its way (pages are fetched three at a time).
    const calls = emulator.calls();
    const listCalls = calls.filter((call) => call.action === 'ListDeviceCertificateByCaSn').length;
    expect(listCalls).toBeGreaterThanOrEqual(26);
    expect(listCalls).toBeLessThanOrEqual(28);
    expect(calls.filter((call) => call.action === 'GetCaCertificate')).toHaveLength(1);
  });

  it('refuses an unknown CA at the preflight and enqueues nothing', async () => {
    const before = (await context.batches.list(100)).length;
    const child = spawnTs('src/cli/main.ts', ['enqueue-ca', '--instance', INSTANCE, '--ca-sn', 'ca0000000000zzzz', '--yes'], env);
    expect(await child.exited).not.toBe(0);
    expect(child.output()).toMatch(/GetCaCertificate ca0000000000zzzz failed: FindCaBySnError/);
    expect((await context.batches.list(100)).length).toBe(before);
  });
});
