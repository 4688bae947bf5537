/**
 * `revoker ca inactivate|activate|delete --instance ID --ca-sn SN`: containing a leaked CA.
 *
 * - `inactivate` (reversible) and `activate` make the one call, then read the CA back with
 *   GetCaCertificate to show the status really changed. `activate` asks first (or `--yes`).
 * - `delete` lists the CA's device certificates, shows the plan, asks for the serial to be typed
 *   (or `--confirm SN`), records every listed device in a new batch, makes the one
 *   DeleteCaCertificate call (which deletes the CA's device certificates with it), writes each
 *   device's record (`deleted`, evidence `ca_deleted`), then lists the CA again and reports any
 *   device certificate still (or again) there. For 1,000,000 devices that is 10,000 listing calls
 *   and one delete instead of 1,000,000 deletes.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { Logger } from 'pino';
import { CertificateApi, type CallResult } from '../cloud/certificate-api.js';
import type { Config } from '../config/config.js';
import { createLogger } from '../logging/logger.js';
import { reportStores } from '../report/report-stores.js';
import type { ResultRecord } from '../results/result-record.js';
import { pendingPlaceholder } from '../results/result-store.js';
import type { Context } from '../runtime/context.js';
import { ApiCallError, openApiCaller, type ApiCaller } from './api-caller.js';
import { listCaDevices, readListing } from './ca-listing.js';
import { auditCli } from './cli-actor.js';
import { CliError, EXIT, loadConfig, withContext } from './cli-context.js';
import { ask, confirmYes, requireConsentPossible } from './consent.js';
import { pageSizeFlag } from './enqueue-commands.js';
import { commandLine, operatorName, REASON_CODE_HELP, reasonFlags } from './operator.js';
import { effectiveRate, estimateSeconds, formatDuration, formatPlan, planJson, readPlanBudgets, type Plan } from './plan.js';
import { ProgressLine } from './progress-line.js';
import { escapeControl, jsonForTerminal } from './terminal-text.js';
import { validateCaSn, validateInstanceId } from '../producer/device-validation.js';

interface CaFlags {
  instance: string;
  caSn: string;
  json?: boolean;
  yes?: boolean;
}

interface CaDeleteFlags extends CaFlags {
  confirm?: string;
  dryRun?: boolean;
  pageSize: string;
  preflight: boolean;
  name?: string;
  reason?: string;
  reasonCode?: string;
}

/** Devices registered or found per chunk (one Lua call, one round of finalize calls). */
const CHUNK = 500;
/** Devices still listed after a delete that are printed one by one. */
const MAX_PRINTED = 100;

/**
 * A device's field in a CA deletion's results hash. Not its revocation job id (`r-…`): no job is
 * queued for it, and sharing that id would make the results scripts treat another batch's queued
 * job for the same device as decided (they mark it done and hand its followers this outcome).
 */
export function caDeletionField(device: { mqttInstanceId: string; caSn: string; deviceSn: string }): string {
  const digest = createHash('sha256').update(`${device.mqttInstanceId}\u0000${device.caSn}\u0000${device.deviceSn}\u0000ca_delete`).digest('hex');
  return `c-${digest.slice(0, 32)}`;
}

function checkTarget(flags: CaFlags): void {
  const instanceProblem = validateInstanceId(flags.instance);
  if (instanceProblem !== null) throw new CliError(`--instance: ${instanceProblem}`);
  const caProblem = validateCaSn(flags.caSn);
  if (caProblem !== null) throw new CliError(`--ca-sn: ${caProblem}`);
}

function apiFor(config: Config): CertificateApi {
  return new CertificateApi({ endpoint: config.apiEndpoint, protocol: config.apiProtocol, timeoutMs: config.apiTimeoutMs, credentials: config.credentials });
}

function quietLogger(config: Config, name: string): Logger {
  return createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, name);
}

/** The CA's status ("1" active, "0" inactive), or null when it is not registered. */
async function caStatus(caller: ApiCaller, api: CertificateApi, instance: string, caSn: string): Promise<string | null> {
  try {
    const result = await caller.call('GetCaCertificate', `GetCaCertificate ${caSn}`, () => api.getCa(instance, caSn));
    const data = result.body.Data as { Status?: unknown } | undefined;
    return typeof data?.Status === 'string' || typeof data?.Status === 'number' ? String(data.Status) : '';
  } catch (error) {
    if (error instanceof ApiCallError && error.failure.code === 'FindCaBySnError') return null;
    throw error;
  }
}

function statusName(status: string | null): string {
  return status === null ? 'not registered' : status === '1' ? 'active' : status === '0' ? 'inactive' : `status '${status}'`;
}

/** Turns a failed call into the CLI's error (exit 1: nothing or not everything was done). */
function callFailed(error: unknown): never {
  if (error instanceof ApiCallError) throw new CliError(error.message, EXIT.incomplete);
  throw error;
}

async function toggle(verb: 'inactivate' | 'activate', flags: CaFlags): Promise<number> {
  checkTarget(flags);
  // Activating a CA lets every device certificate it signed connect again: ask first.
  if (verb === 'activate') requireConsentPossible(flags);
  const config = loadConfig();
  const api = apiFor(config);
  return withContext(`revoker-ca-${verb}`, async (context) => {
    const caller = await openApiCaller(context, api, quietLogger(config, `revoker-ca-${verb}`));
    try {
      const before = await caStatus(caller, api, flags.instance, flags.caSn).catch(callFailed);
      if (before === null) throw new CliError(`CA ${flags.caSn} is not registered on instance ${flags.instance}`, EXIT.notFound);
      if (verb === 'activate' && flags.yes !== true && !(await confirmYes(`activate CA ${flags.caSn} on ${flags.instance} again? Devices whose certificates it signed can connect again`))) {
        throw new CliError('not confirmed: nothing was changed', EXIT.incomplete);
      }
      const call = verb === 'inactivate' ? () => api.inactivateCa(flags.instance, flags.caSn) : () => api.activateCa(flags.instance, flags.caSn);
      const result: CallResult = await caller.call(verb === 'inactivate' ? 'InactivateCaCertificate' : 'ActiveCaCertificate', `${verb === 'inactivate' ? 'InactivateCaCertificate' : 'ActiveCaCertificate'} ${flags.caSn}`, call).catch(callFailed);
      // Proof, not trust: read it back.
      const after = await caStatus(caller, api, flags.instance, flags.caSn).catch(callFailed);
      const wanted = verb === 'inactivate' ? '0' : '1';
      const verified = after === wanted;
      await auditCli(context, verb === 'inactivate' ? 'ca_inactivate' : 'ca_activate', null, { mqttInstanceId: flags.instance, caSn: flags.caSn, requestId: result.requestId, statusBefore: statusName(before), statusAfter: statusName(after) }, verified);
      if (flags.json === true) {
        process.stdout.write(`${JSON.stringify({ mqttInstanceId: flags.instance, caSn: flags.caSn, action: verb, requestId: result.requestId, statusBefore: statusName(before), statusAfter: statusName(after), verified })}\n`);
      } else {
        process.stdout.write(`CA ${flags.caSn} on ${flags.instance}: ${statusName(after)} (was ${statusName(before)}); RequestId ${result.requestId ?? '-'}\n`);
        process.stdout.write(verified ? `verified: GetCaCertificate now reports it ${statusName(after)}\n` : `NOT verified: GetCaCertificate reports it ${statusName(after)} after the call\n`);
      }
      return verified ? EXIT.ok : EXIT.incomplete;
    } finally {
      await caller.close();
    }
  });
}

/** How the one DeleteCaCertificate call ended. */
type DeleteOutcome =
  | { kind: 'deleted'; requestId: string | null; lostAnswer: boolean; at: Date }
  /** Definitely not applied (refused, or the CA was already gone before revoker's call). */
  | { kind: 'refused'; code: string; message: string; at: Date }
  /** Nobody can tell (every attempt's answer was lost and the read-back failed too). */
  | { kind: 'unknown'; code: string; message: string };

async function deleteCa(caller: ApiCaller, api: CertificateApi, instance: string, caSn: string): Promise<DeleteOutcome> {
  try {
    const result = await caller.call('DeleteCaCertificate', `DeleteCaCertificate ${caSn}`, () => api.deleteCa(instance, caSn));
    return { kind: 'deleted', requestId: result.requestId, lostAnswer: false, at: new Date() };
  } catch (error) {
    if (!(error instanceof ApiCallError)) throw error;
    const { failure } = error;
    if (failure.code === 'FindCaBySnError') {
      // Gone: by an earlier attempt of ours whose answer was lost, or by someone else before we called.
      return error.earlierUncertain
        ? { kind: 'deleted', requestId: failure.requestId, lostAnswer: true, at: new Date() }
        : { kind: 'refused', code: failure.code, message: 'the CA was no longer registered when revoker called: something else removed it', at: new Date() };
    }
    if (failure.kind === 'api' && (failure.httpStatus ?? 0) < 500) return { kind: 'refused', code: failure.code, message: failure.message, at: new Date() };
    // A lost or unclear answer: the CA itself tells whether the call was applied.
    try {
      const status = await caStatus(caller, api, instance, caSn);
      return status === null
        ? { kind: 'deleted', requestId: failure.requestId, lostAnswer: true, at: new Date() }
        : { kind: 'refused', code: failure.code, message: `${failure.message} (the CA is still registered)`, at: new Date() };
    } catch {
      return { kind: 'unknown', code: failure.code, message: failure.message };
    }
  }
}

/** Registers every listed device in the batch (pending records) and their input order. */
async function registerListing(context: Context, batchId: string, instance: string, listFile: string): Promise<number> {
  const { order } = reportStores(context);
  let chunk: { field: string; placeholder: string; instance: string; line: number }[] = [];
  let registered = 0;
  const flush = async () => {
    if (chunk.length === 0) return;
    await context.results.register(batchId, chunk);
    await order.record(batchId, chunk.map((entry) => ({ field: entry.field, line: entry.line })));
    registered += chunk.length;
    chunk = [];
  };
  for await (const device of readListing(listFile)) {
    const ref = { mqttInstanceId: instance, caSn: device.caSn, deviceSn: device.deviceSn };
    chunk.push({ field: caDeletionField(ref), placeholder: pendingPlaceholder({ batchId, ...ref, action: 'delete' }), instance, line: device.position });
    if (chunk.length >= CHUNK) await flush();
  }
  await flush();
  await context.batches.expire(batchId);
  return registered;
}

/** Writes every listed device's final record. */
async function finalizeListing(context: Context, batchId: string, instance: string, listFile: string, record: (device: { caSn: string; deviceSn: string }) => Omit<ResultRecord, 'batchId' | 'mqttInstanceId' | 'caSn' | 'deviceSn' | 'action'>): Promise<void> {
  let chunk: Promise<boolean>[] = [];
  for await (const device of readListing(listFile)) {
    const ref = { mqttInstanceId: instance, caSn: device.caSn, deviceSn: device.deviceSn };
    chunk.push(context.results.finalize(caDeletionField(ref), { batchId, ...ref, action: 'delete', ...record(device) }));
    if (chunk.length >= CHUNK) {
      await Promise.all(chunk);
      chunk = [];
    }
  }
  await Promise.all(chunk);
}

async function caDeleteCommand(flags: CaDeleteFlags): Promise<number> {
  checkTarget(flags);
  const why = reasonFlags(flags);
  const pageSize = pageSizeFlag(flags.pageSize);
  if (flags.confirm !== undefined && flags.confirm !== flags.caSn) {
    throw new CliError(`--confirm must repeat the CA serial exactly (${flags.caSn}), got '${flags.confirm.slice(0, 130)}'; nothing was changed`);
  }
  // --yes is not enough here: deleting a CA cannot be undone, so the serial is typed or repeated.
  requireConsentPossible({ yes: flags.confirm !== undefined, dryRun: flags.dryRun === true }, `--confirm ${flags.caSn}`);
  const config = loadConfig();
  const api = apiFor(config);
  const progress = new ProgressLine(process.stderr);
  const out = flags.json === true ? process.stderr : process.stdout;
  const dir = await mkdtemp(join(tmpdir(), 'revoker-ca-delete-'));
  return withContext('revoker-ca-delete', async (context) => {
    const caller = await openApiCaller(context, api, quietLogger(config, 'revoker-ca-delete'));
    try {
      const target = { mqttInstanceId: flags.instance, caSn: flags.caSn, pageSize };
      if (flags.preflight) {
        const status = await caStatus(caller, api, flags.instance, flags.caSn).catch(callFailed);
        if (status === null) throw new CliError(`CA ${flags.caSn} is not registered on instance ${flags.instance}; nothing was changed`, EXIT.notFound);
      }
      const firstFile = join(dir, 'before.ndjson');
      const snapshot = context.snapshots.begin(target, 'ca delete');
      const first = await listCaDevices(caller, api, target, firstFile, (listed, pageNo) => progress.update(`listing ${flags.caSn}: ${listed} devices (page ${pageNo})`), snapshot).catch(callFailed);
      progress.done();

      const budgets = await readPlanBudgets(context);
      const plan: Plan = {
        title: `delete CA ${flags.caSn} on ${flags.instance} and the ${first.devices.toLocaleString('en-US')} device certificates under it`,
        action: 'DeleteCaCertificate: the CA and every device certificate registered under it',
        devices: first.devices,
        rejected: 0,
        duplicates: 0,
        instances: [flags.instance],
        cas: [`${flags.instance}/${flags.caSn}`],
        budgets,
        // The delete, and a second listing (one page if the delete did its job).
        calls: 2,
        estimatedSeconds: estimateSeconds(2, budgets),
        notes: [
          'cannot be undone: the CA must be registered again and every device given a new certificate',
          `deleting them one by one would take ${first.devices.toLocaleString('en-US')} calls, about ${formatDuration(first.devices / effectiveRate(budgets))}`,
          `the listing took ${first.pages + (flags.preflight ? 1 : 0)} calls`,
        ],
      };
      if (flags.dryRun === true) {
        if (flags.json === true) process.stdout.write(`${JSON.stringify({ batchId: null, listed: first.devices, dryRun: true, plan: planJson(plan) })}\n`);
        else process.stdout.write(`${formatPlan(plan)}dry run: nothing was changed\n`);
        return EXIT.ok;
      }
      out.write(formatPlan(plan));
      if (flags.confirm === undefined) {
        const typed = await ask(`type the CA serial (${flags.caSn}) to delete it and its ${first.devices} device certificates: `);
        if (typed !== flags.caSn) throw new CliError('the serial typed does not match: nothing was changed', EXIT.incomplete);
      }

      // The listed devices become the batch's records before the call, so that the report (and a
      // crash) shows exactly which certificates the delete was for.
      const { audit } = reportStores(context);
      const batchId = await context.batches.create({
        name: flags.name ?? `CA ${flags.caSn} deleted with its device certificates`,
        source: 'ca_listing',
        action: 'delete',
        priority: 'urgent',
        createdBy: operatorName(),
      });
      await audit.set(batchId, { ...why, command: commandLine() });
      progress.update(`batch ${batchId}: recording ${first.devices} devices`, true);
      await registerListing(context, batchId, flags.instance, firstFile);
      await context.results.markEnqueued(batchId);
      progress.done();

      const calledAt = new Date();
      const outcome = await deleteCa(caller, api, flags.instance, flags.caSn);
      if (outcome.kind === 'unknown') {
        out.write(`DeleteCaCertificate's result is unknown (${escapeControl(outcome.code)}: ${escapeControl(outcome.message)}) and the CA could not be read back.\n`);
        out.write(`The ${first.devices} devices stay pending in batch ${batchId}. Check with: revoker ca delete --instance ${flags.instance} --ca-sn ${flags.caSn} --dry-run\n`);
        if (flags.json === true) process.stdout.write(`${JSON.stringify({ batchId, listed: first.devices, caDeleted: null, error: outcome.code })}\n`);
        return EXIT.incomplete;
      }
      progress.update(`batch ${batchId}: writing ${first.devices} records`, true);
      if (outcome.kind === 'deleted') {
        const message = `deleted with CA ${flags.caSn} (DeleteCaCertificate)${outcome.lostAnswer ? '; the call\'s answer was lost and the CA was then not registered' : ''}`;
        await finalizeListing(context, batchId, flags.instance, firstFile, () => ({
          outcome: 'deleted',
          evidence: 'ca_deleted',
          attempts: 0,
          requestId: outcome.requestId,
          errorCode: null,
          httpStatus: outcome.lostAnswer ? null : 200,
          message,
          firstAttemptAt: calledAt.toISOString(),
          finishedAt: outcome.at.toISOString(),
        }));
      } else {
        await finalizeListing(context, batchId, flags.instance, firstFile, () => ({
          outcome: 'cancelled',
          evidence: 'none',
          attempts: 0,
          requestId: null,
          errorCode: outcome.code,
          httpStatus: null,
          message: `DeleteCaCertificate refused: ${outcome.message}`,
          firstAttemptAt: calledAt.toISOString(),
          finishedAt: outcome.at.toISOString(),
        }));
      }
      progress.done();
      await auditCli(
        context,
        'ca_delete',
        batchId,
        { command: 'ca delete', mqttInstanceId: flags.instance, caSn: flags.caSn, listed: first.devices, outcome: outcome.kind, requestId: outcome.kind === 'deleted' ? outcome.requestId : null, reason: why.reason, reasonCode: why.reasonCode },
        outcome.kind === 'deleted',
      );

      // Proof: list again. Anything there now was not deleted, or was registered again since.
      const secondFile = join(dir, 'after.ndjson');
      // The emulator lists an unknown CA as empty; should the API answer FindCaBySnError instead,
      // that too means nothing is registered under it.
      const second = await listCaDevices(caller, api, target, secondFile).catch((error: unknown) => {
        if (error instanceof ApiCallError && error.failure.code === 'FindCaBySnError') return { devices: 0, pages: 1 };
        return callFailed(error);
      });
      const still: { deviceSn: string; status: string }[] = [];
      for await (const device of readListing(secondFile)) {
        if (still.length < MAX_PRINTED) still.push({ deviceSn: device.deviceSn, status: device.status });
      }

      const deleted = outcome.kind === 'deleted';
      if (deleted) {
        out.write(`CA ${flags.caSn} deleted with its ${first.devices} listed device certificates; RequestId ${outcome.requestId ?? '-'}${outcome.lostAnswer ? ' (answer lost; confirmed: the CA is gone)' : ''}\n`);
      } else {
        out.write(`DeleteCaCertificate was refused (${escapeControl(outcome.code)}): ${escapeControl(outcome.message)}; the ${first.devices} devices are recorded as cancelled\n`);
      }
      out.write(`batch ${batchId}: one record per listed device; sign its report with: revoker report ${batchId} --sign --out ${batchId}.csv\n`);
      if (second.devices === 0) out.write(`second listing: no device certificate under CA ${flags.caSn}\n`);
      else {
        out.write(`second listing: ${second.devices} device certificate(s) STILL under CA ${flags.caSn} (not deleted, or registered again):\n`);
        // Serials from the API's listing: printed inert (one may have been registered by an attacker).
        for (const device of still) out.write(`  ${escapeControl(device.deviceSn)}  ${device.status === '1' ? 'active' : device.status === '0' ? 'inactive' : escapeControl(device.status)}\n`);
        if (second.devices > still.length) out.write(`  … and ${second.devices - still.length} more\n`);
        out.write(`revoke them with: revoker enqueue-ca --instance ${flags.instance} --ca-sn ${flags.caSn} --priority urgent --yes\n`);
      }
      if (flags.json === true) {
        process.stdout.write(
          `${jsonForTerminal({ batchId, listed: first.devices, caDeleted: deleted, requestId: deleted ? outcome.requestId : null, lostAnswer: deleted ? outcome.lostAnswer : false, error: deleted ? null : outcome.code, stillListed: second.devices, stillListedDevices: still })}\n`,
        );
      }
      return deleted && second.devices === 0 ? EXIT.ok : EXIT.incomplete;
    } finally {
      await caller.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
}

/** Adds `ca inactivate|activate|delete` to the program. */
export function registerCaCommands(program: Command, run: (body: () => Promise<number>) => Promise<void>): void {
  const ca = program.command('ca').description('contain a CA: inactivate it (reversible), activate it again, or delete it with its device certificates');
  for (const verb of ['inactivate', 'activate'] as const) {
    ca.command(verb)
      .description(verb === 'inactivate' ? 'InactivateCaCertificate, then read the CA back' : 'ActiveCaCertificate (asks first), then read the CA back')
      .requiredOption('--instance <id>', 'MqttInstanceId')
      .requiredOption('--ca-sn <sn>', 'the CA serial')
      .option('-y, --yes', 'go ahead without asking')
      .option('--json', 'print {"requestId","statusBefore","statusAfter","verified",…}')
      .action((flags: CaFlags) => run(() => toggle(verb, flags)));
  }
  ca.command('delete')
    .description('list the CA\'s device certificates into a batch, delete the CA (and with it every device certificate under it) in one call, then list again')
    .requiredOption('--instance <id>', 'MqttInstanceId')
    .requiredOption('--ca-sn <sn>', 'the CA serial')
    .option('--confirm <sn>', 'the CA serial again: confirms without a terminal')
    .option('--reason <text>', 'why (shown in the report header)')
    .option('--reason-code <code>', REASON_CODE_HELP)
    .option('--name <name>', 'a name for the batch')
    .option('--no-preflight', 'skip the GetCaCertificate check before listing')
    .option('--page-size <n>', 'devices per listing page (1-100)', '100')
    .option('--dry-run', 'list and show the plan; change nothing')
    .option('--json', 'print {"batchId","listed","caDeleted","stillListed",…}')
    .action((flags: CaDeleteFlags) => run(() => caDeleteCommand(flags)));
}
