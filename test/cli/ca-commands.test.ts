/**
 * `revoker ca inactivate|activate|delete` against the emulator through the real SDK (every call
 * signature-checked): status read back after inactivate/activate; `ca delete` of 5,000 devices is
 * one DeleteCaCertificate call between two listings, writes a `deleted`/`ca_deleted` record per
 * listed device, and its second listing finds the device the test registers again right after
 * the delete; consent rules (`--confirm SN`, a typed serial on a terminal).
 */
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, DEMO_ACCOUNT, type EmulatorHandle } from '../../src/emulator/index.js';
import { caDeletionField } from '../../src/cli/ca-commands.js';
import { AuditTrail } from '../../src/audit/audit-trail.js';
import { reportStores } from '../../src/report/report-stores.js';
import { writeSealedReport } from '../../src/report/sealed-report.js';
import { verifyReport } from '../../src/report/report-verifier.js';
import type { ResultRecord } from '../../src/results/result-record.js';
import type { Context } from '../../src/runtime/context.js';
import { startPipeline, type Pipeline } from '../helpers/pipeline.js';
import { spawnTs } from '../helpers/processes.js';
import { revokerOnTerminal } from './terminal.js';

const INSTANCE = 'mqtt-cn-catest0001';
const CA_BIG = 'ca0000000000big01';
const CA_TOGGLE = 'ca0000000toggle01';
const CA_SMALL = 'ca00000000small01';
const CA_KEEP = 'ca000000000keep01';

describe('revoker ca', () => {
  let pipeline: Pipeline;
  let emulator: EmulatorHandle;
  let context: Context;
  let env: Record<string, string>;
  const big = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA_BIG, count: 5_000, prefix: 'big' });

  beforeAll(async () => {
    const toggle = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA_TOGGLE, count: 3, prefix: 'tog' });
    const small = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA_SMALL, count: 10, prefix: 'small' });
    const keep = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA_KEEP, count: 20, prefix: 'keep' });
    pipeline = await startPipeline('ca', { emulator: { devices: [...big, ...toggle, ...small, ...keep], latency: { medianMs: 1, p99Ms: 5 } }, env: { RATE_LIMIT_PER_SECOND: '500' } });
    ({ emulator, context, env } = pipeline);
  });
  afterAll(() => pipeline?.close());

  async function revoker(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number | string; out: string }> {
    const child = spawnTs('src/cli/main.ts', args, { ...env, ...extraEnv });
    const code = await child.exited;
    return { code, out: child.output() };
  }

  const callsOf = (action: string) => emulator.calls().filter((call) => call.action === action);

  it('inactivate, then activate (which asks first): each call read back with GetCaCertificate', async () => {
    const inactivated = await revoker(['ca', 'inactivate', '--instance', INSTANCE, '--ca-sn', CA_TOGGLE, '--json']);
    expect(inactivated.code).toBe(0);
    expect(JSON.parse(inactivated.out.trim().split('\n').at(-1)!) as unknown).toMatchObject({ action: 'inactivate', statusBefore: 'active', statusAfter: 'inactive', verified: true });
    expect(emulator.registry.getCa(INSTANCE, CA_TOGGLE)?.status).toBe('0');
    expect(callsOf('InactivateCaCertificate').map((call) => call.httpStatus)).toEqual([200]);

    const refused = await revoker(['ca', 'activate', '--instance', INSTANCE, '--ca-sn', CA_TOGGLE]);
    expect(refused.code).toBe(2);
    expect(refused.out).toContain('pass --yes');
    expect(emulator.registry.getCa(INSTANCE, CA_TOGGLE)?.status).toBe('0');

    const activated = await revoker(['ca', 'activate', '--instance', INSTANCE, '--ca-sn', CA_TOGGLE, '--yes']);
    expect(activated.code).toBe(0);
    expect(activated.out).toContain(`CA ${CA_TOGGLE} on ${INSTANCE}: active (was inactive)`);
    expect(activated.out).toContain('verified: GetCaCertificate now reports it active');
    expect(emulator.registry.getCa(INSTANCE, CA_TOGGLE)?.status).toBe('1');
  }, 120_000);

  it('a call with a bad signature changes nothing; an unknown CA exits 3', async () => {
    const forged = await revoker(['ca', 'inactivate', '--instance', INSTANCE, '--ca-sn', CA_TOGGLE], { ALIBABA_CLOUD_ACCESS_KEY_SECRET: `${DEMO_ACCOUNT.accessKeySecret}-wrong` });
    expect(forged.code).toBe(1);
    expect(forged.out).toContain('SignatureDoesNotMatch');
    expect(emulator.registry.getCa(INSTANCE, CA_TOGGLE)?.status).toBe('1');

    const unknown = await revoker(['ca', 'delete', '--instance', INSTANCE, '--ca-sn', 'ca00000000nothere', '--confirm', 'ca00000000nothere']);
    expect(unknown.code).toBe(3);
    expect(unknown.out).toContain('CA ca00000000nothere is not registered');
  }, 120_000);

  it('ca delete refuses without --confirm (no terminal) or with a different serial, and changes nothing', async () => {
    const before = (await context.batches.list(1_000)).length;
    const noTerminal = await revoker(['ca', 'delete', '--instance', INSTANCE, '--ca-sn', CA_BIG]);
    expect(noTerminal.code).toBe(2);
    expect(noTerminal.out).toContain(`pass --confirm ${CA_BIG}`);
    const yesIsNotEnough = await revoker(['ca', 'delete', '--instance', INSTANCE, '--ca-sn', CA_BIG, '--yes']);
    expect(yesIsNotEnough.code).toBe(2);
    const wrong = await revoker(['ca', 'delete', '--instance', INSTANCE, '--ca-sn', CA_BIG, '--confirm', CA_SMALL]);
    expect(wrong.code).toBe(2);
    expect(wrong.out).toContain('--confirm must repeat the CA serial exactly');
    expect(emulator.registry.count(INSTANCE, CA_BIG)).toBe(5_000);
    expect((await context.batches.list(1_000)).length).toBe(before);
    expect(callsOf('DeleteCaCertificate')).toHaveLength(0);
  }, 120_000);

  it('ca delete --dry-run lists and shows the plan against per-device deletes', async () => {
    const dry = await revoker(['ca', 'delete', '--instance', INSTANCE, '--ca-sn', CA_BIG, '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.out).toContain(`plan: delete CA ${CA_BIG} on ${INSTANCE} and the 5,000 device certificates under it`);
    expect(dry.out).toContain('deleting them one by one would take 5,000 calls');
    expect(dry.out).toContain('cannot be undone');
    expect(callsOf('DeleteCaCertificate')).toHaveLength(0);
  }, 120_000);

  it('ca delete of 5,000 devices: one call, a record per device, and the second listing finds the one registered again', async () => {
    emulator.resetStats();
    const reRegistered = big[1_234]!;
    // An attacker with the leaked CA key registers the CA and one device again the moment it is gone.
    const registry = emulator.registry;
    const original = registry.deleteCa.bind(registry);
    registry.deleteCa = (mqttInstanceId: string, caSn: string) => {
      const removed = original(mqttInstanceId, caSn);
      registry.addDevice({ mqttInstanceId, caSn, deviceSn: reRegistered.deviceSn });
      return removed;
    };
    let run: { code: number | string; out: string };
    try {
      run = await revoker(['ca', 'delete', '--instance', INSTANCE, '--ca-sn', CA_BIG, '--confirm', CA_BIG, '--reason', 'CA key leaked', '--reason-code', 'cACompromise', '--json']);
    } finally {
      registry.deleteCa = original;
    }
    expect(run.code).toBe(1);
    const summary = JSON.parse(run.out.trim().split('\n').at(-1)!) as { batchId: string; listed: number; caDeleted: boolean; stillListed: number; stillListedDevices: { deviceSn: string }[] };
    expect(summary).toMatchObject({ listed: 5_000, caDeleted: true, stillListed: 1 });
    expect(summary.stillListedDevices.map((device) => device.deviceSn)).toEqual([reRegistered.deviceSn]);
    expect(run.out).toContain(`second listing: 1 device certificate(s) STILL under CA ${CA_BIG}`);
    expect(run.out).toContain(`  ${reRegistered.deviceSn}  active`);

    // One delete instead of 5,000; 51 listing pages before (the 50th is full; up to two more asked
    // for while the 51st was on its way), one after (one device left: one page).
    expect(callsOf('DeleteCaCertificate').map((call) => call.httpStatus)).toEqual([200]);
    expect(callsOf('DeleteDeviceCertificate')).toHaveLength(0);
    expect(callsOf('ListDeviceCertificateByCaSn').length).toBeGreaterThanOrEqual(52);
    expect(callsOf('ListDeviceCertificateByCaSn').length).toBeLessThanOrEqual(54);
    expect(emulator.registry.count(INSTANCE, CA_KEEP)).toBe(20);

    const batch = await context.batches.get(summary.batchId);
    expect(batch).toMatchObject({ state: 'completed', accepted: 5_000, done: 5_000, source: 'ca_listing', priority: 'urgent' });
    expect(batch!.counts.deleted).toBe(5_000);
    const deleteCall = callsOf('DeleteCaCertificate')[0]!;
    for (const device of [big[0]!, reRegistered, big[4_999]!]) {
      const record = (await context.results.get(summary.batchId, caDeletionField(device))) as ResultRecord;
      expect(record).toMatchObject({ outcome: 'deleted', evidence: 'ca_deleted', attempts: 0, requestId: deleteCall.requestId, deviceSn: device.deviceSn });
    }
    const { order, audit } = reportStores(context);
    expect(await audit.get(summary.batchId)).toMatchObject({ reason: 'CA key leaked', reasonCode: 'cACompromise' });
    const trail = await new AuditTrail(context.redis, context.keys, 30).list(summary.batchId);
    expect(trail.map((entry) => entry.args.command)).toEqual(['ca delete']);

    // Its sealed report lists the devices in listing order, every one ca_deleted, and verifies.
    let report = '';
    const sink = { write: (chunk: string) => ((report += chunk), true) } as unknown as NodeJS.WritableStream;
    const { header } = await writeSealedReport(batch!, sink, { results: context.results, batches: context.batches, order, audit }, { format: 'ndjson', signingKey: null, generatedBy: 'test' });
    expect(header).toMatchObject({ evidence: { ca_deleted: 5_000 }, order: 'input line, then device', reasonCode: { name: 'cACompromise', value: 2 } });
    const lines = report.trimEnd().split('\n');
    expect(JSON.parse(lines[1]!)).toMatchObject({ deviceSn: big[0]!.deviceSn, line: 1 });
    expect(JSON.parse(lines[5_000]!)).toMatchObject({ deviceSn: big[4_999]!.deviceSn, line: 5_000 });
    expect((await verifyReport(Readable.from([report]))).ok).toBe(true);
  }, 120_000);

  it('ca delete on a terminal wants the serial typed', async () => {
    const wrong = await revokerOnTerminal(['ca', 'delete', '--instance', INSTANCE, '--ca-sn', CA_SMALL], env, { prompt: 'to delete it and its 10 device certificates:', answer: 'yes' });
    expect(wrong.code).toBe(1);
    expect(wrong.out).toContain('the serial typed does not match: nothing was changed');
    expect(emulator.registry.count(INSTANCE, CA_SMALL)).toBe(10);

    const typed = await revokerOnTerminal(['ca', 'delete', '--instance', INSTANCE, '--ca-sn', CA_SMALL], env, { prompt: 'to delete it and its 10 device certificates:', answer: CA_SMALL });
    expect(typed.code).toBe(0);
    expect(typed.out).toContain(`CA ${CA_SMALL} deleted with its 10 listed device certificates`);
    expect(typed.out).toContain(`second listing: no device certificate under CA ${CA_SMALL}`);
    expect(emulator.registry.getCa(INSTANCE, CA_SMALL)).toBeUndefined();
  }, 120_000);
});
