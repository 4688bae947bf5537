/**
 * `revoker enqueue FILE.csv` and `revoker enqueue-ca`: producers on the command line.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir, hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { CertificateApi } from '../cloud/certificate-api.js';
import type { RevocationAction } from '../cloud/certificate-api.js';
import { describeApiFailure } from '../cloud/api-failure.js';
import { rateLimitKeyFor } from '../config/config.js';
import { createLogger } from '../logging/logger.js';
import { BottleneckRateGate } from '../limiter/bottleneck-rate-gate.js';
import { CsvInputError } from '../producer/csv-input-error.js';
import { readDeviceCsv } from '../producer/csv-source.js';
import type { InputItem } from '../producer/device-request.js';
import { validateCaSn, validateInstanceId } from '../producer/device-validation.js';
import { Enqueuer, type EnqueueProgress } from '../producer/enqueuer.js';
import { parsePriority, type BatchPriority } from '../queue/priority.js';
import { CliError, EXIT, loadConfig, withContext } from './cli-context.js';
import { ProgressLine } from './progress-line.js';

interface EnqueueFlags {
  priority: string;
  instance?: string;
  caSn?: string;
  action: string;
  name?: string;
  dryRun?: boolean;
  json?: boolean;
}

function parseAction(value: string): RevocationAction {
  if (value !== 'delete' && value !== 'inactivate') throw new CliError(`--action must be delete or inactivate, got '${value}'`);
  return value;
}

function priorityFlag(value: string): BatchPriority {
  const priority = parsePriority(value);
  if (priority === null) throw new CliError(`--priority must be urgent, normal or bulk, got '${value}'`);
  return priority;
}

function who(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return hostname();
  }
}

function describeProgress(progress: EnqueueProgress, startedAtMs: number): string {
  const seconds = Math.max(0.001, (Date.now() - startedAtMs) / 1_000);
  return `read ${progress.read}  accepted ${progress.accepted}  rejected ${progress.rejected}  duplicates ${progress.duplicates}  ${Math.round(progress.read / seconds)} rows/s`;
}

/** Validates flags that fill absent columns. */
function checkDefaults(flags: EnqueueFlags): void {
  if (flags.instance !== undefined) {
    const problem = validateInstanceId(flags.instance);
    if (problem !== null) throw new CliError(`--instance: ${problem}`);
  }
  if (flags.caSn !== undefined) {
    const problem = validateCaSn(flags.caSn);
    if (problem !== null) throw new CliError(`--ca-sn: ${problem}`);
  }
}

async function enqueueCsv(file: string, flags: EnqueueFlags): Promise<number> {
  const action = parseAction(flags.action);
  const priority = priorityFlag(flags.priority);
  checkDefaults(flags);
  try {
    if (!(await stat(file)).isFile()) throw new CliError(`${file} is not a file`);
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const csvOptions = { ...(flags.instance !== undefined ? { defaultInstanceId: flags.instance } : {}), ...(flags.caSn !== undefined ? { defaultCaSn: flags.caSn } : {}) };
  const progressLine = new ProgressLine(process.stderr);
  const startedAtMs = Date.now();

  // Read the header (and so refuse an unusable file) before creating anything in Redis.
  const source = readDeviceCsv(createReadStream(file), csvOptions);
  let first: IteratorResult<InputItem>;
  try {
    first = await source.next();
  } catch (error) {
    if (error instanceof CsvInputError) throw new CliError(`${file}: ${error.message}`);
    throw error;
  }
  async function* all(): AsyncGenerator<InputItem> {
    if (first.done !== true) yield first.value;
    for await (const item of source) yield item;
  }

  if (flags.dryRun === true) {
    const summary = { batchId: null, accepted: 0, rejected: 0, duplicates: 0, dryRun: true };
    const seen = new Set<string>();
    for await (const item of all()) {
      if (item.kind === 'rejected') {
        summary.rejected += 1;
        if (flags.json !== true) process.stdout.write(`line ${item.row.line}: rejected: ${item.row.reason}\n`);
        continue;
      }
      const key = `${item.request.mqttInstanceId}\u0000${item.request.caSn}\u0000${item.request.deviceSn}`;
      if (seen.has(key)) summary.duplicates += 1;
      else {
        seen.add(key);
        summary.accepted += 1;
      }
    }
    if (flags.json === true) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else process.stdout.write(`dry run: would ${action} ${summary.accepted} devices (${summary.rejected} rows rejected, ${summary.duplicates} duplicates); nothing was enqueued\n`);
    return EXIT.ok;
  }

  const config = loadConfig();
  return withContext('revoker-enqueue', async (context) => {
    const batchId = await context.batches.create({ name: flags.name ?? file, source: 'csv', action, priority, createdBy: who() });
    progressLine.update(`batch ${batchId}: starting`, true);
    const enqueuer = new Enqueuer(context.queue, context.batches, context.results, { highWaterJobs: config.highWaterJobs });
    const summary = await enqueuer.enqueue(batchId, action, all(), (progress) => progressLine.update(`batch ${batchId}: ${describeProgress(progress, startedAtMs)}`));
    progressLine.done();
    const out = { batchId, accepted: summary.accepted, rejected: summary.rejected, duplicates: summary.duplicates };
    if (flags.json === true) process.stdout.write(`${JSON.stringify(out)}\n`);
    else {
      process.stdout.write(`batch ${batchId}: ${summary.accepted} devices enqueued, ${summary.rejected} rows rejected, ${summary.duplicates} duplicates${summary.stoppedEarly ? ' (stopped early: the batch was cancelled)' : ''}\n`);
      process.stdout.write(`follow it with: revoker status ${batchId} --watch\n`);
    }
    return EXIT.ok;
  });
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
}

/**
 * Lists every device under the CA into a temporary file first, then enqueues from it: devices
 * revoked while paging would shift later pages and skip devices, so nothing is revoked until the
 * listing is complete. The file keeps memory flat for a million devices.
 */
async function enqueueCa(flags: EnqueueCaFlags): Promise<number> {
  const action = parseAction(flags.action);
  const priority = priorityFlag(flags.priority);
  checkDefaults({ instance: flags.instance, caSn: flags.caSn, action: flags.action, priority: flags.priority });
  const pageSize = Number(flags.pageSize);
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 100) throw new CliError(`--page-size must be an integer from 1 to 100, got '${flags.pageSize}'`);
  const config = loadConfig();
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, 'revoker-enqueue-ca');
  const api = new CertificateApi({ endpoint: config.apiEndpoint, protocol: config.apiProtocol, timeoutMs: config.apiTimeoutMs, credentials: config.credentials });
  const progressLine = new ProgressLine(process.stderr);
  const dir = await mkdtemp(join(tmpdir(), 'revoker-ca-'));
  const listFile = join(dir, 'devices.ndjson');
  return withContext('revoker-enqueue-ca', async (context) => {
    const rateKey = config.rateLimitKey ?? rateLimitKeyFor(await api.accessKeyId());
    // Listing calls count toward the account's cap: they go through the same shared gate.
    const gate = new BottleneckRateGate(context.redis, { id: context.keys.limiterId(rateKey), ratePerSecond: config.ratePerSecond, guardKey: context.keys.rateGuard(rateKey) }, log);
    try {
      const call = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
        for (let attempt = 1; ; attempt += 1) {
          await gate.acquire(0);
          try {
            return await fn();
          } catch (error) {
            const failure = describeApiFailure(error);
            const transient = failure.kind !== 'api' || failure.code.startsWith('Throttling') || (failure.httpStatus ?? 0) >= 500;
            const definitive = failure.code === 'MqttInstanceNotFound' || failure.code === 'MqttOwnerCheckError';
            if (!transient || definitive || attempt >= config.maxAttempts) throw new CliError(`${what} failed: ${failure.code} ${failure.message}`, EXIT.incomplete);
            await new Promise((resolve) => setTimeout(resolve, Math.min(config.retryMaxMs, config.retryBaseMs * 2 ** (attempt - 1)) * Math.random()));
          }
        }
      };
      if (flags.preflight) await call(`GetCaCertificate ${flags.caSn}`, () => api.getCa(flags.instance, flags.caSn));
      const out = createWriteStream(listFile);
      let listed = 0;
      for (let pageNo = 1; ; pageNo += 1) {
        const page = await call(`ListDeviceCertificateByCaSn page ${pageNo}`, () => api.listDevices(flags.instance, flags.caSn, pageNo, pageSize));
        for (const device of page.devices) {
          if (!out.write(`${JSON.stringify({ deviceSn: device.deviceSn, caSn: device.caSn || flags.caSn })}\n`)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
        }
        listed += page.devices.length;
        progressLine.update(`listing ${flags.caSn}: ${listed} devices (page ${pageNo})`);
        if (page.devices.length < pageSize) break;
      }
      await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
      progressLine.update(`listed ${listed} devices; enqueueing`, true);

      const batchId = await context.batches.create({ name: flags.name ?? `everything under CA ${flags.caSn}`, source: 'ca_listing', action, priority, createdBy: who() });
      async function* items(): AsyncGenerator<InputItem> {
        let line = 0;
        for await (const text of createInterface({ input: createReadStream(listFile), crlfDelay: Infinity })) {
          line += 1;
          if (text === '') continue;
          const device = JSON.parse(text) as { deviceSn: string; caSn: string };
          yield { kind: 'device', request: { mqttInstanceId: flags.instance, caSn: device.caSn, deviceSn: device.deviceSn, line } };
        }
      }
      const summary = await new Enqueuer(context.queue, context.batches, context.results, { highWaterJobs: config.highWaterJobs }).enqueue(batchId, action, items());
      progressLine.done();
      const result = { batchId, accepted: summary.accepted, rejected: summary.rejected, duplicates: summary.duplicates, listed };
      if (flags.json === true) process.stdout.write(`${JSON.stringify(result)}\n`);
      else process.stdout.write(`batch ${batchId}: ${summary.accepted} devices under CA ${flags.caSn} enqueued\nfollow it with: revoker status ${batchId} --watch\n`);
      return EXIT.ok;
    } finally {
      await gate.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
}

/** Adds `enqueue` and `enqueue-ca` to the program. */
export function registerEnqueueCommands(program: Command, run: (body: () => Promise<number>) => Promise<void>): void {
  program
    .command('enqueue')
    .description('validate a CSV file of devices and enqueue one revocation job per device')
    .argument('<file>', 'CSV with a header row: DeviceSn (required), CaSn, MqttInstanceId')
    .option('--instance <id>', 'MqttInstanceId for rows without one')
    .option('--ca-sn <sn>', 'CaSn for rows without one')
    .option('--action <action>', 'delete or inactivate', 'delete')
    .option('--priority <priority>', 'urgent, normal or bulk: urgent work is done first', 'normal')
    .option('--name <name>', 'a name for the batch (default: the file name)')
    .option('--dry-run', 'validate and count, enqueue nothing')
    .option('--json', 'print {"batchId","accepted","rejected","duplicates"}')
    .action((file: string, flags: EnqueueFlags) => run(() => enqueueCsv(file, flags)));

  program
    .command('enqueue-ca')
    .description('list every device certificate under a CA, then enqueue them all as one batch')
    .requiredOption('--instance <id>', 'MqttInstanceId')
    .requiredOption('--ca-sn <sn>', 'the CA whose device certificates to revoke')
    .option('--action <action>', 'delete or inactivate', 'delete')
    .option('--priority <priority>', 'urgent, normal or bulk: urgent work is done first', 'normal')
    .option('--name <name>', 'a name for the batch')
    .option('--no-preflight', 'skip the GetCaCertificate check before listing')
    .option('--page-size <n>', 'devices per listing page (1-100)', '100')
    .option('--json', 'print {"batchId","accepted","rejected","duplicates","listed"}')
    .action((flags: EnqueueCaFlags) => run(() => enqueueCa(flags)));
}
