/**
 * Existence snapshots end to end: `--snapshot auto` lists a CA before the batch's first call, and
 * a call whose answer is lost then gets an exact outcome: `deleted` when the listing saw the
 * certificate, `not_found` when a complete listing did not (a never-registered device), and
 * `gone` only under a CA that was not listed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiCallerOver } from '../../src/cli/api-caller.js';
import { PlanCounter } from '../../src/cli/plan.js';
import { takeSnapshots } from '../../src/cli/snapshot-step.js';
import { CertificateApi } from '../../src/cloud/certificate-api.js';
import { generateDevices, type EmulatorHandle } from '../../src/emulator/index.js';
import type { ResultRecord } from '../../src/results/result-record.js';
import type { Context } from '../../src/runtime/context.js';
import { enqueueDevices, startPipeline, type Pipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/redis.js';
import { spawnTs } from '../helpers/processes.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';

const INSTANCE = 'mqtt-cn-snapshot01';
const LISTED_CA = 'ca0000000snapshot1';
const SMALL_CA = 'ca0000000snapshot2';

describe('outcomes decided by an existence snapshot', () => {
  let pipeline: Pipeline;
  let emulator: EmulatorHandle;
  let context: Context;

  beforeAll(async () => {
    pipeline = await startPipeline('snapshot', { emulator: { latency: { medianMs: 2, p99Ms: 10 } }, env: { RATE_LIMIT_PER_SECOND: '200', MAX_ATTEMPTS: '4', MQTT_API_TIMEOUT_MS: '300' } });
    ({ emulator, context } = pipeline);
  });

  afterAll(() => pipeline?.close());

  it('turns a lost answer into deleted or not_found with evidence snapshot, and leaves gone where no listing was made', async () => {
    const registered = generateDevices({ mqttInstanceId: INSTANCE, caSn: LISTED_CA, count: 40, prefix: 'snapreg' });
    const neverRegistered = generateDevices({ mqttInstanceId: INSTANCE, caSn: LISTED_CA, count: 8, prefix: 'snapnever' });
    // Three devices under a CA too small for `auto` (a tenth of 3 calls is no page): not listed.
    const small = generateDevices({ mqttInstanceId: INSTANCE, caSn: SMALL_CA, count: 3, prefix: 'snapsmall' });
    for (const device of [...registered, ...small]) emulator.registry.addDevice(device);

    const [dropped, timedOut, plain] = registered.map((device) => device.deviceSn);
    const [neverDropped, neverTimedOut] = neverRegistered.map((device) => device.deviceSn);
    emulator.script(dropped!, ['drop_after_apply']);
    emulator.script(timedOut!, ['timeout']);
    emulator.script(neverDropped!, ['drop']);
    emulator.script(neverTimedOut!, ['timeout_before_apply']);
    emulator.script(small[0]!.deviceSn, ['drop_after_apply']);

    const input = [...registered, ...neverRegistered, ...small];
    const counter = new PlanCounter();
    for (const device of input) counter.addDevice(device);
    const config = context.config;
    const api = new CertificateApi({ endpoint: config.apiEndpoint, protocol: config.apiProtocol, timeoutMs: config.apiTimeoutMs, credentials: config.credentials });
    const caller = apiCallerOver(pipeline.runtime.gate, config);
    const taken = await takeSnapshots(caller, api, context.snapshots, counter.perCa, { mode: 'auto', pageSize: 100, source: 'test' });
    expect(taken).toEqual([{ mqttInstanceId: INSTANCE, caSn: LISTED_CA, batchDevices: 48, pages: 1, listed: 40, complete: true }]);

    const batchId = await enqueueDevices(context, input);
    await waitFor(async () => (await context.batches.get(batchId))?.state === 'completed', 'the batch to complete', 60_000);
    const records = new Map<string, ResultRecord>();
    for await (const record of context.results.scan(batchId)) records.set(record.deviceSn, record as ResultRecord);

    expect(records.get(dropped!)).toMatchObject({ outcome: 'deleted', evidence: 'snapshot' });
    expect(records.get(timedOut!)).toMatchObject({ outcome: 'deleted', evidence: 'snapshot' });
    expect(records.get(plain!)).toMatchObject({ outcome: 'deleted', evidence: 'answer' });
    expect(records.get(neverDropped!)).toMatchObject({ outcome: 'not_found', evidence: 'snapshot' });
    expect(records.get(neverTimedOut!)).toMatchObject({ outcome: 'not_found', evidence: 'snapshot' });
    expect(records.get(small[0]!.deviceSn)).toMatchObject({ outcome: 'gone', evidence: 'answer' });
    // The invariant that matters most: no never-registered device is reported revoked.
    for (const device of neverRegistered) expect(records.get(device.deviceSn)?.outcome).toBe('not_found');
    for (const device of registered) expect(records.get(device.deviceSn)?.outcome).toBe('deleted');
    expect(emulator.registry.has(INSTANCE, LISTED_CA, dropped!)).toBe(false);
  });

  it('an API that drops every connection costs the snapshot three tries, not the whole retry policy: the batch goes on without it', async () => {
    // Evidence only, and it holds back the batch's first call: MAX_ATTEMPTS (8 here) would spend
    // about a minute of backoff on an unreachable API before the first revocation.
    let connections = 0;
    const dropper = createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => dropper.listen(0, '127.0.0.1', resolve));
    const address = dropper.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const dir = await mkdtemp(join(tmpdir(), 'revoker-snapshot-down-'));
    try {
      const file = join(dir, 'devices.csv');
      await writeFile(file, 'DeviceSn\nsnapdown0001\nsnapdown0002\n');
      const child = spawnTs('src/cli/main.ts', ['enqueue', file, '--instance', INSTANCE, '--ca-sn', 'ca00000snapdown', '--snapshot', 'always', '--yes', '--json'], { ...pipeline.env, MQTT_API_ENDPOINT: `127.0.0.1:${port}`, MAX_ATTEMPTS: '8' });
      expect(await child.exited).toBe(0);
      expect(child.output()).toContain('existence snapshot not taken');
      expect(connections).toBe(3);
      const { batchId, accepted } = JSON.parse(child.output().trim().split('\n').at(-1)!) as { batchId: string; accepted: number };
      expect(accepted).toBe(2);
      expect((await context.batches.get(batchId))?.accepted).toBe(2);
    } finally {
      await new Promise<void>((resolve) => dropper.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('revoker enqueue --snapshot always --verify: lists the CA first, and every record carries its read-back', async () => {
    const ca = 'ca000000snapshotcli';
    const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: ca, count: 6, prefix: 'snapcli' });
    for (const device of devices.slice(0, 5)) emulator.registry.addDevice(device);
    const dir = await mkdtemp(join(tmpdir(), 'revoker-snapshot-cli-'));
    try {
      const file = join(dir, 'devices.csv');
      await writeFile(file, `DeviceSn\n${devices.map((device) => device.deviceSn).join('\n')}\n`);
      const child = spawnTs('src/cli/main.ts', ['enqueue', file, '--instance', INSTANCE, '--ca-sn', ca, '--snapshot', 'always', '--verify', '--yes', '--json'], pipeline.env);
      expect(await child.exited).toBe(0);
      const { batchId } = JSON.parse(child.output().trim().split('\n').at(-1)!) as { batchId: string };
      expect(await context.snapshots.list(INSTANCE, ca)).toMatchObject([{ devices: 5, completedAt: expect.any(Number) as number }]);
      await waitFor(async () => (await context.batches.get(batchId))?.state === 'completed', 'the batch to complete', 60_000);
      const records: ResultRecord[] = [];
      for await (const record of context.results.scan(batchId)) records.push(record as ResultRecord);
      expect(records).toHaveLength(6);
      for (const record of records) expect(record.verification).toBe('absent');
      expect(records.filter((record) => record.outcome === 'not_found')).toHaveLength(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
