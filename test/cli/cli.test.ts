/**
 * The `revoker` command line as an operator runs it: real processes, real Redis, the emulator,
 * and an in-process worker doing the revoking.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, type EmulatorHandle } from '../../src/emulator/index.js';
import type { Context } from '../../src/runtime/context.js';
import { startPipeline, type Pipeline } from '../helpers/pipeline.js';
import { spawnTs } from '../helpers/processes.js';

const INSTANCE = 'mqtt-cn-clitest01';
const CA = 'ca00000000clitest';

describe('revoker CLI', () => {
  let pipeline: Pipeline;
  let emulator: EmulatorHandle;
  let context: Context;
  let dir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    pipeline = await startPipeline('cli', { emulator: { latency: { medianMs: 2, p99Ms: 10 } }, env: { RATE_LIMIT_PER_SECOND: '300', MAX_ATTEMPTS: '2' } });
    ({ emulator, context, env } = pipeline);
    dir = await mkdtemp(join(tmpdir(), 'revoker-cli-'));
  });
  afterAll(async () => {
    await pipeline?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function revoker(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number | string; out: string }> {
    const child = spawnTs('src/cli/main.ts', args, { ...env, ...extraEnv });
    const code = await child.exited;
    return { code, out: child.output() };
  }

  async function csv(name: string, text: string): Promise<string> {
    const file = join(dir, name);
    await writeFile(file, text);
    return file;
  }

  it('refuses a bad configuration naming the variable, with exit code 2', async () => {
    const result = await revoker(['batch', 'list'], { RATE_LIMIT_PER_SECOND: '900' });
    expect(result.code).toBe(2);
    expect(result.out).toContain("RATE_LIMIT_PER_SECOND must be an integer from 1 to 500, got '900'");
  });

  it('refuses a file without a DeviceSn column before creating anything', async () => {
    const before = await context.batches.list(100);
    const file = await csv('nocolumn.csv', 'Serial,CaSn\nabc,def\n');
    const result = await revoker(['enqueue', file, '--instance', INSTANCE, '--ca-sn', CA, '--yes']);
    expect(result.code).toBe(2);
    expect(result.out).toMatch(/DeviceSn/);
    expect(await context.batches.list(100)).toHaveLength(before.length);
  });

  it('dry run validates and counts without touching Redis', async () => {
    const before = await context.batches.list(100);
    const file = await csv('dry.csv', 'DeviceSn\nabc1\nabc2\nabc1\nbad sn\n');
    const result = await revoker(['enqueue', file, '--instance', INSTANCE, '--ca-sn', CA, '--dry-run', '--json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.out.trim()) as unknown).toMatchObject({ accepted: 2, rejected: 1, duplicates: 1, dryRun: true });
    expect(await context.batches.list(100)).toHaveLength(before.length);
  });

  it('enqueue, status --wait, report: success exits 0, the report has every device and rejected row', async () => {
    const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 50, prefix: 'cli-ok' });
    for (const device of devices) emulator.registry.addDevice(device);
    // A formula-looking serial (not registered) and a bad row.
    const file = await csv('ok.csv', `\uFEFFdevice_sn,ca_sn\r\n${devices.map((device) => device.deviceSn).join('\r\n')}\r\n=1+2\r\nbad sn\r\n`);
    const enqueued = await revoker(['enqueue', file, '--instance', INSTANCE, '--ca-sn', CA, '--json', '--name', 'cli ok', '--yes']);
    expect(enqueued.code).toBe(0);
    const summary = JSON.parse(enqueued.out.trim()) as { batchId: string; accepted: number; rejected: number; duplicates: number };
    expect(summary).toMatchObject({ accepted: 51, rejected: 1, duplicates: 0 });

    const waited = await revoker(['status', summary.batchId, '--wait', '--interval-ms', '100']);
    expect(waited.code).toBe(0);
    expect(waited.out).toContain('[completed]');
    expect(waited.out).toMatch(/deleted 50 .*not_found 1/);

    const reportFile = join(dir, 'report.csv');
    const reported = await revoker(['report', summary.batchId, '--format', 'csv', '--out', reportFile]);
    expect(reported.code).toBe(0);
    // The sealed report: a header line, the column row, one line per device and rejected row, the seal.
    const sealed = (await readFile(reportFile, 'utf8')).trim().split('\n');
    expect(sealed[0]).toMatch(/^#header,/);
    expect(sealed.at(-1)).toMatch(/^#seal,/);
    const lines = sealed.slice(1, -1);
    expect(lines[0]).toMatch(/^batchId,mqttInstanceId,caSn,deviceSn,action,outcome,evidence/);
    expect(lines).toHaveLength(1 + 51 + 1);
    const verified = await revoker(['verify-report', reportFile]);
    expect(verified.code).toBe(0);
    expect(lines.some((line) => line.includes(",'=1+2,") && line.includes('not_found'))).toBe(true);
    expect(lines.some((line) => line.includes('rejected') && line.includes('whitespace'))).toBe(true);

    const ndjson = await revoker(['report', summary.batchId, '--format', 'ndjson']);
    // Standard error (the summary line) is mixed in: keep the JSON lines.
    const rows = ndjson.out.trim().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { outcome?: string });
    expect(rows.filter((row) => row.outcome === 'deleted')).toHaveLength(50);

    const listed = await revoker(['batch', 'list']);
    expect(listed.out).toContain(summary.batchId);
  });

  it('status --wait exits 1 when devices failed; dlq list shows them and redrive finishes the batch', async () => {
    const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 20, prefix: 'cli-fail' });
    for (const device of devices) emulator.registry.addDevice(device);
    emulator.script(devices[0]!.deviceSn, [{ code: 'ParameterFieldCheckFailed', httpStatus: 400 }]);
    const file = await csv('fail.csv', `DeviceSn\n${devices.map((device) => device.deviceSn).join('\n')}\n`);
    const enqueued = await revoker(['enqueue', file, '--instance', INSTANCE, '--ca-sn', CA, '--json', '--yes']);
    const { batchId } = JSON.parse(enqueued.out.trim()) as { batchId: string };
    const waited = await revoker(['status', batchId, '--wait', '--interval-ms', '100']);
    expect(waited.code).toBe(1);
    expect(waited.out).toMatch(/failed 1/);

    const letters = await revoker(['dlq', 'list', '--batch', batchId, '--json']);
    expect(letters.out).toContain(devices[0]!.deviceSn);
    expect(letters.out).toContain('ParameterFieldCheckFailed');
    const redriven = await revoker(['dlq', 'redrive', '--batch', batchId]);
    expect(redriven.out).toContain('1 dead letters redriven');
    expect((await revoker(['status', batchId, '--wait', '--interval-ms', '100'])).code).toBe(0);
  });

  it('unknown batch: exit 3 with a clear message; pause and resume through the CLI', async () => {
    const missing = await revoker(['status', 'b-nope']);
    expect(missing.code).toBe(3);
    expect(missing.out).toContain('batch b-nope not found');
    const batchId = await context.batches.create({ name: 'idle', source: 'csv', action: 'delete', createdBy: 'test' });
    expect((await revoker(['batch', 'pause', batchId, '--reason', 'hold on'])).code).toBe(0);
    expect(await context.batches.get(batchId)).toMatchObject({ state: 'paused', reason: 'hold on' });
    const status = await revoker(['status', batchId, '--json']);
    expect(JSON.parse(status.out.trim()) as unknown).toMatchObject({ state: 'paused', reason: 'hold on' });
    expect((await revoker(['batch', 'resume', batchId])).code).toBe(0);
    expect((await revoker(['batch', 'resume', batchId])).code).toBe(1);
  });
});
