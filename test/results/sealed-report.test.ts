/**
 * Sealed reports against a real Redis: lines in input order (rejected rows at their lines), the
 * header's facts and counts, the chain and signature verified, and every kind of edit caught —
 * a byte in a record line or in the header (line named), a removed line, a cut-off seal, a wrong
 * public key, and a chain rewritten after an edit (caught by the signature only).
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/config.js';
import { readDeviceCsv } from '../../src/producer/csv-source.js';
import { Enqueuer } from '../../src/producer/enqueuer.js';
import { revocationJobId } from '../../src/queue/job-id.js';
import { parseCsvRecord } from '../../src/report/csv-records.js';
import { appendChain, CHAIN_SEED, chainNext, splitChain, type SealedFormat } from '../../src/report/report-chain.js';
import type { ReportHeader } from '../../src/report/report-header.js';
import { reportStores } from '../../src/report/report-stores.js';
import { writeSealedReport } from '../../src/report/sealed-report.js';
import { verifyReport } from '../../src/report/report-verifier.js';
import { REPORT_COLUMNS } from '../../src/results/report-format.js';
import type { Evidence, Outcome } from '../../src/results/result-record.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { removePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.js';

const INSTANCE = 'mqtt-cn-sealed0001';
const CA = 'ca000000000sealed';

/** Input: 8 devices on lines 2-10 with two bad rows (lines 4 and 8) and one duplicate (line 10). */
const CSV = ['DeviceSn', 'dev-h', 'dev-c', 'bad sn', 'dev-a', 'dev-g', 'dev-b', 'two words', 'dev-f', 'dev-c', 'dev-e', 'dev-d'].join('\n') + '\n';
/** Outcome and evidence per device (dev-d stays pending). */
const RESULTS: Record<string, [Outcome, Evidence] | null> = {
  'dev-a': ['deleted', 'answer'],
  'dev-b': ['deleted', 'snapshot'],
  'dev-c': ['not_found', 'answer'],
  'dev-e': ['gone', 'read'],
  'dev-f': ['failed', 'answer'],
  'dev-g': ['deleted', 'ca_deleted'],
  'dev-h': ['cancelled', 'none'],
  'dev-d': null,
};

function text(value: string): AsyncIterable<Buffer> {
  return Readable.from([Buffer.from(value, 'utf8')]);
}

describe('sealed reports', () => {
  const prefix = uniquePrefix('sealed');
  let context: Context;
  let batchId: string;
  const signer = generateKeyPairSync('ed25519');
  const stranger = generateKeyPairSync('ed25519');

  async function render(id: string, format: SealedFormat, signingKey: KeyObject | null): Promise<string> {
    const batch = await context.batches.get(id);
    if (batch === null) throw new Error('no batch');
    let out = '';
    const sink = { write: (chunk: string) => ((out += chunk), true) } as unknown as NodeJS.WritableStream;
    const { order, audit } = reportStores(context);
    await writeSealedReport(batch, sink, { results: context.results, batches: context.batches, order, audit }, { format, signingKey, generatedBy: 'tester@host' });
    return out;
  }

  beforeAll(async () => {
    context = openContext(resolveConfig({ REDIS_URL: TEST_REDIS_URL, REVOKER_PREFIX: prefix, LOG_LEVEL: 'silent' }), 'test-sealed');
    const { order, audit } = reportStores(context);
    batchId = await context.batches.create({ name: 'sealed', source: 'csv', action: 'delete', createdBy: 'alice@ops-1' });
    await audit.set(batchId, { reason: 'leaked key, ticket 42', reasonCode: 'keyCompromise', command: 'revoker enqueue leak.csv --yes', inputFile: '/tmp/leak.csv', inputSha256: 'ab'.repeat(32) });
    const items = readDeviceCsv(text(CSV), { defaultInstanceId: INSTANCE, defaultCaSn: CA });
    await new Enqueuer(context.queue, context.batches, context.results).enqueue(batchId, 'delete', order.tap(batchId, 'delete', items));
    for (const [deviceSn, result] of Object.entries(RESULTS)) {
      if (result === null) continue;
      const ref = { mqttInstanceId: INSTANCE, caSn: CA, deviceSn };
      await context.results.finalize(revocationJobId(ref, 'delete'), {
        batchId,
        ...ref,
        action: 'delete',
        outcome: result[0],
        evidence: result[1],
        attempts: 1,
        requestId: `REQ-${deviceSn}`,
        errorCode: null,
        httpStatus: null,
        message: deviceSn === 'dev-f' ? 'multi\nline, "quoted" message' : null,
        firstAttemptAt: '2024-05-01T10:00:00.000Z',
        finishedAt: '2024-05-01T10:00:01.000Z',
      });
    }
  });
  afterAll(async () => {
    await context?.close();
    await removePrefix(prefix);
  });

  it('lists devices and rejected rows in input line order, with a header of who, why, input hash and counts', async () => {
    const report = await render(batchId, 'ndjson', null);
    const lines = report.trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const header = lines[0] as unknown as ReportHeader & { chain: string };
    expect(header).toMatchObject({
      type: 'header',
      format: 'revoker-report/1',
      batchId,
      startedBy: 'alice@ops-1',
      startedVia: 'revoker enqueue leak.csv --yes',
      reason: 'leaked key, ticket 42',
      reasonCode: { name: 'keyCompromise', value: 1 },
      inputSha256: 'ab'.repeat(32),
      accepted: 8,
      rejected: 2,
      duplicates: 1,
      lines: 10,
      order: 'input line, then device',
      generatedBy: 'tester@host',
    });
    expect(header.counts).toMatchObject({ deleted: 3, not_found: 1, gone: 1, failed: 1, cancelled: 1, pending: 1, rejected: 2, inactivated: 0 });
    expect(header.evidence).toEqual({ answer: 3, ca_deleted: 1, none: 1, read: 1, snapshot: 1 });
    const body = lines.slice(1, -1);
    expect(body.map((line) => [line.line, line.deviceSn ?? null, line.outcome])).toEqual([
      [2, 'dev-h', 'cancelled'],
      [3, 'dev-c', 'not_found'],
      [4, 'bad sn', 'rejected'],
      [5, 'dev-a', 'deleted'],
      [6, 'dev-g', 'deleted'],
      [7, 'dev-b', 'deleted'],
      [8, 'two words', 'rejected'],
      [9, 'dev-f', 'failed'],
      // dev-c again on line 10: a duplicate, listed once at its first line.
      [11, 'dev-e', 'gone'],
      [12, 'dev-d', 'pending'],
    ]);
    expect(lines.at(-1)).toMatchObject({ type: 'seal', lines: 11, signature: null });
    // The same batch renders the same lines again (the chain values differ: the header, which
    // starts the chain, carries the time it was generated).
    const again = await render(batchId, 'ndjson', null);
    const contents = (value: string) => value.split('\n').slice(1, -2).map((line) => splitChain('ndjson', line)?.content);
    expect(contents(again)).toEqual(contents(report));
  });

  it('a signed CSV report verifies with the signer key, and is refused with another key', async () => {
    const report = await render(batchId, 'csv', signer.privateKey);
    const rows = report.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^#header,"\{/);
    expect(rows[1]).toBe(`${[...REPORT_COLUMNS, 'chain'].join(',')},${splitChain('csv', rows[1]!)!.chain}`);
    const verified = await verifyReport(text(report), { publicKey: signer.publicKey });
    expect(verified).toMatchObject({ ok: true, format: 'csv', batchId, chainedLines: 12, firstChanged: null, countsMatch: true, problems: [] });
    expect(verified.signature).toMatchObject({ status: 'valid', checkedWith: 'given' });
    // Without a key given, it is checked with the key in the seal (and says so).
    expect((await verifyReport(text(report))).signature).toMatchObject({ status: 'valid', checkedWith: 'embedded' });

    const wrong = await verifyReport(text(report), { publicKey: stranger.publicKey });
    expect(wrong.ok).toBe(false);
    expect(wrong.signature.status).toBe('invalid');
    expect(wrong.problems.join(' ')).toMatch(/not from the given public key/);
  });

  it('names the line when one byte of a record line changes (CSV and NDJSON)', async () => {
    for (const format of ['csv', 'ndjson'] as const) {
      const report = await render(batchId, format, signer.privateKey);
      // dev-b's line: an attacker turns 'snapshot' evidence into 'answer'-looking text, one byte.
      const physical = report.split('\n');
      const index = physical.findIndex((line) => line.includes('dev-b'));
      physical[index] = physical[index]!.replace('snapshot', 'snapshoT');
      const result = await verifyReport(text(physical.join('\n')), { publicKey: signer.publicKey });
      expect(result.ok).toBe(false);
      expect(result.firstChanged).toMatchObject({ line: index + 1, what: 'device dev-b' });
      expect(result.brokenLines).toBe(1);
      expect(result.problems[0]).toMatch(new RegExp(`^line ${index + 1} \\(device dev-b\\) was changed`));
      expect(result.signature.status).toBe('invalid');
    }
  });

  it('names line 1 when one byte of the header changes', async () => {
    const report = await render(batchId, 'csv', signer.privateKey);
    const changed = report.replace('alice@ops-1', 'mallo@ops-1');
    const result = await verifyReport(text(changed), { publicKey: signer.publicKey });
    expect(result.ok).toBe(false);
    expect(result.firstChanged).toMatchObject({ line: 1, what: 'header' });
    expect(result.problems[0]).toMatch(/^line 1 \(header\) was changed/);
  });

  it('counts a multi-line CSV cell as one record and names physical lines after it correctly', async () => {
    const report = await render(batchId, 'csv', signer.privateKey);
    const physical = report.split('\n');
    // dev-f's message spans two physical lines: the line after it is dev-e on physical line +2.
    const devE = physical.findIndex((line) => line.includes('dev-e'));
    expect(physical[devE - 1]).toMatch(/^line, ""quoted"" message"/);
    physical[devE] = physical[devE]!.replace('gone', 'deleted');
    const result = await verifyReport(text(physical.join('\n')));
    expect(result.firstChanged).toMatchObject({ line: devE + 1, what: 'device dev-e' });
  });

  it('catches a removed line, lines after the seal, a cut-off seal and Windows line endings', async () => {
    const report = await render(batchId, 'ndjson', signer.privateKey);
    const physical = report.trimEnd().split('\n');
    const removed = [...physical.slice(0, 4), ...physical.slice(5)].join('\n');
    const afterRemoval = await verifyReport(text(removed));
    expect(afterRemoval.ok).toBe(false);
    expect(afterRemoval.firstChanged?.line).toBe(5);
    expect(afterRemoval.problems.join(' ')).toMatch(/the seal covers 11 lines but the file has 10/);

    const appended = await verifyReport(text(`${report}{"deviceSn":"extra"}\n`));
    expect(appended.ok).toBe(false);
    expect(appended.problems.join(' ')).toMatch(/line 13 comes after the seal/);

    const cut = await verifyReport(text(physical.slice(0, -1).join('\n')));
    expect(cut.ok).toBe(false);
    expect(cut.problems.join(' ')).toMatch(/seal line .* is missing/);

    const crlf = await verifyReport(text(report.replace(/\n/g, '\r\n')));
    expect(crlf.ok).toBe(true);
    const csv = await render(batchId, 'csv', null);
    const crlfCsv = await verifyReport(text(csv.replace(/\n/g, '\r\n').replace('alice', 'alicE')));
    expect(crlfCsv.problems.join(' ')).toMatch(/Windows line endings/);
  });

  it('a chain rewritten after an edit passes line by line but fails the signature', async () => {
    const report = await render(batchId, 'ndjson', signer.privateKey);
    const physical = report.trimEnd().split('\n');
    const seal = physical.pop()!;
    let chain = CHAIN_SEED;
    const forged = physical.map((line) => {
      const content = splitChain('ndjson', line)!.content.replace('"outcome":"failed"', '"outcome":"deleted"');
      chain = chainNext(chain, content);
      return appendChain('ndjson', content, chain);
    });
    const forgedSeal = seal.replace(/"finalHash":"[0-9a-f]{64}"/, `"finalHash":"${chain}"`);
    const result = await verifyReport(text(`${[...forged, forgedSeal].join('\n')}\n`), { publicKey: signer.publicKey });
    expect(result.brokenLines).toBe(0);
    expect(result.ok).toBe(false);
    expect(result.signature.status).toBe('invalid');
    // The header's counts still say 1 failed: the recount notices too.
    expect(result.countsMatch).toBe(false);
    expect(result.problems.join(' ')).toMatch(/signature does not match/);
  });

  it('an unsigned report verifies its chain, and fails when a public key is required', async () => {
    const report = await render(batchId, 'csv', null);
    expect(await verifyReport(text(report))).toMatchObject({ ok: true, signature: { status: 'absent' } });
    const required = await verifyReport(text(report), { publicKey: signer.publicKey });
    expect(required.ok).toBe(false);
    expect(required.problems.join(' ')).toMatch(/not signed/);
  });

  it('a batch enqueued without a recorded order lists its devices by device, and says so', async () => {
    const id = await context.batches.create({ name: 'no order', source: 'webhook', action: 'delete', createdBy: 'webhook:w1' });
    const serials = ['z9', 'a1', 'm5'];
    await new Enqueuer(context.queue, context.batches, context.results).enqueue(
      id,
      'delete',
      serials.map((deviceSn, index) => ({ kind: 'device' as const, request: { mqttInstanceId: INSTANCE, caSn: CA, deviceSn, line: index } })),
    );
    const report = await render(id, 'csv', null);
    const rows = report.trimEnd().split('\n');
    const header = JSON.parse(parseCsvRecord(splitChain('csv', rows[0]!)!.content)[1]!) as ReportHeader;
    expect(header.order).toBe('input line, then device; devices without a recorded line last, by device');
    expect(header.startedVia).toBe('a signed webhook delivery');
    const devices = rows.slice(2, -1).map((row) => parseCsvRecord(row)[REPORT_COLUMNS.indexOf('deviceSn')]);
    expect(devices).toEqual(['a1', 'm5', 'z9']);
    expect((await verifyReport(text(report))).ok).toBe(true);
  });

  it('keeps a device at its first line when the input repeats it', async () => {
    const { order } = reportStores(context);
    await order.record('b-order-test', [
      { field: 'r-x', line: 7 },
      { field: 'r-y', line: 3 },
      { field: 'r-x', line: 9 },
    ]);
    await order.record('b-order-test', [{ field: 'r-y', line: 1 }]);
    const pages = [];
    for await (const page of order.pages('b-order-test')) pages.push(...page);
    expect(pages).toEqual([
      { field: 'r-y', line: 3 },
      { field: 'r-x', line: 7 },
    ]);
  });
});
