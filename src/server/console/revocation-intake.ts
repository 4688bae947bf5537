/**
 * The console's one door into the producer: planning and starting a revocation from an uploaded
 * CSV file or from a CA's listing. Every call into the producer's public surface (`readDeviceCsv`,
 * `Enqueuer`, `BatchStore.create`, the plan, the CA listing) is in this module, so that when the
 * producer gets its single intake path only this file changes.
 *
 * A start is two steps, as on the command line: the plan reads the whole input once (counts,
 * rejected rows with their lines, instances and CAs, budgets, duration) and changes nothing; the
 * apply creates the batch and enqueues from the same file, in the background, while the page
 * already shows the batch filling.
 */
import { createReadStream } from 'node:fs';
import { AuditTrail } from '../../audit/audit-trail.js';
import type { BatchPriority } from '../../queue/priority.js';
import type { RevocationAction } from '../../cloud/certificate-api.js';
import { CertificateApi } from '../../cloud/certificate-api.js';
import { openApiCaller } from '../../cli/api-caller.js';
import { listCaDevices, readListing } from '../../cli/ca-listing.js';
import { csvFilePlan, estimateSeconds, PlanCounter, readPlanBudgets, type Plan } from '../../cli/plan.js';
import { CsvInputError } from '../../producer/csv-input-error.js';
import { readDeviceCsv } from '../../producer/csv-source.js';
import type { InputItem, RejectedRow } from '../../producer/device-request.js';
import type { EnqueueSummary } from '../../producer/enqueuer.js';
import { Intake, intakeDeps } from '../../producer/intake.js';
import type { ReasonCode } from '../../report/batch-audit.js';
import type { Context } from '../../runtime/context.js';
import type { Logger } from 'pino';
import { consoleFactsKey } from './batch-devices.js';

/** Rejected rows a plan keeps to show (all are counted; the report lists every one). */
export const MAX_REJECTED_SHOWN = 200;
/** Most (instance, CA) pairs kept for the batch page's search (beyond that it samples). */
const MAX_PAIRS_KEPT = 200;

/** What the plan of an input says, for the plan page. */
export interface IntakePlan {
  plan: Plan;
  /** The first rejected rows, with their input lines. */
  rejectedShown: RejectedRow[];
  /** Distinct (instance, CA) pairs of the input (up to 200). */
  pairs: { instance: string; caSn: string }[];
}

/** Defaults a CSV's rows take when a column is absent or empty (the CLI's --instance / --ca-sn). */
export interface CsvDefaults {
  defaultInstanceId?: string;
  defaultCaSn?: string;
}

/** A whole file refused (empty, binary, no DeviceSn column…): the message names the problem. */
export class IntakeInputError extends Error {
  override readonly name = 'IntakeInputError';
}

function pairsOf(counter: PlanCounter): { instance: string; caSn: string }[] {
  return counter
    .targets()
    .cas.slice(0, MAX_PAIRS_KEPT)
    .map((entry) => {
      const slash = entry.indexOf('/');
      return { instance: entry.slice(0, slash), caSn: entry.slice(slash + 1) };
    });
}

async function* csvItems(file: string, defaults: CsvDefaults): AsyncGenerator<InputItem> {
  try {
    yield* readDeviceCsv(createReadStream(file), defaults);
  } catch (error) {
    if (error instanceof CsvInputError) throw new IntakeInputError(error.message, { cause: error });
    throw error;
  }
}

/** Reads an uploaded CSV once and plans it. Throws `IntakeInputError` for a file refused whole. */
export async function planCsv(context: Context, file: string, input: { fileName: string; sha256: string; action: RevocationAction; defaults: CsvDefaults }): Promise<IntakePlan> {
  const counter = new PlanCounter();
  const rejectedShown: RejectedRow[] = [];
  for await (const item of csvItems(file, input.defaults)) {
    if (item.kind === 'rejected') {
      counter.rejected += 1;
      if (rejectedShown.length < MAX_REJECTED_SHOWN) rejectedShown.push(item.row);
    } else counter.addDevice(item.request);
  }
  const budgets = await readPlanBudgets(context);
  return {
    plan: csvFilePlan(input.fileName, input.action, counter, input.sha256, budgets),
    rejectedShown,
    pairs: pairsOf(counter),
  };
}

/** Progress of a CA listing. */
export interface ListingProgress {
  listed: number;
  pages: number;
}

/**
 * Lists every device certificate under a CA into `file` through the shared rate budgets (a
 * `GetCaCertificate` first), then plans it. Throws the API's error when the CA or instance is
 * refused; the caller shows its message.
 */
export async function planCaListing(context: Context, log: Logger, target: { mqttInstanceId: string; caSn: string; action: RevocationAction }, file: string, onProgress: (progress: ListingProgress) => void): Promise<IntakePlan> {
  const { config } = context;
  const api = new CertificateApi({ endpoint: config.apiEndpoint, protocol: config.apiProtocol, timeoutMs: config.apiTimeoutMs, credentials: config.credentials });
  const caller = await openApiCaller(context, api, log);
  let listing: { devices: number; pages: number };
  try {
    await caller.call('GetCaCertificate', `GetCaCertificate ${target.caSn}`, () => api.getCa(target.mqttInstanceId, target.caSn));
    listing = await listCaDevices(caller, api, { mqttInstanceId: target.mqttInstanceId, caSn: target.caSn, pageSize: 100 }, file, (listed, pages) => onProgress({ listed, pages }));
  } finally {
    await caller.close();
  }
  const budgets = await readPlanBudgets(context);
  return {
    plan: {
      title: `${target.action} every device certificate under CA ${target.caSn} (${listing.devices.toLocaleString('en-US')} listed)`,
      action: target.action,
      devices: listing.devices,
      rejected: 0,
      duplicates: 0,
      instances: [target.mqttInstanceId],
      cas: [`${target.mqttInstanceId}/${target.caSn}`],
      budgets,
      calls: listing.devices,
      estimatedSeconds: estimateSeconds(listing.devices, budgets),
      notes: [`the listing took ${listing.pages + 1} calls`],
    },
    rejectedShown: [],
    pairs: [{ instance: target.mqttInstanceId, caSn: target.caSn }],
  };
}

/** What to start. */
export interface StartSpec {
  input: { kind: 'csv'; file: string; fileName: string; sha256: string; defaults: CsvDefaults } | { kind: 'ca'; file: string; mqttInstanceId: string; caSn: string };
  name: string;
  action: RevocationAction;
  priority: BatchPriority;
  reason: string | null;
  reasonCode: ReasonCode | null;
  pairs: { instance: string; caSn: string }[];
  /** `token:<name>`. */
  actor: string;
  /** Client address, for the audit trail. */
  from: string;
}

/** A started batch and its enqueue, running in the background. */
export interface StartedBatch {
  batchId: string;
  /** Settles when every input row is read and enqueued (or the enqueue failed). */
  done: Promise<EnqueueSummary>;
}

/**
 * Creates the batch (with its audit facts and the pairs the search needs) and enqueues its input
 * in the background. `signal` stops reading (the server is shutting down): the batch is then
 * left `enqueuing` without a producer, and the reconciler marks it enqueued with a note that its
 * input was cut short.
 */
export async function startBatch(context: Context, spec: StartSpec, signal: AbortSignal): Promise<StartedBatch> {
  const trail = new AuditTrail(context.redis, context.keys, context.config.retentionDays);
  const source = spec.input.kind === 'csv' ? 'csv' : 'ca_listing';
  const command = spec.input.kind === 'csv' ? `console: upload of ${spec.input.fileName} by ${spec.actor}` : `console: everything under CA ${spec.input.caSn} on ${spec.input.mqttInstanceId}, by ${spec.actor}`;
  // The one intake path (src/producer/intake.ts): batch, header facts, heartbeat, input order.
  const intake = new Intake(intakeDeps(context), { highWaterJobs: context.config.highWaterJobs });
  const batch = await intake.open({
    name: spec.name,
    source,
    action: spec.action,
    priority: spec.priority,
    createdBy: spec.actor,
    facts: { reason: spec.reason, reasonCode: spec.reasonCode, command, ...(spec.input.kind === 'csv' ? { inputFile: spec.input.fileName, inputSha256: spec.input.sha256 } : {}) },
  });
  const batchId = batch.batchId;
  await context.redis
    .multi()
    .hset(consoleFactsKey(context.keys, batchId), 'pairs', JSON.stringify(spec.pairs))
    .expire(consoleFactsKey(context.keys, batchId), context.config.retentionDays * 86_400)
    .exec();
  const args = {
    source: spec.input.kind === 'csv' ? 'console upload' : 'console CA listing',
    ...(spec.input.kind === 'csv' ? { file: spec.input.fileName, inputSha256: spec.input.sha256 } : { mqttInstanceId: spec.input.mqttInstanceId, caSn: spec.input.caSn }),
    action: spec.action,
    priority: spec.priority,
    reason: spec.reason,
    reasonCode: spec.reasonCode,
  };
  await trail.record({ action: 'enqueue', batchId, actor: spec.actor, from: spec.from, args: { ...args, status: 'started' }, ok: true });

  const input = spec.input;
  async function* items(): AsyncGenerator<InputItem> {
    const all: AsyncIterable<InputItem> =
      input.kind === 'csv'
        ? csvItems(input.file, input.defaults)
        : (async function* listed(): AsyncGenerator<InputItem> {
            for await (const device of readListing(input.file)) yield { kind: 'device', request: { mqttInstanceId: input.mqttInstanceId, caSn: device.caSn, deviceSn: device.deviceSn, line: device.position } };
          })();
    for await (const item of all) {
      if (signal.aborted) throw new Error('the server stopped while enqueueing: the reconciler finishes the batch with what was enqueued');
      yield item;
    }
  }
  const done = batch.enqueue(items()).then(
    async (summary) => {
      await trail.record({ action: 'enqueue', batchId, actor: spec.actor, from: spec.from, args: { ...args, status: 'enqueued', accepted: summary.accepted, rejected: summary.rejected, duplicates: summary.duplicates }, ok: true });
      return summary;
    },
    async (error: unknown) => {
      await trail.record({ action: 'enqueue', batchId, actor: spec.actor, from: spec.from, args: { ...args, status: 'stopped', error: error instanceof Error ? error.message.slice(0, 200) : 'unknown error' }, ok: false }).catch(() => undefined);
      throw error;
    },
  );
  return { batchId, done };
}
