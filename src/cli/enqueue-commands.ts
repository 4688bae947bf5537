/**
 * `revoker enqueue FILE.csv` and `revoker enqueue-ca`: producers on the command line.
 *
 * Both show a plan first (devices, instances, CAs, action, budgets, duration) and, on a
 * terminal, wait for a yes; `--yes` answers in advance and is required without a terminal;
 * `--dry-run` shows the plan and stops. Each batch records why it was started (`--reason`,
 * `--reason-code`), the command, and the input file's SHA-256, for its report's header.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Transform, pipeline, type Readable } from 'node:stream';
import type { Command } from 'commander';
import { CertificateApi } from '../cloud/certificate-api.js';
import type { RevocationAction } from '../cloud/certificate-api.js';
import { createLogger } from '../logging/logger.js';
import { CsvInputError } from '../producer/csv-input-error.js';
import { readDeviceCsv } from '../producer/csv-source.js';
import type { InputItem } from '../producer/device-request.js';
import { validateCaSn, validateInstanceId } from '../producer/device-validation.js';
import type { EnqueueProgress } from '../producer/enqueuer.js';
import { Intake, intakeDeps, type IntakeSummary } from '../producer/intake.js';
import { parsePriority, type BatchPriority } from '../queue/priority.js';
import { EVIDENCE_RETRY, openApiCaller, type ApiCaller } from './api-caller.js';
import { escapeControl } from './terminal-text.js';
import type { Config } from '../config/config.js';
import type { Context } from '../runtime/context.js';
import { listCaDevices, readListing } from './ca-listing.js';
import { pageAllowance, SNAPSHOT_CALL_TIMEOUT_MS, SNAPSHOT_PAGE_SIZE, snapshotModeFlag, snapshotPlanNote, takeSnapshots, type SnapshotMode } from './snapshot-step.js';
import { auditCli } from './cli-actor.js';
import { CliError, EXIT, loadConfig, withContext } from './cli-context.js';
import { confirmYes, requireConsentPossible } from './consent.js';
import { commandLine, operatorName, REASON_CODE_HELP, reasonFlags } from './operator.js';
import { budgetsFromConfig, csvFilePlan, effectiveRate, estimateSeconds, formatPlan, planJson, PlanCounter, readPlanBudgets, type Plan, type PlanBudgets } from './plan.js';
import { ProgressLine } from './progress-line.js';

interface EnqueueFlags {
  priority: string;
  instance?: string;
  caSn?: string;
  action: string;
  name?: string;
  dryRun?: boolean;
  json?: boolean;
  yes?: boolean;
  reason?: string;
  reasonCode?: string;
  snapshot: string;
  verify?: boolean;
}

/** Parses `--action`. */
export function parseAction(value: string): RevocationAction {
  if (value !== 'delete' && value !== 'inactivate') throw new CliError(`--action must be delete or inactivate, got '${value}'`);
  return value;
}

/** Parses `--priority`. */
export function priorityFlag(value: string): BatchPriority {
  const priority = parsePriority(value);
  if (priority === null) throw new CliError(`--priority must be urgent, normal or bulk, got '${value}'`);
  return priority;
}

function describeProgress(progress: EnqueueProgress, startedAtMs: number): string {
  const seconds = Math.max(0.001, (Date.now() - startedAtMs) / 1_000);
  return `read ${progress.read}  accepted ${progress.accepted}  rejected ${progress.rejected}  duplicates ${progress.duplicates}  ${Math.round(progress.read / seconds)} rows/s`;
}

/** Validates flags that fill absent columns. */
function checkDefaults(flags: { instance?: string; caSn?: string }): void {
  if (flags.instance !== undefined) {
    const problem = validateInstanceId(flags.instance);
    if (problem !== null) throw new CliError(`--instance: ${problem}`);
  }
  if (flags.caSn !== undefined) {
    const problem = validateCaSn(flags.caSn);
    if (problem !== null) throw new CliError(`--ca-sn: ${problem}`);
  }
}

/** A file's bytes as a stream, hashed (SHA-256) as they are read. */
function hashedFile(file: string): { stream: Readable; sha256: () => string | null } {
  const hash = createHash('sha256');
  let complete = false;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      callback(null, chunk);
    },
    flush(callback) {
      complete = true;
      callback();
    },
  });
  // pipeline forwards a read error to the tap, so the CSV reader sees it.
  pipeline(createReadStream(file), tap, () => undefined);
  let digest: string | null = null;
  return { stream: tap, sha256: () => (complete ? (digest ??= hash.digest('hex')) : null) };
}

/** The CSV's items, turning an unusable file into a CliError. */
async function* csvItems(file: string, stream: Readable, options: { defaultInstanceId?: string; defaultCaSn?: string }): AsyncGenerator<InputItem> {
  try {
    yield* readDeviceCsv(stream, options);
  } catch (error) {
    if (error instanceof CsvInputError) throw new CliError(`${file}: ${error.message}`);
    throw error;
  }
}

/** Where the plan goes: stdout, unless stdout carries `--json`. */
function planStream(flags: { json?: boolean }): NodeJS.WritableStream {
  return flags.json === true ? process.stderr : process.stdout;
}

/** Asks for the go-ahead unless `--yes` answered it; throws when declined. */
async function consent(flags: { yes?: boolean }, question: string): Promise<void> {
  if (flags.yes === true) return;
  if (!(await confirmYes(question))) throw new CliError('not confirmed: nothing was changed', EXIT.incomplete);
}

/** Reads the whole file once: counts for the plan, the rejected rows, and the file's hash. */
async function planCsv(file: string, csvOptions: { defaultInstanceId?: string; defaultCaSn?: string }, onRejected: (line: number, reason: string) => void): Promise<{ counter: PlanCounter; sha256: string | null }> {
  const counter = new PlanCounter();
  const input = hashedFile(file);
  for await (const item of csvItems(file, input.stream, csvOptions)) {
    if (item.kind === 'rejected') {
      counter.rejected += 1;
      onRejected(item.row.line, item.row.reason);
    } else counter.addDevice(item.request);
  }
  return { counter, sha256: input.sha256() };
}

function csvPlan(file: string, action: RevocationAction, counter: PlanCounter, sha256: string | null, budgets: PlanBudgets, snapshotMode: SnapshotMode): Plan {
  const snapshot = snapshotPlanNote(snapshotMode, counter.perCa, effectiveRate(budgets));
  return csvFilePlan(file, action, counter, sha256, budgets, snapshot !== null ? [snapshot] : []);
}

async function enqueueCsv(file: string, flags: EnqueueFlags): Promise<number> {
  const action = parseAction(flags.action);
  const priority = priorityFlag(flags.priority);
  checkDefaults(flags);
  const why = reasonFlags(flags);
  const snapshotMode = snapshotModeFlag(flags.snapshot);
  requireConsentPossible(flags);
  try {
    if (!(await stat(file)).isFile()) throw new CliError(`${file} is not a file`);
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const csvOptions = { ...(flags.instance !== undefined ? { defaultInstanceId: flags.instance } : {}), ...(flags.caSn !== undefined ? { defaultCaSn: flags.caSn } : {}) };
  const config = loadConfig();

  if (flags.dryRun === true) {
    // No Redis needed: the budgets are the configuration's.
    const { counter, sha256 } = await planCsv(file, csvOptions, (line, reason) => {
      if (flags.json !== true) process.stdout.write(`line ${line}: rejected: ${reason}\n`);
    });
    const plan = csvPlan(file, action, counter, sha256, budgetsFromConfig(config), snapshotMode);
    if (flags.json === true) {
      process.stdout.write(`${JSON.stringify({ batchId: null, accepted: counter.devices, rejected: counter.rejected, duplicates: counter.duplicates, dryRun: true, inputSha256: sha256, plan: planJson(plan) })}\n`);
    } else {
      process.stdout.write(formatPlan(plan));
      process.stdout.write(`dry run: would ${action} ${counter.devices} devices (${counter.rejected} rows rejected, ${counter.duplicates} duplicates); nothing was enqueued\n`);
    }
    return EXIT.ok;
  }

  return withContext('revoker-enqueue', async (context) => {
    let plannedSha: string | null = null;
    let perCa: ReadonlyMap<string, number> | null = null;
    if (flags.yes !== true) {
      // On a terminal: read the file once for the plan, then ask. (With --yes the file is read
      // once, by the enqueue, unless a snapshot needs the devices per CA first.)
      const { counter, sha256 } = await planCsv(file, csvOptions, () => undefined);
      plannedSha = sha256;
      perCa = counter.perCa;
      planStream(flags).write(formatPlan(csvPlan(file, action, counter, sha256, await readPlanBudgets(context), snapshotMode)));
      await consent(flags, `${action} these ${counter.devices} device certificates?`);
    }
    if (snapshotMode !== 'never') {
      perCa ??= (await planCsv(file, csvOptions, () => undefined)).counter.perCa;
      await snapshotBeforeFirstCall(context, config, perCa, snapshotMode, resolve(file), flags.json === true);
    }

    const progressLine = new ProgressLine(process.stderr);
    const startedAtMs = Date.now();
    const input = hashedFile(file);
    // Read the header (and so refuse an unusable file) before creating anything in Redis.
    const source = csvItems(file, input.stream, csvOptions);
    const first = await source.next();
    async function* all(): AsyncGenerator<InputItem> {
      if (first.done !== true) yield first.value;
      yield* source;
    }

    const intake = new Intake(intakeDeps(context), { highWaterJobs: config.highWaterJobs });
    const batch = await intake.open({ name: flags.name ?? file, source: 'csv', action, priority, verify: flags.verify === true, createdBy: operatorName(), facts: { ...why, command: commandLine(), inputFile: resolve(file) } });
    const batchId = batch.batchId;
    progressLine.update(`batch ${batchId}: starting`, true);
    const summary = await batch.enqueue(all(), { onProgress: (progress) => progressLine.update(`batch ${batchId}: ${describeProgress(progress, startedAtMs)}`), inputSha256: input.sha256 });
    progressLine.done();
    const sha256 = summary.inputSha256;
    await auditCli(context, 'enqueue', batchId, { command: 'enqueue', file: resolve(file), action, priority, accepted: summary.accepted, rejected: summary.rejected, duplicates: summary.duplicates, reason: why.reason, reasonCode: why.reasonCode, inputSha256: sha256 }, true);
    if (plannedSha !== null && sha256 !== null && plannedSha !== sha256) {
      process.stderr.write(`revoker: warning: ${file} changed between the plan (SHA-256 ${plannedSha}) and the enqueue (${sha256}); the batch holds what was read the second time\n`);
    }
    const out = { batchId, accepted: summary.accepted, rejected: summary.rejected, duplicates: summary.duplicates };
    if (flags.json === true) process.stdout.write(`${JSON.stringify(out)}\n`);
    else {
      process.stdout.write(`batch ${batchId}: ${summary.accepted} devices enqueued, ${summary.rejected} rows rejected, ${summary.duplicates} duplicates${summary.stoppedEarly ? ' (stopped early: the batch was cancelled)' : ''}\n`);
      process.stdout.write(`follow it with: revoker status ${batchId} --watch\n`);
    }
    return EXIT.ok;
  });
}

/**
 * `--snapshot`: before the batch's first call, lists the CAs whose listing the mode allows (auto:
 * at most a tenth of their calls). Evidence only: a listing that cannot be made (no API, no
 * credentials, refused) is a warning, never a reason not to revoke.
 */
async function snapshotBeforeFirstCall(context: Context, config: Config, perCa: ReadonlyMap<string, number>, mode: SnapshotMode, file: string, quiet: boolean): Promise<void> {
  const wanted = new Map([...perCa].filter(([, devices]) => pageAllowance(mode, devices) >= 1));
  if (wanted.size === 0) return;
  const line = new ProgressLine(process.stderr);
  let caller: ApiCaller | null = null;
  try {
    // Evidence only: an API that does not answer gets a short look (EVIDENCE_RETRY), not a minute.
    const api = new CertificateApi({ endpoint: config.apiEndpoint, protocol: config.apiProtocol, timeoutMs: Math.min(config.apiTimeoutMs, SNAPSHOT_CALL_TIMEOUT_MS), credentials: config.credentials });
    caller = await openApiCaller(context, api, createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, 'revoker-enqueue'), EVIDENCE_RETRY);
    const taken = await takeSnapshots(caller, api, context.snapshots, wanted, { mode, pageSize: SNAPSHOT_PAGE_SIZE, source: `enqueue ${file}`, onProgress: (text) => line.update(text) });
    line.done();
    for (const snapshot of quiet ? [] : taken) {
      process.stderr.write(`existence snapshot of ${snapshot.mqttInstanceId}/${snapshot.caSn}: ${snapshot.listed} devices in ${snapshot.pages} page(s)${snapshot.complete ? '' : " (stopped at a tenth of the batch's calls: proves presence only)"}\n`);
    }
  } catch (error) {
    line.done();
    process.stderr.write(`revoker: warning: existence snapshot not taken (${escapeControl(error instanceof Error ? error.message : String(error))}); going on without it\n`);
  } finally {
    await caller?.close();
  }
}

interface EnqueueCaFlags {
  priority: string;
  instance: string;
  caSn: string;
  action: string;
  name?: string;
  preflight: boolean;
  json?: boolean;
  pageSize: string;
  dryRun?: boolean;
  yes?: boolean;
  reason?: string;
  reasonCode?: string;
  verify?: boolean;
}

/** The listed devices as input items, in listing order (each one's position is its line). */
async function* listedItems(listFile: string, instance: string): AsyncGenerator<InputItem> {
  for await (const device of readListing(listFile)) {
    yield { kind: 'device', request: { mqttInstanceId: instance, caSn: device.caSn, deviceSn: device.deviceSn, line: device.position } };
  }
}

/** Parses `--page-size`. */
export function pageSizeFlag(value: string): number {
  const pageSize = Number(value);
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 100) throw new CliError(`--page-size must be an integer from 1 to 100, got '${value}'`);
  return pageSize;
}

/**
 * Lists every device under the CA into a temporary file first, then enqueues from it: devices
 * revoked while paging would shift later pages and skip devices, so nothing is revoked until the
 * listing is complete. The file keeps memory flat for a million devices.
 */
async function enqueueCa(flags: EnqueueCaFlags): Promise<number> {
  const action = parseAction(flags.action);
  const priority = priorityFlag(flags.priority);
  checkDefaults(flags);
  const why = reasonFlags(flags);
  const pageSize = pageSizeFlag(flags.pageSize);
  requireConsentPossible(flags);
  const config = loadConfig();
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, 'revoker-enqueue-ca');
  const api = new CertificateApi({ endpoint: config.apiEndpoint, protocol: config.apiProtocol, timeoutMs: config.apiTimeoutMs, credentials: config.credentials });
  const progressLine = new ProgressLine(process.stderr);
  const dir = await mkdtemp(join(tmpdir(), 'revoker-ca-'));
  const listFile = join(dir, 'devices.ndjson');
  return withContext('revoker-enqueue-ca', async (context) => {
    const caller = await openApiCaller(context, api, log);
    try {
      if (flags.preflight) await caller.call('GetCaCertificate', `GetCaCertificate ${flags.caSn}`, () => api.getCa(flags.instance, flags.caSn));
      // The listing is also the batch's existence snapshot (it completes before any call).
      const snapshot = flags.dryRun === true ? undefined : context.snapshots.begin({ mqttInstanceId: flags.instance, caSn: flags.caSn }, 'enqueue-ca');
      const listing = await listCaDevices(
        caller,
        api,
        { mqttInstanceId: flags.instance, caSn: flags.caSn, pageSize },
        listFile,
        (listed, pageNo) => progressLine.update(`listing ${flags.caSn}: ${listed} devices (page ${pageNo})`),
        snapshot,
      );
      const listed = listing.devices;
      progressLine.update(`listed ${listed} devices`, true);
      progressLine.done();

      const budgets = await readPlanBudgets(context);
      const plan: Plan = {
        title: `${action} every device certificate under CA ${flags.caSn} (${listed.toLocaleString('en-US')} listed)`,
        action,
        devices: listed,
        rejected: 0,
        duplicates: 0,
        instances: [flags.instance],
        cas: [`${flags.instance}/${flags.caSn}`],
        budgets,
        calls: listed,
        estimatedSeconds: estimateSeconds(listed, budgets),
        notes: [`the listing took ${listing.pages + (flags.preflight ? 1 : 0)} calls`],
      };
      if (flags.dryRun === true) {
        if (flags.json === true) process.stdout.write(`${JSON.stringify({ batchId: null, listed, dryRun: true, plan: planJson(plan) })}\n`);
        else process.stdout.write(`${formatPlan(plan)}dry run: nothing was enqueued\n`);
        return EXIT.ok;
      }
      planStream(flags).write(formatPlan(plan));
      await consent(flags, `${action} these ${listed} device certificates?`);

      const intake = new Intake(intakeDeps(context), { highWaterJobs: config.highWaterJobs });
      const summary: IntakeSummary = await intake.run(
        { name: flags.name ?? `everything under CA ${flags.caSn}`, source: 'ca_listing', action, priority, verify: flags.verify === true, createdBy: operatorName(), facts: { ...why, command: commandLine() } },
        listedItems(listFile, flags.instance),
      );
      const batchId = summary.batchId;
      await auditCli(context, 'enqueue', batchId, { command: 'enqueue-ca', mqttInstanceId: flags.instance, caSn: flags.caSn, action, priority, listed, accepted: summary.accepted, reason: why.reason, reasonCode: why.reasonCode }, true);
      const result = { batchId, accepted: summary.accepted, rejected: summary.rejected, duplicates: summary.duplicates, listed };
      if (flags.json === true) process.stdout.write(`${JSON.stringify(result)}\n`);
      else process.stdout.write(`batch ${batchId}: ${summary.accepted} devices under CA ${flags.caSn} enqueued\nfollow it with: revoker status ${batchId} --watch\n`);
      return EXIT.ok;
    } finally {
      await caller.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
}

/** Adds `enqueue` and `enqueue-ca` to the program. */
export function registerEnqueueCommands(program: Command, run: (body: () => Promise<number>) => Promise<void>): void {
  program
    .command('enqueue')
    .description('validate a CSV file of devices, show the plan, and enqueue one revocation job per device')
    .argument('<file>', 'CSV with a header row: DeviceSn (required), CaSn, MqttInstanceId')
    .option('--instance <id>', 'MqttInstanceId for rows without one')
    .option('--ca-sn <sn>', 'CaSn for rows without one')
    .option('--action <action>', 'delete or inactivate', 'delete')
    .option('--priority <priority>', 'urgent, normal or bulk: urgent work is done first', 'normal')
    .option('--name <name>', 'a name for the batch (default: the file name)')
    .option('--reason <text>', 'why (shown in the report header)')
    .option('--reason-code <code>', REASON_CODE_HELP)
    .option('--snapshot <mode>', 'existence snapshot before the first call: auto (list a CA when that costs at most a tenth of its calls), always or never', 'auto')
    .option('--verify', 'read each device back after its revocation (two calls per device)')
    .option('--dry-run', 'validate, count and show the plan; enqueue nothing')
    .option('-y, --yes', 'go ahead without asking (required without a terminal)')
    .option('--json', 'print {"batchId","accepted","rejected","duplicates"}')
    .action((file: string, flags: EnqueueFlags) => run(() => enqueueCsv(file, flags)));

  program
    .command('enqueue-ca')
    .description('list every device certificate under a CA, show the plan, then enqueue them all as one batch')
    .requiredOption('--instance <id>', 'MqttInstanceId')
    .requiredOption('--ca-sn <sn>', 'the CA whose device certificates to revoke')
    .option('--action <action>', 'delete or inactivate', 'delete')
    .option('--priority <priority>', 'urgent, normal or bulk: urgent work is done first', 'normal')
    .option('--name <name>', 'a name for the batch')
    .option('--reason <text>', 'why (shown in the report header)')
    .option('--reason-code <code>', REASON_CODE_HELP)
    .option('--no-preflight', 'skip the GetCaCertificate check before listing')
    .option('--page-size <n>', 'devices per listing page (1-100)', '100')
    .option('--verify', 'read each device back after its revocation (two calls per device)')
    .option('--dry-run', 'list and show the plan; enqueue nothing')
    .option('-y, --yes', 'go ahead without asking (required without a terminal)')
    .option('--json', 'print {"batchId","accepted","rejected","duplicates","listed"}')
    .action((flags: EnqueueCaFlags) => run(() => enqueueCa(flags)));
}
