/**
 * Proof after the fact:
 * - `revoker verify BATCH [--sample N] [--requeue]` reads every revoked device of a finished batch
 *   back with GetDeviceCertificate (through the rate budgets, at read priority) and lists any
 *   certificate that is registered again (after a delete) or active again (after an inactivate):
 *   after a CA key leak an attacker can register new ones. `--requeue` revokes those in a new
 *   batch linked to the first.
 * - `revoker verify-report FILE [--public-key PEM]` checks a sealed report's chain and signature
 *   and names the first line that was changed.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import type { KeyObject } from 'node:crypto';
import type { Batch } from '../batches/batch.js';
import { CertificateApi } from '../cloud/certificate-api.js';
import { createLogger } from '../logging/logger.js';
import type { InputItem } from '../producer/device-request.js';
import { Intake, intakeDeps } from '../producer/intake.js';
import { parsePublicKey, SigningKeyError } from '../report/report-signature.js';
import { reportStores } from '../report/report-stores.js';
import { verifyReport, type ReportVerification } from '../report/report-verifier.js';
import { REVOKED_OUTCOMES, type PendingRecord, type ResultRecord } from '../results/result-record.js';
import type { Context } from '../runtime/context.js';
import { ApiCallError, openApiCaller, type ApiCaller } from './api-caller.js';
import { batchFinished } from './batch-commands.js';
import { auditCli } from './cli-actor.js';
import { CliError, EXIT, loadConfig, withContext } from './cli-context.js';
import { confirmYes, requireConsentPossible } from './consent.js';
import { priorityFlag } from './enqueue-commands.js';
import { commandLine, operatorName, REASON_CODE_HELP, reasonFlags } from './operator.js';
import { estimateSeconds, formatPlan, readPlanBudgets } from './plan.js';
import { ProgressLine } from './progress-line.js';
import { escapeControl, jsonForTerminal } from './terminal-text.js';

interface VerifyFlags {
  sample?: string;
  requeue?: boolean;
  concurrency: string;
  priority: string;
  json?: boolean;
  yes?: boolean;
  reason?: string;
  reasonCode?: string;
}

/** Findings printed one by one (all of them go to the requeued batch). */
const MAX_PRINTED = 100;

/** What a re-read found for one device. */
export type Finding = 'still_revoked' | 'registered_again' | 'active_again' | 'unreadable';

/** What `verify` found, per device class (also stored with the batch's audit facts). */
export interface VerifySummary {
  batchId: string;
  action: string;
  /** Devices whose record says revoked (deleted, inactivated, not_found, gone). */
  eligible: number;
  checked: number;
  sampled: boolean;
  stillRevoked: number;
  registeredAgain: number;
  activeAgain: number;
  unreadable: number;
  /** Devices not checked: not revoked by the batch (failed, cancelled) or not finished. */
  skipped: { failed: number; cancelled: number; pending: number };
  requeuedBatchId: string | null;
}

/** Decides what a GetDeviceCertificate answer means for a device the batch revoked. Pure. */
export function judgeRead(action: string, read: { found: false } | { found: true; status: string }): Finding {
  if (!read.found) return 'still_revoked';
  if (action === 'delete') return 'registered_again';
  // Inactivated: an inactive certificate is still revoked; an active one is not.
  return read.status === '0' ? 'still_revoked' : 'active_again';
}

function positiveInt(value: string, flag: string, max: number): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1 || parsed > max) throw new CliError(`${flag} must be an integer from 1 to ${max}, got '${value}'`);
  return parsed;
}

type FinalRecord = ResultRecord;

/** The records `verify` checks: all revoked ones, or a uniform sample of `sample` of them. */
async function* candidates(records: AsyncIterable<ResultRecord | PendingRecord>, summary: VerifySummary, sample: number | null): AsyncGenerator<FinalRecord> {
  const reservoir: FinalRecord[] = [];
  for await (const record of records) {
    if (record.outcome === 'pending') {
      summary.skipped.pending += 1;
      continue;
    }
    if (record.outcome === 'failed' || record.outcome === 'cancelled') {
      summary.skipped[record.outcome] += 1;
      continue;
    }
    if (!REVOKED_OUTCOMES.includes(record.outcome)) continue;
    summary.eligible += 1;
    if (sample === null) {
      yield record;
      continue;
    }
    // Reservoir sampling: every revoked device has the same chance, in memory for `sample` only.
    if (reservoir.length < sample) reservoir.push(record);
    else {
      const slot = Math.floor(Math.random() * summary.eligible);
      if (slot < sample) reservoir[slot] = record;
    }
  }
  yield* reservoir;
}

async function readBack(caller: ApiCaller, api: CertificateApi, record: FinalRecord): Promise<{ found: false } | { found: true; status: string } | { error: string }> {
  const ref = { mqttInstanceId: record.mqttInstanceId, caSn: record.caSn, deviceSn: record.deviceSn };
  try {
    const result = await caller.call('GetDeviceCertificate', `GetDeviceCertificate ${record.deviceSn}`, () => api.getDevice(ref));
    const data = result.body.Data as { Status?: unknown } | undefined;
    const status = typeof data?.Status === 'string' || typeof data?.Status === 'number' ? String(data.Status) : '';
    return { found: true, status };
  } catch (error) {
    if (error instanceof ApiCallError) {
      if (error.failure.code === 'FindDeviceBySnError') return { found: false };
      return { error: error.failure.code };
    }
    throw error;
  }
}

async function verifyBatch(batchId: string, flags: VerifyFlags): Promise<number> {
  const sample = flags.sample !== undefined ? positiveInt(flags.sample, '--sample', 10_000_000) : null;
  const concurrency = positiveInt(flags.concurrency, '--concurrency', 256);
  const priority = priorityFlag(flags.priority);
  const why = reasonFlags(flags);
  if (flags.requeue === true) requireConsentPossible(flags);
  const config = loadConfig();
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, 'revoker-verify');
  const api = new CertificateApi({ endpoint: config.apiEndpoint, protocol: config.apiProtocol, timeoutMs: config.apiTimeoutMs, credentials: config.credentials });
  const progress = new ProgressLine(process.stderr);
  const out = flags.json === true ? process.stderr : process.stdout;
  const dir = await mkdtemp(join(tmpdir(), 'revoker-verify-'));
  return withContext('revoker-verify', async (context) => {
    const batch: Batch | null = await context.batches.get(batchId);
    if (batch === null) throw new CliError(`batch ${batchId} not found (wrong id, or expired after the retention period)`, EXIT.notFound);
    if (!batchFinished(batch)) throw new CliError(`batch ${batchId} is ${batch.state}: verify it once it is finished (revoker status ${batchId} --wait)`);
    const caller = await openApiCaller(context, api, log);
    const foundFile = join(dir, 'found.ndjson');
    const found = createWriteStream(foundFile);
    try {
      const summary: VerifySummary = {
        batchId,
        action: batch.action,
        eligible: 0,
        checked: 0,
        sampled: sample !== null,
        stillRevoked: 0,
        registeredAgain: 0,
        activeAgain: 0,
        unreadable: 0,
        skipped: { failed: 0, cancelled: 0, pending: 0 },
        requeuedBatchId: null,
      };
      const unreadableCodes = new Map<string, number>();
      let printed = 0;
      const source = candidates(context.results.scan(batchId), summary, sample);
      // `concurrency` readers pull from one generator (its next() calls queue), each call taking
      // its slot from the read budget first.
      const reader = async (): Promise<void> => {
        for (let next = await source.next(); next.done !== true; next = await source.next()) {
          const record = next.value;
          const read = await readBack(caller, api, record);
          summary.checked += 1;
          if ('error' in read) {
            summary.unreadable += 1;
            unreadableCodes.set(read.error, (unreadableCodes.get(read.error) ?? 0) + 1);
          } else {
            const finding = judgeRead(batch.action, read);
            if (finding === 'still_revoked') summary.stillRevoked += 1;
            else {
              if (finding === 'registered_again') summary.registeredAgain += 1;
              else summary.activeAgain += 1;
              const line = { mqttInstanceId: record.mqttInstanceId, caSn: record.caSn, deviceSn: record.deviceSn, status: read.found ? read.status : '', finding };
              if (!found.write(`${JSON.stringify(line)}\n`)) await once(found, 'drain');
              if (printed < MAX_PRINTED) {
                printed += 1;
                progress.done();
                out.write(escapeControl(`${finding === 'registered_again' ? 'registered again' : 'active again'}: ${record.mqttInstanceId} ${record.caSn} ${record.deviceSn} (was ${record.outcome})`) + '\n');
              }
            }
          }
          progress.update(`verify ${batchId}: checked ${summary.checked}${sample !== null ? ` of a sample of ${Math.min(sample, summary.eligible)}` : ''}  registered again ${summary.registeredAgain}  active again ${summary.activeAgain}  unreadable ${summary.unreadable}`);
        }
      };
      await Promise.all(Array.from({ length: concurrency }, reader));
      found.end();
      await once(found, 'close');
      progress.done();
      const foundCount = summary.registeredAgain + summary.activeAgain;
      const { audit } = reportStores(context);
      await audit.set(batchId, { verifiedAt: new Date().toISOString(), verification: { ...summary, unreadableCodes: Object.fromEntries(unreadableCodes) } });

      if (flags.requeue === true && foundCount > 0) {
        summary.requeuedBatchId = await requeue(context, batch, foundFile, foundCount, { flags, priority, why, out });
        await audit.set(batchId, { verification: { ...summary, unreadableCodes: Object.fromEntries(unreadableCodes) } });
      }

      if (flags.json === true) process.stdout.write(`${jsonForTerminal({ ...summary, unreadableCodes: Object.fromEntries(unreadableCodes) })}\n`);
      else {
        const scope = sample !== null ? `a sample of ${summary.checked} of ${summary.eligible}` : `${summary.checked} of ${summary.eligible}`;
        out.write(
          `verify ${batchId} (${batch.action}): checked ${scope} revoked devices: ${summary.stillRevoked} still revoked, ${summary.registeredAgain} registered again, ${summary.activeAgain} active again, ${summary.unreadable} unreadable` +
            `${unreadableCodes.size > 0 ? ` (${[...unreadableCodes].map(([code, count]) => `${escapeControl(code)} ×${count}`).join(', ')})` : ''}\n`,
        );
        const skipped = summary.skipped.failed + summary.skipped.cancelled + summary.skipped.pending;
        if (skipped > 0) out.write(`not checked: ${summary.skipped.failed} failed, ${summary.skipped.cancelled} cancelled, ${summary.skipped.pending} pending (the batch did not revoke them: see revoker dlq list --batch ${batchId})\n`);
        if (foundCount > printed) out.write(`… ${foundCount - printed} more not printed\n`);
        if (summary.requeuedBatchId !== null) out.write(`requeued: batch ${summary.requeuedBatchId} revokes the ${foundCount} found; follow it with: revoker status ${summary.requeuedBatchId} --watch\n`);
        else if (foundCount > 0) out.write(`revoke them again with: revoker verify ${batchId} --requeue\n`);
      }
      return foundCount === 0 && summary.unreadable === 0 ? EXIT.ok : EXIT.incomplete;
    } finally {
      found.destroy();
      await caller.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
}

/** The found devices as input items, in the order they were found (each one's position is its line). */
async function* foundItems(foundFile: string): AsyncGenerator<InputItem> {
  let position = 0;
  for await (const text of createInterface({ input: createReadStream(foundFile), crlfDelay: Infinity })) {
    if (text === '') continue;
    position += 1;
    const device = JSON.parse(text) as { mqttInstanceId: string; caSn: string; deviceSn: string };
    yield { kind: 'device', request: { mqttInstanceId: device.mqttInstanceId, caSn: device.caSn, deviceSn: device.deviceSn, line: position } };
  }
}

/** Enqueues the found devices into a new batch linked to `batch` (through the intake); returns its id. */
async function requeue(
  context: Context,
  batch: Batch,
  foundFile: string,
  count: number,
  options: { flags: VerifyFlags; priority: ReturnType<typeof priorityFlag>; why: ReturnType<typeof reasonFlags>; out: NodeJS.WritableStream },
): Promise<string> {
  const budgets = await readPlanBudgets(context);
  options.out.write(
    formatPlan({
      title: `${batch.action} the ${count} device certificates found ${batch.action === 'delete' ? 'registered' : 'active'} again, in a new batch linked to ${batch.id}`,
      action: batch.action,
      devices: count,
      rejected: 0,
      duplicates: 0,
      instances: [],
      cas: [],
      budgets,
      calls: count,
      estimatedSeconds: estimateSeconds(count, budgets),
      notes: [],
    }),
  );
  if (options.flags.yes !== true && !(await confirmYes(`${batch.action} these ${count} device certificates?`))) {
    throw new CliError('not confirmed: nothing was requeued', EXIT.incomplete);
  }
  const { audit } = reportStores(context);
  const reason = options.why.reason ?? `found ${batch.action === 'delete' ? 'registered' : 'active'} again by revoker verify of ${batch.id}`;
  const reasonCode = options.why.reasonCode ?? (await audit.get(batch.id)).reasonCode;
  const intake = new Intake(intakeDeps(context), { highWaterJobs: context.config.highWaterJobs });
  const summary = await intake.run(
    {
      name: `re-revocation of ${count} devices found by verify of ${batch.id}`,
      // The batch record has no "verify" source yet: the new batch keeps the first one's.
      source: batch.source,
      action: batch.action,
      priority: options.priority,
      createdBy: operatorName(),
      // The intake also lists the new batch among the first one's follow-ups.
      facts: { reason, reasonCode, command: commandLine(), linkedBatchId: batch.id },
    },
    foundItems(foundFile),
  );
  const batchId = summary.batchId;
  await auditCli(context, 'enqueue', batchId, { command: 'verify --requeue', linkedBatchId: batch.id, action: batch.action, priority: options.priority, accepted: summary.accepted, reason: options.why.reason, reasonCode: options.why.reasonCode }, true);
  return batchId;
}

/** Reads `--public-key`: a PEM file, or the PEM text itself. */
async function publicKeyFlag(value: string): Promise<KeyObject> {
  const pem = value.includes('-----BEGIN') ? value : await readFile(value, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new CliError(`cannot read --public-key ${value}: ${error.code ?? 'error'}`);
  });
  try {
    return parsePublicKey(pem, `--public-key ${value.includes('-----BEGIN') ? '(PEM)' : value}`);
  } catch (error) {
    if (error instanceof SigningKeyError) throw new CliError(error.message);
    throw error;
  }
}

/** A verification as lines a person reads (text taken from the file is printed inert). */
export function describeVerification(file: string, result: ReportVerification): string {
  const lines: string[] = [];
  if (result.ok) {
    const signature =
      result.signature.status === 'valid'
        ? `signature valid (Ed25519, key ${result.signature.embeddedFingerprint ?? '?'}${result.signature.checkedWith === 'given' ? ', the key given' : '; checked with the key in the report itself: pass --public-key to check it is the signer you expect'})`
        : 'NOT signed (revoker report --sign signs it)';
    lines.push(`${file}: verified. Batch ${result.batchId ?? '?'}, ${result.chainedLines} chained lines, chain intact, header counts match the lines; ${signature}.`);
  } else {
    lines.push(`${file}: FAILED verification${result.batchId !== null ? ` (batch ${result.batchId})` : ''}:`);
    for (const problem of result.problems) lines.push(`  - ${problem}`);
  }
  return `${lines.map(escapeControl).join('\n')}\n`;
}

async function verifyReportCommand(file: string, flags: { publicKey?: string; json?: boolean }): Promise<number> {
  const publicKey = flags.publicKey !== undefined ? await publicKeyFlag(flags.publicKey) : undefined;
  const input = createReadStream(file);
  try {
    await once(input, 'open');
  } catch (error) {
    throw new CliError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const result = await verifyReport(input, publicKey !== undefined ? { publicKey } : {});
  if (flags.json === true) process.stdout.write(`${jsonForTerminal(result)}\n`);
  else process.stdout.write(describeVerification(file, result));
  return result.ok ? EXIT.ok : EXIT.incomplete;
}

/** Adds `verify` and `verify-report` to the program. */
export function registerVerifyCommands(program: Command, run: (body: () => Promise<number>) => Promise<void>): void {
  program
    .command('verify')
    .description('read every revoked device of a finished batch back (GetDeviceCertificate) and list any registered or active again')
    .argument('<batch>', 'batch id')
    .option('--sample <n>', 'check a random sample of n revoked devices instead of all')
    .option('--requeue', 'revoke what was found again, in a new batch linked to this one')
    .option('--priority <priority>', 'priority of the requeued batch', 'urgent')
    .option('--reason <text>', 'why the requeued batch is started (default: found by verify)')
    .option('--reason-code <code>', REASON_CODE_HELP)
    .option('--concurrency <n>', 'reads in flight (the read budget sets the rate)', '16')
    .option('-y, --yes', 'requeue without asking (required without a terminal)')
    .option('--json', 'print the summary as JSON')
    .action((batchId: string, flags: VerifyFlags) => run(() => verifyBatch(batchId, flags)));

  program
    .command('verify-report')
    .description("check a sealed report's hash chain, counts and signature; name the first line that was changed")
    .argument('<file>', 'a report written by revoker report')
    .option('--public-key <pem>', 'the signer\'s Ed25519 public key (a PEM file, or the PEM text): the report must be signed by it')
    .option('--json', 'print the verification as JSON')
    .action((file: string, flags: { publicKey?: string; json?: boolean }) => run(() => verifyReportCommand(file, flags)));
}
