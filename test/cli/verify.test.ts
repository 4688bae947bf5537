/**
 * `revoker verify BATCH`: re-reads a finished batch's devices with GetDeviceCertificate and lists
 * the certificates registered again (after a delete) or active again (after an inactivate);
 * `--requeue` revokes them in a new batch linked to the first; `--sample N` reads N of them.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, type EmulatorHandle } from '../../src/emulator/index.js';
import { reportStores } from '../../src/report/report-stores.js';
import type { Context } from '../../src/runtime/context.js';
import { startPipeline, type Pipeline } from '../helpers/pipeline.js';
import { spawnTs } from '../helpers/processes.js';
import { waitFor } from '../helpers/redis.js';

const INSTANCE = 'mqtt-cn-verify0001';
const CA = 'ca00000000verify1';

interface Summary {
  batchId: string;
  eligible: number;
  checked: number;
  sampled: boolean;
  stillRevoked: number;
  registeredAgain: number;
  activeAgain: number;
  unreadable: number;
  requeuedBatchId: string | null;
}

describe('revoker verify', () => {
  let pipeline: Pipeline;
  let emulator: EmulatorHandle;
  let context: Context;
  let env: Record<string, string>;
  let dir: string;
  const deleted = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 300, prefix: 'vdel' });
  const inactivated = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 100, prefix: 'vina' });

  beforeAll(async () => {
    pipeline = await startPipeline('verify', { emulator: { devices: [...deleted, ...inactivated], latency: { medianMs: 1, p99Ms: 5 } }, env: { RATE_LIMIT_PER_SECOND: '500' } });
    ({ emulator, context, env } = pipeline);
    dir = await mkdtemp(join(tmpdir(), 'revoker-verify-'));
  });
  afterAll(async () => {
    await pipeline?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function revoker(args: string[]): Promise<{ code: number | string; out: string }> {
    const child = spawnTs('src/cli/main.ts', args, env);
    const code = await child.exited;
    return { code, out: child.output() };
  }

  async function enqueueAndFinish(name: string, serials: string[], action: 'delete' | 'inactivate'): Promise<string> {
    const file = join(dir, `${name}.csv`);
    await writeFile(file, `DeviceSn\n${serials.join('\n')}\n`);
    const run = await revoker(['enqueue', file, '--instance', INSTANCE, '--ca-sn', CA, '--action', action, '--yes', '--json']);
    expect(run.code).toBe(0);
    const { batchId } = JSON.parse(run.out.trim().split('\n').at(-1)!) as { batchId: string };
    await finished(batchId);
    return batchId;
  }

  function finished(batchId: string) {
    return waitFor(async () => ((await context.batches.get(batchId))?.state === 'completed' ? true : null), `batch ${batchId} to finish`, 60_000, 100);
  }

  function summaryOf(out: string): Summary {
    return JSON.parse(out.trim().split('\n').at(-1)!) as Summary;
  }

  let deletedBatch: string;
  const back = [deleted[3]!, deleted[150]!, deleted[299]!];

  it('finds the certificates registered again after a delete', async () => {
    const batchId = await enqueueAndFinish('deleted', deleted.map((device) => device.deviceSn), 'delete');
    deletedBatch = batchId;
    expect(emulator.registry.count(INSTANCE, CA)).toBe(100);

    const clean = await revoker(['verify', batchId, '--json']);
    expect(clean.code).toBe(0);
    expect(summaryOf(clean.out)).toMatchObject({ eligible: 300, checked: 300, stillRevoked: 300, registeredAgain: 0, unreadable: 0 });

    // After the leak, three come back.
    for (const device of back) emulator.registry.addDevice(device);
    emulator.resetStats();
    const found = await revoker(['verify', batchId]);
    expect(found.code).toBe(1);
    for (const device of back) expect(found.out).toContain(`registered again: ${INSTANCE} ${CA} ${device.deviceSn} (was deleted)`);
    expect(found.out).toContain('297 still revoked, 3 registered again, 0 active again, 0 unreadable');
    expect(emulator.calls().filter((call) => call.action === 'GetDeviceCertificate')).toHaveLength(300);
    expect((await reportStores(context).audit.get(batchId)).verification).toMatchObject({ registeredAgain: 3, checked: 300 });

    const sample = await revoker(['verify', batchId, '--sample', '40', '--json']);
    expect(summaryOf(sample.out)).toMatchObject({ eligible: 300, checked: 40, sampled: true });
  }, 180_000);

  it('--requeue revokes them in a new batch linked to the first', async () => {
    const batchId = deletedBatch;
    // --requeue needs --yes without a terminal, and changes nothing otherwise.
    const before = (await context.batches.list(1_000)).length;
    const refused = await revoker(['verify', batchId, '--requeue']);
    expect(refused.code).toBe(2);
    expect((await context.batches.list(1_000)).length).toBe(before);

    const requeued = await revoker(['verify', batchId, '--requeue', '--yes', '--json']);
    expect(requeued.code).toBe(1);
    const summary = summaryOf(requeued.out);
    expect(summary).toMatchObject({ registeredAgain: 3 });
    expect(summary.requeuedBatchId).toMatch(/^b-/);
    await finished(summary.requeuedBatchId!);
    const followUp = await context.batches.get(summary.requeuedBatchId!);
    expect(followUp).toMatchObject({ accepted: 3, priority: 'urgent', action: 'delete' });
    expect(followUp!.counts.deleted).toBe(3);
    for (const device of back) expect(emulator.registry.has(INSTANCE, CA, device.deviceSn)).toBe(false);
    const { audit } = reportStores(context);
    expect(await audit.get(summary.requeuedBatchId!)).toMatchObject({ linkedBatchId: batchId, reason: `found registered again by revoker verify of ${batchId}` });
    expect((await audit.get(batchId)).followUpBatchIds).toEqual([summary.requeuedBatchId]);

    const after = await revoker(['verify', batchId, '--json']);
    expect(after.code).toBe(0);
    expect(summaryOf(after.out)).toMatchObject({ registeredAgain: 0, stillRevoked: 300 });
  }, 180_000);

  it('after an inactivate, an active certificate is found; an inactive or deleted one is still revoked', async () => {
    const batchId = await enqueueAndFinish('inactivated', inactivated.map((device) => device.deviceSn), 'inactivate');
    emulator.registry.setStatus(INSTANCE, CA, inactivated[10]!.deviceSn, '1');
    emulator.registry.setStatus(INSTANCE, CA, inactivated[20]!.deviceSn, '1');
    emulator.registry.delete(INSTANCE, CA, inactivated[30]!.deviceSn);
    const run = await revoker(['verify', batchId, '--json']);
    expect(run.code).toBe(1);
    expect(summaryOf(run.out)).toMatchObject({ checked: 100, activeAgain: 2, registeredAgain: 0, stillRevoked: 98 });
    expect(run.out).toContain(`active again: ${INSTANCE} ${CA} ${inactivated[10]!.deviceSn} (was inactivated)`);
  }, 120_000);

  it('refuses a batch that is not finished, and an unknown one', async () => {
    const open = await context.batches.create({ name: 'open', source: 'csv', action: 'delete', createdBy: 'test' });
    const refused = await revoker(['verify', open]);
    expect(refused.code).toBe(2);
    expect(refused.out).toContain(`batch ${open} is enqueuing: verify it once it is finished`);
    expect((await revoker(['verify', 'b-nope'])).code).toBe(3);
  });
});
