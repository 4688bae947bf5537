/**
 * A signed report end to end: a batch revoked through the CLI, its report signed with the key in
 * REPORT_SIGNING_KEY_FILE, then `revoker verify-report` as a process: verified with the signer's
 * public key; one byte changed in a record line and in the header (each refused, line named);
 * refused with another public key.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeReport, type ReportFlags } from '../../src/cli/report-command.js';
import { generateDevices } from '../../src/emulator/index.js';
import type { Context } from '../../src/runtime/context.js';
import { startPipeline, type Pipeline } from '../helpers/pipeline.js';
import { spawnTs } from '../helpers/processes.js';
import { waitFor } from '../helpers/redis.js';

const INSTANCE = 'mqtt-cn-reportv001';
const CA = 'ca00000000report1';

describe('signed reports and revoker verify-report', () => {
  let pipeline: Pipeline;
  let context: Context;
  let env: Record<string, string>;
  let dir: string;
  let batchId: string;
  let publicKeyFile: string;
  let strangerKeyFile: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'revoker-report-'));
    const signer = generateKeyPairSync('ed25519');
    const stranger = generateKeyPairSync('ed25519');
    const privateKeyFile = join(dir, 'signing.pem');
    publicKeyFile = join(dir, 'signing.pub.pem');
    strangerKeyFile = join(dir, 'stranger.pub.pem');
    await writeFile(privateKeyFile, signer.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await writeFile(publicKeyFile, signer.publicKey.export({ type: 'spki', format: 'pem' }));
    await writeFile(strangerKeyFile, stranger.publicKey.export({ type: 'spki', format: 'pem' }));

    const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 40, prefix: 'rep' });
    pipeline = await startPipeline('reportv', { emulator: { devices, latency: { medianMs: 1, p99Ms: 5 } }, env: { REPORT_SIGNING_KEY_FILE: privateKeyFile } });
    ({ context, env } = pipeline);
    const file = join(dir, 'devices.csv');
    await writeFile(file, `DeviceSn\n${devices.map((device) => device.deviceSn).join('\n')}\nnot-registered-1\nbad sn\n`);
    const child = spawnTs('src/cli/main.ts', ['enqueue', file, '--instance', INSTANCE, '--ca-sn', CA, '--yes', '--json', '--reason', 'decommission', '--reason-code', 'cessationOfOperation'], env);
    expect(await child.exited).toBe(0);
    batchId = (JSON.parse(child.output().trim().split('\n').at(-1)!) as { batchId: string }).batchId;
    await waitFor(async () => ((await context.batches.get(batchId))?.state === 'completed' ? true : null), 'the batch to finish', 60_000, 100);
  }, 120_000);
  afterAll(async () => {
    await pipeline?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function reportTo(path: string, flags: ReportFlags, ctx: Context = context): Promise<void> {
    const batch = await ctx.batches.get(batchId);
    const out = createWriteStream(path);
    await writeReport(ctx, batch!, flags, out);
    out.end();
    await once(out, 'finish');
  }

  async function verifyReportCli(file: string, publicKey?: string): Promise<{ code: number | string; out: string }> {
    const child = spawnTs('src/cli/main.ts', ['verify-report', file, ...(publicKey !== undefined ? ['--public-key', publicKey] : [])], env);
    return { code: await child.exited, out: child.output() };
  }

  it('signs the report; verify-report accepts it with the signer key and refuses another key', async () => {
    const path = join(dir, 'signed.csv');
    await reportTo(path, { format: 'csv', sign: true });
    const text = await readFile(path, 'utf8');
    expect(text).toContain('"reasonCode"":{""name"":""cessationOfOperation"",""value"":5}');
    expect(text.trimEnd().split('\n').at(-1)).toMatch(/^#seal,".*""algorithm"":""ed25519""/);

    const ok = await verifyReportCli(path, publicKeyFile);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain(`verified. Batch ${batchId}, 44 chained lines, chain intact, header counts match the lines; signature valid`);
    expect(ok.out).toContain('the key given');

    const wrongKey = await verifyReportCli(path, strangerKeyFile);
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.out).toContain('FAILED verification');
    expect(wrongKey.out).toContain('the signature is not from the given public key');
  }, 120_000);

  it('names the line when one byte changes in a record line, and line 1 when it changes in the header', async () => {
    const path = join(dir, 'tampered.ndjson');
    await reportTo(path, { format: 'ndjson', sign: true });
    const original = await readFile(path, 'utf8');
    const lines = original.split('\n');
    const target = lines.findIndex((line) => line.includes('not-registered-1'));
    expect(lines[target]).toContain('"outcome":"not_found"');
    lines[target] = lines[target]!.replace('"attempts":1', '"attempts":2');
    await writeFile(path, lines.join('\n'));
    const record = await verifyReportCli(path, publicKeyFile);
    expect(record.code).toBe(1);
    expect(record.out).toContain(`line ${target + 1} (device not-registered-1) was changed`);

    await writeFile(path, original.replace('"reason":"decommission"', '"reason":"decommissioN"'));
    const header = await verifyReportCli(path, publicKeyFile);
    expect(header.code).toBe(1);
    expect(header.out).toContain('line 1 (header) was changed');
  }, 120_000);

  it('refuses to sign without a key, an unfinished batch, or a plain report', async () => {
    const path = join(dir, 'refused.csv');
    const keyless = { ...context, config: { ...context.config, reportSigningKeyFile: null } };
    await expect(reportTo(path, { format: 'csv', sign: true }, keyless)).rejects.toThrow(/--sign needs REPORT_SIGNING_KEY_FILE/);
    await expect(reportTo(path, { format: 'csv', sign: true, plain: true })).rejects.toThrow(/--plain reports have no seal/);
    const open = await context.batches.create({ name: 'open', source: 'csv', action: 'delete', createdBy: 'test' });
    const batch = await context.batches.get(open);
    await expect(writeReport(context, batch!, { format: 'csv', sign: true }, createWriteStream(join(dir, 'open.csv')))).rejects.toThrow(/sign its report once it is finished/);
    // The plain report is the bare table, in input order.
    await reportTo(path, { format: 'csv', plain: true });
    const rows = (await readFile(path, 'utf8')).trimEnd().split('\n');
    expect(rows[0]).toMatch(/^batchId,mqttInstanceId,caSn,deviceSn,action,outcome,evidence,attempts/);
    expect(rows).toHaveLength(1 + 42);
    expect(rows.at(-1)).toContain('rejected');
    expect(rows.at(-2)).toContain('not-registered-1');
  }, 120_000);
});
