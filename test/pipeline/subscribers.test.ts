/**
 * Batches that ask for the same devices (issue 11, symptoms 1, 2, 5, 7, 9, 12): one revocation,
 * one API call, a record in each batch, and each batch deciding only for itself — its cancel, its
 * pause, its expiry, its dead letter and its redrive. One in-process worker, the emulator through
 * the real SDK, a real Redis; the shared invariants after every scenario.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Batch } from '../../src/batches/batch.js';
import { generateDevices, type EmulatorHandle } from '../../src/emulator/index.js';
import { Enqueuer } from '../../src/producer/enqueuer.js';
import { revocationId } from '../../src/queue/job-id.js';
import type { BatchPriority } from '../../src/queue/priority.js';
import type { ResultRecord } from '../../src/results/result-record.js';
import type { Context } from '../../src/runtime/context.js';
import { invariantViolations } from '../helpers/invariants.js';
import { startPipeline, type Pipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/redis.js';

const INSTANCE = 'mqtt-cn-subscribe01';
const CA = 'ca000000subscribe';

type Device = { mqttInstanceId: string; caSn: string; deviceSn: string };

describe('batches sharing revocations', () => {
  let pipeline: Pipeline;
  let emulator: EmulatorHandle;
  let context: Context;

  beforeAll(async () => {
    pipeline = await startPipeline('subs', { emulator: { latency: { medianMs: 3, p99Ms: 15 } }, env: { RATE_LIMIT_PER_SECOND: '250', MAX_ATTEMPTS: '3', MQTT_API_TIMEOUT_MS: '500' } });
    ({ emulator, context } = pipeline);
  });
  afterAll(() => pipeline?.close());

  function seed(label: string, count: number, register = true): Device[] {
    const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count, prefix: label });
    if (register) for (const device of devices) emulator.registry.addDevice(device);
    return devices;
  }

  /** Creates a batch (optionally paused before its first device) and enqueues into it. */
  async function batchOf(name: string, devices: Device[], options: { paused?: boolean; priority?: BatchPriority; chunkSize?: number } = {}): Promise<string> {
    const batchId = await context.batches.create({ name, source: 'csv', action: 'delete', createdBy: 'test', ...(options.priority ? { priority: options.priority } : {}) });
    if (options.paused === true) await context.batches.pause(batchId, 'held by the test');
    await new Enqueuer(context.queue, context.batches, context.results, { chunkSize: options.chunkSize ?? 500 }).enqueue(
      batchId,
      'delete',
      devices.map((device, index) => ({ kind: 'device' as const, request: { ...device, line: index + 2 } })),
    );
    return batchId;
  }

  async function until(batchId: string, what: string, predicate: (batch: Batch) => boolean, timeoutMs = 30_000): Promise<Batch> {
    return waitFor(async () => {
      const batch = await context.batches.get(batchId);
      return batch !== null && predicate(batch) ? batch : null;
    }, what, timeoutMs, 50);
  }

  const finished = (batch: Batch) => batch.finishedAt !== null;

  async function records(batchId: string): Promise<Map<string, ResultRecord>> {
    const out = new Map<string, ResultRecord>();
    for await (const record of context.results.scan(batchId)) out.set(record.deviceSn, record as ResultRecord);
    return out;
  }

  function deleteCalls(devices: Device[]): Map<string, number> {
    const wanted = new Set(devices.map((device) => device.deviceSn));
    const counts = new Map<string, number>();
    for (const call of emulator.calls()) if (call.action === 'DeleteDeviceCertificate' && wanted.has(call.deviceSn)) counts.set(call.deviceSn, (counts.get(call.deviceSn) ?? 0) + 1);
    return counts;
  }

  async function expectInvariants(batchId: string, devices: Device[]): Promise<void> {
    expect(await invariantViolations(context, batchId, emulator.calls(), new Set(devices.map((device) => device.deviceSn)))).toEqual([]);
  }

  it('two producers enqueueing overlapping lists at the same time: both complete, one call per device, a record in each batch (symptom 1)', async () => {
    const devices = seed('overlap', 900);
    const first = devices.slice(0, 600);
    const second = devices.slice(300);
    // Small chunks so that the two producers' REGISTER and addBulk steps interleave.
    const [a, b] = await Promise.all([batchOf('overlap-a', first, { chunkSize: 50 }), batchOf('overlap-b', second, { chunkSize: 50 })]);
    const [doneA, doneB] = await Promise.all([until(a, 'batch A to complete', (batch) => batch.state === 'completed'), until(b, 'batch B to complete', (batch) => batch.state === 'completed')]);
    expect(doneA.counts).toMatchObject({ deleted: 600, failed: 0, cancelled: 0 });
    expect(doneB.counts).toMatchObject({ deleted: 600, failed: 0, cancelled: 0 });
    const calls = deleteCalls(devices);
    expect(calls.size).toBe(900);
    expect([...calls.values()].every((count) => count === 1)).toBe(true);
    // The shared devices' records carry each batch's own id.
    const shared = devices[450]!.deviceSn;
    expect((await records(a)).get(shared)).toMatchObject({ batchId: a, outcome: 'deleted' });
    expect((await records(b)).get(shared)).toMatchObject({ batchId: b, outcome: 'deleted' });
    await expectInvariants(a, first);
    await expectInvariants(b, second);
  });

  it('one of two overlapping batches cancelled mid-way: the other still revokes every device; cancelled only where no call was made (symptom 2)', async () => {
    const devices = seed('cancel', 600);
    const first = devices.slice(0, 400);
    const second = devices.slice(200);
    const a = await batchOf('cancel-a', first);
    const b = await batchOf('cancel-b', second);
    await until(a, 'batch A to be under way', (batch) => batch.done >= 60);
    expect((await context.control.cancel(a, 'wrong list')).ok).toBe(true);
    const doneB = await until(b, 'batch B to complete', (batch) => batch.state === 'completed');
    const doneA = await until(a, 'batch A to finish cancelled', finished);
    expect(doneA.state).toBe('cancelled');
    expect(doneB.counts).toMatchObject({ deleted: 400, cancelled: 0, failed: 0 });
    expect(doneA.counts.cancelled).toBeGreaterThan(0);
    expect(doneA.counts.deleted + doneA.counts.cancelled).toBe(400);
    for (const device of second) expect(emulator.registry.has(INSTANCE, CA, device.deviceSn)).toBe(false);
    // A's own devices recorded cancelled were never called: still registered.
    const ownA = new Set(devices.slice(0, 200).map((device) => device.deviceSn));
    for (const record of (await records(a)).values()) {
      if (record.outcome === 'cancelled' && ownA.has(record.deviceSn)) expect(emulator.registry.has(INSTANCE, CA, record.deviceSn)).toBe(true);
      if (record.outcome === 'cancelled') expect(record.evidence).toBe('none');
    }
    expect([...deleteCalls(devices).values()].every((count) => count === 1)).toBe(true);
    await expectInvariants(a, first);
    await expectInvariants(b, second);
  });

  it('a follower paused while its leader runs: the leader finishes, the follower gets the shared outcomes and runs its own after resume (symptom 2)', async () => {
    const devices = seed('fpause', 400);
    const leaderDevices = devices.slice(0, 300);
    const followerDevices = devices.slice(150);
    const leader = await batchOf('fpause-leader', leaderDevices);
    const follower = await batchOf('fpause-follower', followerDevices, { paused: true });
    const leaderDone = await until(leader, 'the leader to complete', (batch) => batch.state === 'completed');
    expect(leaderDone.counts).toMatchObject({ deleted: 300 });
    // The follower is paused: only the devices the leader wanted were called for it.
    const paused = await until(follower, 'the follower to hold the shared outcomes', (batch) => batch.done === 150);
    expect(paused.state).toBe('paused');
    for (const device of devices.slice(300)) expect(emulator.registry.has(INSTANCE, CA, device.deviceSn)).toBe(true);
    expect((await context.control.resume(follower)).ok).toBe(true);
    expect((await until(follower, 'the follower to complete', (batch) => batch.state === 'completed')).counts).toMatchObject({ deleted: 250 });
    expect([...deleteCalls(devices).values()].every((count) => count === 1)).toBe(true);
    await expectInvariants(leader, leaderDevices);
    await expectInvariants(follower, followerDevices);
  });

  it('a leader paused while its follower runs: the follower is not held back, the leader resumes (symptom 2)', async () => {
    const devices = seed('lpause', 400);
    const leaderDevices = devices.slice(0, 300);
    const followerDevices = devices.slice(150);
    const leader = await batchOf('lpause-leader', leaderDevices, { paused: true });
    const follower = await batchOf('lpause-follower', followerDevices);
    expect((await until(follower, 'the follower to complete while the leader is paused', (batch) => batch.state === 'completed')).counts).toMatchObject({ deleted: 250 });
    const held = await context.batches.get(leader);
    expect(held).toMatchObject({ state: 'paused', done: 150 });
    for (const device of devices.slice(0, 150)) expect(emulator.registry.has(INSTANCE, CA, device.deviceSn)).toBe(true);
    expect((await context.control.resume(leader)).ok).toBe(true);
    expect((await until(leader, 'the leader to complete', (batch) => batch.state === 'completed')).counts).toMatchObject({ deleted: 300 });
    await expectInvariants(leader, leaderDevices);
    await expectInvariants(follower, followerDevices);
  });

  it('a leader that expired does not strand its follower (symptom 2)', async () => {
    const devices = seed('expired', 40);
    const leader = await batchOf('expired-leader', devices, { paused: true });
    await waitFor(async () => (await context.redis.scard(context.keys.parked(leader))) === 40, 'the leader to park its jobs');
    await context.redis.del(context.keys.batch(leader), context.keys.results(leader), context.keys.instances(leader), context.keys.parked(leader));
    const follower = await batchOf('expired-follower', devices);
    expect((await until(follower, 'the follower to complete', (batch) => batch.state === 'completed')).counts).toMatchObject({ deleted: 40 });
    // Nothing was written into the expired leader: no key of it came back.
    expect(await context.redis.exists(context.keys.batch(leader), context.keys.results(leader))).toBe(0);
    await expectInvariants(follower, devices);
  });

  it("a leader's dead letter is the follower's too; a redrive from the follower finishes both (symptom 2)", async () => {
    const devices = seed('dlq', 20);
    const broken = devices[3]!;
    emulator.script(broken.deviceSn, [{ code: 'ParameterFieldCheckFailed', httpStatus: 400 }]);
    const leader = await batchOf('dlq-leader', devices, { paused: true });
    const follower = await batchOf('dlq-follower', [broken, devices[4]!]);
    const followerDone = await until(follower, 'the follower to complete', (batch) => batch.state === 'completed');
    expect(followerDone.counts).toMatchObject({ deleted: 1, failed: 1 });
    expect((await records(leader)).get(broken.deviceSn)).toMatchObject({ outcome: 'failed', batchId: leader, errorCode: 'ParameterFieldCheckFailed' });
    const [letter] = await context.deadLetters.list(follower);
    expect(letter).toMatchObject({ deviceSn: broken.deviceSn, batchId: follower });
    expect(letter!.subscribers!.sort()).toEqual([leader, follower].sort());
    expect((await context.deadLetters.list(leader)).map((entry) => entry.deviceSn)).toEqual([broken.deviceSn]);
    expect((await context.deadLetters.redrive(follower)).redriven).toBe(1);
    expect((await until(follower, 'the follower to complete again', (batch) => batch.state === 'completed' && batch.counts.failed === 0)).counts).toMatchObject({ deleted: 2 });
    expect((await records(leader)).get(broken.deviceSn)).toMatchObject({ outcome: 'deleted', batchId: leader });
    expect(await context.deadLetters.list(leader)).toEqual([]);
    await context.control.resume(leader);
    expect((await until(leader, 'the leader to complete', (batch) => batch.state === 'completed')).counts).toMatchObject({ deleted: 20, failed: 0 });
    await expectInvariants(leader, devices);
    await expectInvariants(follower, [broken, devices[4]!]);
  });

  it("a redrive that meets another batch's open job joins it instead of being swallowed (symptom 5)", async () => {
    const devices = seed('collide', 5);
    const broken = devices[0]!;
    emulator.script(broken.deviceSn, [{ code: 'ParameterFieldCheckFailed', httpStatus: 400 }]);
    const first = await batchOf('collide-a', devices);
    expect((await until(first, 'batch A to complete', (batch) => batch.state === 'completed')).counts).toMatchObject({ deleted: 4, failed: 1 });
    // Batch B asks for the same device and holds its job open (paused).
    const second = await batchOf('collide-b', [broken], { paused: true });
    const openJob = (await context.results.revocation(revocationId(broken, 'delete')))?.job;
    expect(openJob).toBe(`${revocationId(broken, 'delete')}-2`);
    expect((await context.deadLetters.redrive(first)).redriven).toBe(1);
    // A runs the shared job (B is paused but subscribed): both get the outcome of one call.
    expect((await until(first, 'batch A to complete again', (batch) => batch.state === 'completed' && batch.counts.failed === 0)).counts).toMatchObject({ deleted: 5 });
    await until(second, "batch B to hold the shared job's outcome", (batch) => batch.done === 1);
    await context.control.resume(second);
    expect((await until(second, 'batch B to complete', (batch) => batch.state === 'completed')).counts).toMatchObject({ deleted: 1 });
    expect(deleteCalls([broken]).get(broken.deviceSn)).toBe(2);
    await expectInvariants(first, devices);
    await expectInvariants(second, [broken]);
  });

  it("a finished revocation's lingering job hash cannot swallow a later batch's job (symptom 7)", async () => {
    const devices = seed('linger', 3);
    const first = await batchOf('linger-a', devices);
    await until(first, 'batch A to complete', (batch) => batch.state === 'completed');
    // What a killed worker's finished job leaves for ~60 s: its hash, still there.
    const rid = revocationId(devices[0]!, 'delete');
    await context.redis.hset(`${context.keys.jobKeyPrefix()}${rid}-1`, 'data', '{}', 'name', 'revoke');
    for (const device of devices) emulator.registry.addDevice(device);
    const startedAt = Date.now();
    const second = await batchOf('linger-b', devices);
    expect((await until(second, 'batch B to complete', (batch) => batch.state === 'completed', 5_000)).counts).toMatchObject({ deleted: 3 });
    expect(Date.now() - startedAt).toBeLessThan(5_000);
    await context.redis.del(`${context.keys.jobKeyPrefix()}${rid}-1`);
    await expectInvariants(second, devices);
  });

  it("a row's instance override refused again after the operator resumed: its devices are dead-lettered, the batch completes (symptom 12)", async () => {
    const devices = seed('override', 30);
    const elsewhere = generateDevices({ mqttInstanceId: 'mqtt-cn-nosuchinst', caSn: CA, count: 2, prefix: 'override-x' });
    const batchId = await batchOf('override', [...devices.slice(0, 15), elsewhere[0]!, ...devices.slice(15), elsewhere[1]!]);
    const paused = await until(batchId, 'the instance error to pause the batch', (batch) => batch.state === 'paused');
    expect(paused.reason).toMatch(/MqttInstanceNotFound on instance mqtt-cn-nosuchinst/);
    await waitFor(async () => (await context.queue.getActiveCount()) === 0, 'in-flight calls to settle');
    expect((await context.control.resume(batchId)).ok).toBe(true);
    const done = await until(batchId, 'the batch to complete', (batch) => batch.state === 'completed');
    expect(done.counts).toMatchObject({ deleted: 30, failed: 2 });
    const letters = await context.deadLetters.list(batchId);
    expect(letters.map((letter) => letter.deviceSn).sort()).toEqual(elsewhere.map((device) => device.deviceSn).sort());
    expect(letters[0]!.reason).toMatch(/refused again after the batch was resumed; the batch's devices are mostly on mqtt-cn-subscribe01/);
    await expectInvariants(batchId, [...devices, ...elsewhere]);
  });
});
