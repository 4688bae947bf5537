/**
 * Plan, then apply: `enqueue` and `enqueue-ca` show the plan (devices, instances, CAs, action,
 * budgets, duration) and wait for `y` on a terminal (a real pseudo-terminal); `--yes` skips the
 * question; without a terminal and without `--yes` they refuse with exit code 2 before changing
 * anything; `--dry-run` shows the plan and stops.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, type EmulatorHandle } from '../../src/emulator/index.js';
import { reportStores } from '../../src/report/report-stores.js';
import type { Context } from '../../src/runtime/context.js';
import { startPipeline, type Pipeline } from '../helpers/pipeline.js';
import { spawnTs } from '../helpers/processes.js';
import { revokerOnTerminal } from './terminal.js';

const INSTANCE = 'mqtt-cn-plantest01';
const INSTANCE_2 = 'mqtt-cn-plantest02';
const CA = 'ca000000plantest1';
const CA_LISTED = 'ca000000plantest2';

describe('plan, then apply', () => {
  let pipeline: Pipeline;
  let emulator: EmulatorHandle;
  let context: Context;
  let env: Record<string, string>;
  let dir: string;
  let file: string;
  let fileSha: string;

  beforeAll(async () => {
    const listed = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA_LISTED, count: 250, prefix: 'plan-ca' });
    pipeline = await startPipeline('plan', { emulator: { devices: listed, latency: { medianMs: 1, p99Ms: 5 } }, env: { RATE_LIMIT_PER_SECOND: '300', EGRESS_RATE_LIMIT_PER_SECOND: '200' } });
    ({ emulator, context, env } = pipeline);
    dir = await mkdtemp(join(tmpdir(), 'revoker-plan-'));
    const rows = ['DeviceSn,CaSn,MqttInstanceId'];
    for (let index = 0; index < 1_200; index += 1) rows.push(`plan-${index},${CA},${index % 3 === 0 ? INSTANCE_2 : INSTANCE}`);
    rows.push(`plan-7,${CA},${INSTANCE}`, 'bad sn,x,y');
    const text = `${rows.join('\n')}\n`;
    file = join(dir, 'leak.csv');
    await writeFile(file, text);
    fileSha = createHash('sha256').update(text).digest('hex');
  });
  afterAll(async () => {
    await pipeline?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const batchCount = async () => (await context.batches.list(1_000)).length;

  it('without a terminal and without --yes: refuses with exit 2 and changes nothing', async () => {
    const before = await batchCount();
    const child = spawnTs('src/cli/main.ts', ['enqueue', file], env);
    expect(await child.exited).toBe(2);
    expect(child.output()).toContain('no terminal to ask for confirmation: pass --yes');
    const ca = spawnTs('src/cli/main.ts', ['enqueue-ca', '--instance', INSTANCE, '--ca-sn', CA_LISTED], env);
    expect(await ca.exited).toBe(2);
    expect(await batchCount()).toBe(before);
    // Refused before any call: the listing was not even started.
    expect(emulator.calls().filter((call) => call.action === 'ListDeviceCertificateByCaSn')).toHaveLength(0);
  }, 120_000);

  it('--dry-run prints the plan without a terminal and creates nothing', async () => {
    const before = await batchCount();
    const child = spawnTs('src/cli/main.ts', ['enqueue', file, '--dry-run'], env);
    expect(await child.exited).toBe(0);
    const out = child.output();
    expect(out).toContain(`plan: delete the 1,200 device certificates listed in ${file}`);
    expect(out).toMatch(/devices: +1,200 +\(1 input rows rejected\) +\(1 duplicates, done once\)/);
    expect(out).toContain(`instances:  2 (${INSTANCE}, ${INSTANCE_2})`);
    expect(out).toContain(`CAs:        2 (${INSTANCE}/${CA}, ${INSTANCE_2}/${CA})`);
    expect(out).toContain('budgets:    account 300/s per API operation; egress default 200/s (this host)');
    // 1,200 calls at the egress budget of 200/s.
    expect(out).toContain('calls:      1,200, about 6 s at 200/s');
    expect(out).toContain(`input SHA-256 ${fileSha}`);
    const json = spawnTs('src/cli/main.ts', ['enqueue', file, '--dry-run', '--json'], env);
    expect(await json.exited).toBe(0);
    expect(JSON.parse(json.output().trim()) as unknown).toMatchObject({ batchId: null, accepted: 1_200, rejected: 1, duplicates: 1, dryRun: true, inputSha256: fileSha, plan: { devices: 1_200, calls: 1_200, estimatedSeconds: 6, ratePerSecond: 200 } });
    expect(await batchCount()).toBe(before);
  }, 120_000);

  it('on a terminal: shows the plan, and enqueues only after y', async () => {
    const before = await batchCount();
    const declined = await revokerOnTerminal(['enqueue', file, '--reason', 'test leak'], env, { prompt: '[y/N]', answer: 'n' });
    expect(declined.code).toBe(1);
    expect(declined.out).toContain('plan: delete the 1,200 device certificates');
    expect(declined.out).toContain('delete these 1200 device certificates? [y/N]');
    expect(declined.out).toContain('not confirmed: nothing was changed');
    expect(await batchCount()).toBe(before);

    const accepted = await revokerOnTerminal(['enqueue', file, '--reason', 'test leak', '--reason-code', 'keyCompromise'], env, { prompt: '[y/N]', answer: 'y' });
    expect(accepted.code).toBe(0);
    const batchId = /batch (b-\S+): 1200 devices enqueued/.exec(accepted.out)?.[1];
    expect(batchId).toBeDefined();
    expect(await batchCount()).toBe(before + 1);
    const audit = await reportStores(context).audit.get(batchId!);
    expect(audit).toMatchObject({ reason: 'test leak', reasonCode: 'keyCompromise', inputSha256: fileSha, inputFile: file });
    expect(audit.command).toBe(`revoker enqueue ${file} --reason 'test leak' --reason-code keyCompromise`);
  }, 120_000);

  it('--yes on a terminal asks nothing', async () => {
    const run = await revokerOnTerminal(['enqueue', file, '--yes', '--json'], env);
    expect(run.code).toBe(0);
    expect(run.out).not.toContain('[y/N]');
    expect(run.out).toMatch(/"accepted":1200/);
  }, 120_000);

  it('enqueue-ca lists first, then shows the plan with the listed count and waits for y', async () => {
    const run = await revokerOnTerminal(['enqueue-ca', '--instance', INSTANCE, '--ca-sn', CA_LISTED], env, { prompt: '[y/N]', answer: 'y' });
    expect(run.code).toBe(0);
    expect(run.out).toContain(`plan: delete every device certificate under CA ${CA_LISTED} (250 listed)`);
    expect(run.out).toContain(`CAs:        1 (${INSTANCE}/${CA_LISTED})`);
    expect(run.out).toContain('note:       the listing took 4 calls');
    expect(run.out).toMatch(/batch b-\S+: 250 devices under CA/);
    const dry = spawnTs('src/cli/main.ts', ['enqueue-ca', '--instance', INSTANCE, '--ca-sn', CA_LISTED, '--dry-run', '--json'], env);
    expect(await dry.exited).toBe(0);
    expect(JSON.parse(dry.output().trim().split('\n').at(-1)!) as unknown).toMatchObject({ batchId: null, dryRun: true });
  }, 120_000);
});
