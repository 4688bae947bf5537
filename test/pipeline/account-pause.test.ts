/**
 * Account-wide conditions and what a cancel decides (issues 11 and 12): a blocked source IP, an
 * undocumented refusal repeated on several devices, the one way out (`resumeAccount`, also after
 * the paused batch was cancelled), and a cancel that follows a call whose answer was lost.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_ACCOUNT, generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import type { Batch } from '../../src/batches/batch.js';
import type { ResultRecord } from '../../src/results/result-record.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { startWorkerRuntime, type WorkerRuntime } from '../../src/runtime/worker-runtime.js';
import { enqueueDevices, quietLogger, testConfig } from '../helpers/pipeline.js';
import { removePrefix, uniquePrefix, waitFor } from '../helpers/redis.js';

const INSTANCE = 'mqtt-cn-acctpause01';
const CA = 'ca00000000acctpause';

describe('account-wide pauses and cancels', () => {
  const prefixes: string[] = [];
  let emulator: EmulatorHandle;
  let context: Context | null = null;
  let runtime: WorkerRuntime | null = null;

  beforeAll(async () => {
    emulator = await startEmulator({ latency: { medianMs: 2, p99Ms: 10 } });
  });
  afterEach(async () => {
    await runtime?.close();
    await context?.close();
    runtime = null;
    context = null;
    emulator.setAccountState(DEMO_ACCOUNT.accessKeyId, 'active');
  });
  afterAll(async () => {
    await emulator?.stop();
    for (const prefix of prefixes) await removePrefix(prefix);
  });

  async function start(label: string, extra: Record<string, string> = {}): Promise<Context> {
    const prefix = uniquePrefix(label);
    prefixes.push(prefix);
    const config = testConfig(prefix, emulator, { RATE_LIMIT_PER_SECOND: '200', ...extra });
    context = openContext(config, `test-${label}`);
    runtime = await startWorkerRuntime(config, quietLogger());
    return context;
  }

  function seed(count: number, label: string) {
    const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count, prefix: label });
    for (const device of devices) emulator.registry.addDevice(device);
    return devices;
  }

  async function until(ctx: Context, batchId: string, what: string, predicate: (batch: Batch) => boolean, timeoutMs = 30_000): Promise<Batch> {
    return waitFor(async () => {
      const batch = await ctx.batches.get(batchId);
      return batch !== null && predicate(batch) ? batch : null;
    }, what, timeoutMs, 50);
  }

  async function record(ctx: Context, batchId: string, deviceSn: string): Promise<ResultRecord | undefined> {
    for await (const found of ctx.results.scan(batchId)) if (found.deviceSn === deviceSn) return found as ResultRecord;
    return undefined;
  }

  it('a blocked source IP pauses every batch of the account at once, with the egress rate in the reason; account resume finishes them', async () => {
    const ctx = await start('ipblock');
    const devices = seed(300, 'ipblock');
    const other = seed(100, 'ipblock-other');
    emulator.script(devices[5]!.deviceSn, [{ code: 'Forbidden.IpBlocked', httpStatus: 403 }]);
    const batchId = await enqueueDevices(ctx, devices);
    const otherId = await enqueueDevices(ctx, other, { name: 'other' });
    const paused = await until(ctx, batchId, 'the batch to pause', (batch) => batch.state === 'paused');
    expect(paused.reason).toMatch(/Forbidden\.IpBlocked/);
    expect(paused.reason).toMatch(/may have blocked this source IP/);
    expect(paused.reason).toMatch(/Egress group 'default'/);
    expect(paused.reason).toMatch(/revoker account resume/);
    const otherPaused = await until(ctx, otherId, 'the other batch to pause', (batch) => batch.state === 'paused' || batch.state === 'completed');
    if (otherPaused.state === 'paused') expect(otherPaused.reason).toBe(paused.reason);
    await waitFor(async () => (await ctx.queue.getActiveCount()) === 0, 'in-flight calls to settle');
    expect(await ctx.deadLetters.count()).toBe(0);
    const [reason] = await ctx.control.accountPauseReasons();
    expect(reason).toBe(paused.reason);

    const lifted = await ctx.control.resumeAccount();
    expect(lifted.lifted).toEqual([paused.reason]);
    expect(lifted.resumed).toContain(batchId);
    const done = await until(ctx, batchId, 'the batch to finish after the resume', (batch) => batch.state === 'completed');
    expect(done.counts).toMatchObject({ deleted: 300, failed: 0 });
    expect((await until(ctx, otherId, 'the other batch to finish', (batch) => batch.state === 'completed')).counts.deleted).toBe(100);
    expect(await ctx.control.accountPauseReasons()).toEqual([]);
  });

  it('the same undocumented 4xx on several devices in a row pauses the account instead of dead-lettering device after device', async () => {
    const ctx = await start('refusals');
    const devices = seed(40, 'refusals');
    for (const device of devices) emulator.script(device.deviceSn, [{ code: 'SomethingNew.Refused', httpStatus: 400 }]);
    const batchId = await enqueueDevices(ctx, devices);
    const paused = await until(ctx, batchId, 'the account pause', (batch) => batch.state === 'paused');
    expect(paused.reason).toMatch(/SomethingNew\.Refused/);
    expect(paused.reason).toMatch(/refused several different devices in a row/);
    await waitFor(async () => (await ctx.queue.getActiveCount()) === 0, 'in-flight calls to settle');
    // At most the two before the third: not the whole batch.
    expect(await ctx.deadLetters.count()).toBeLessThanOrEqual(2);
    // The cause is fixed (the gateway stops refusing), then the operator resumes.
    for (const device of devices) emulator.script(device.deviceSn, []);
    await ctx.control.resumeAccount();
    const done = await until(ctx, batchId, 'the batch to finish', (batch) => batch.state === 'completed');
    expect(done.counts.deleted + done.counts.failed).toBe(40);
    expect(done.counts.deleted).toBeGreaterThanOrEqual(38);
  });

  it('the account pause has a way out after its batch was cancelled: a new batch parks, account resume runs it', async () => {
    const ctx = await start('cancelled-pause');
    emulator.setAccountState(DEMO_ACCOUNT.accessKeyId, 'inactive');
    const first = await enqueueDevices(ctx, seed(50, 'cp-first'));
    await until(ctx, first, 'the credentials pause', (batch) => batch.state === 'paused');
    await ctx.control.cancel(first);
    await until(ctx, first, 'the cancel to finish', (batch) => batch.finishedAt !== null);
    emulator.setAccountState(DEMO_ACCOUNT.accessKeyId, 'active');
    const second = await enqueueDevices(ctx, seed(50, 'cp-second'));
    // Its jobs park behind the account pause: nothing is called.
    await waitFor(async () => (await ctx.batches.get(second))?.state === 'running' && (await ctx.queue.getDelayedCount()) >= 50, 'the new batch to park', 10_000);
    expect((await ctx.batches.get(second))?.done).toBe(0);
    const lifted = await ctx.control.resumeAccount();
    expect(lifted.lifted).toHaveLength(1);
    expect(lifted.woken).toBeGreaterThanOrEqual(50);
    expect((await until(ctx, second, 'the new batch to finish', (batch) => batch.state === 'completed')).counts.deleted).toBe(50);
  });

  it('a cancel after a lost answer reads the device once: gone when the lost call removed it, cancelled when it is still there', async () => {
    // A long retry backoff leaves time to cancel between the first call and the retry (the backoff
    // is drawn from [0, 60 s]: a retry inside the test's first second is a 1-in-60 chance per job,
    // and the pause right after the first calls parks any retry that comes anyway).
    const ctx = await start('cancel-read', { RETRY_BASE_MS: '60000', RETRY_MAX_MS: '60000', MQTT_API_TIMEOUT_MS: '300' });
    const [appliedThenLost, failedUnknown, plain] = seed(3, 'cancel-read');
    emulator.script(appliedThenLost!.deviceSn, ['timeout']);
    emulator.script(failedUnknown!.deviceSn, [{ code: 'InternalError', httpStatus: 500 }]);
    // The third first gets an answer that proves nothing was applied, so it waits for a retry too.
    emulator.script(plain!.deviceSn, [{ code: 'SignatureNonceUsed', httpStatus: 400 }]);
    const batchId = await enqueueDevices(ctx, [appliedThenLost!, failedUnknown!, plain!]);
    await waitFor(() => emulator.calls().filter((call) => call.deviceSn !== undefined && [appliedThenLost, failedUnknown, plain].some((d) => d!.deviceSn === call.deviceSn)).length >= 2, 'the first calls', 10_000);
    await waitFor(async () => (await ctx.queue.getDelayedCount()) === 3, 'all three to wait for a retry', 10_000);
    await ctx.control.pause(batchId, 'test pause');
    await ctx.control.cancel(batchId, 'test cancel');
    const batch = await until(ctx, batchId, 'the cancel to finish', (b) => b.finishedAt !== null);
    expect(batch.state).toBe('cancelled');
    expect(await record(ctx, batchId, appliedThenLost!.deviceSn)).toMatchObject({ outcome: 'gone', evidence: 'read' });
    expect(emulator.registry.has(INSTANCE, CA, appliedThenLost!.deviceSn)).toBe(false);
    expect(await record(ctx, batchId, failedUnknown!.deviceSn)).toMatchObject({ outcome: 'cancelled', evidence: 'read' });
    expect(emulator.registry.has(INSTANCE, CA, failedUnknown!.deviceSn)).toBe(true);
    // A certain failure (nothing applied) needs no read.
    expect(await record(ctx, batchId, plain!.deviceSn)).toMatchObject({ outcome: 'cancelled', evidence: 'none' });
    const reads = emulator.calls().filter((call) => call.action === 'GetDeviceCertificate');
    expect(reads.map((call) => call.deviceSn).sort()).toEqual([appliedThenLost!.deviceSn, failedUnknown!.deviceSn].sort());
  });
});
