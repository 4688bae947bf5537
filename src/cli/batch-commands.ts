/**
 * `revoker status`, `report`, `batch …` and `dlq …`: what an operator uses during a run.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { Command } from 'commander';
import type { Batch } from '../batches/batch.js';
import { parsePriority } from '../queue/priority.js';
import { reportLines, type ReportFormat } from '../results/report-writer.js';
import type { Context } from '../runtime/context.js';
import { CliError, EXIT, withContext } from './cli-context.js';
import { ProgressLine } from './progress-line.js';

/** True when every accepted device ended revoked or confirmed absent. */
export function batchSucceeded(batch: Batch): boolean {
  return batch.counts.failed === 0 && batch.counts.cancelled === 0 && batch.done >= batch.accepted && batch.state === 'completed';
}

/** True when the batch will not change any more. */
export function batchFinished(batch: Batch): boolean {
  return batch.state === 'completed' || (batch.state === 'cancelled' && batch.finishedAt !== null);
}

/** One line a person reads. */
export function describeBatch(batch: Batch, ratePerSecond: number | null): string {
  const c = batch.counts;
  const remaining = Math.max(0, batch.accepted - batch.done);
  const eta = ratePerSecond !== null && ratePerSecond > 0 && remaining > 0 && batch.state === 'running' ? `  eta ${Math.ceil(remaining / ratePerSecond)} s at ${Math.round(ratePerSecond)}/s` : '';
  const reason = batch.reason !== null ? `  reason: ${batch.reason}` : '';
  const events = batch.eventsFailed > 0 ? `  completion events undelivered: ${batch.eventsFailed}` : '';
  return (
    `${batch.id} [${batch.state}${batch.enqueued ? '' : ', enqueuing'}${batch.priority === 'normal' ? '' : `, ${batch.priority}`}] ${batch.name}: ` +
    `${batch.done}/${batch.accepted} done  deleted ${c.deleted}  inactivated ${c.inactivated}  not_found ${c.not_found}  failed ${c.failed}  cancelled ${c.cancelled}  ` +
    `rejected ${batch.rejected}  duplicates ${batch.duplicates}${eta}${reason}${events}`
  );
}

async function currentRate(context: Context): Promise<number | null> {
  const key = context.config.rateLimitKey;
  if (key === null) return context.config.ratePerSecond;
  const shared = await context.redis.get(context.keys.currentRate(key));
  return shared === null ? context.config.ratePerSecond : Number(shared);
}

async function getBatch(context: Context, batchId: string): Promise<Batch> {
  const batch = await context.batches.get(batchId);
  if (batch === null) throw new CliError(`batch ${batchId} not found (wrong id, or expired after the retention period)`, EXIT.notFound);
  return batch;
}

interface StatusFlags {
  json?: boolean;
  watch?: boolean;
  wait?: boolean;
  intervalMs: string;
}

async function status(batchId: string, flags: StatusFlags): Promise<number> {
  return withContext('revoker-status', async (context) => {
    const intervalMs = Math.max(100, Number(flags.intervalMs) || 1_000);
    const line = new ProgressLine(process.stdout, 0);
    let stop = false;
    const onSignal = () => {
      stop = true;
    };
    process.once('SIGINT', onSignal);
    try {
      for (;;) {
        const batch = await getBatch(context, batchId);
        const finished = batchFinished(batch);
        const text = flags.json === true ? JSON.stringify({ ...batch, ratePerSecond: await currentRate(context) }) : describeBatch(batch, await currentRate(context));
        const keepGoing = (flags.watch === true || flags.wait === true) && !finished && !stop;
        if (flags.json !== true && flags.watch === true && line.enabled) {
          line.update(text, true);
          if (!keepGoing) line.done();
        } else if (!keepGoing || flags.watch === true) {
          process.stdout.write(`${text}\n`);
        }
        if (!keepGoing) {
          if (flags.wait === true) return finished && batchSucceeded(batch) ? EXIT.ok : EXIT.incomplete;
          return EXIT.ok;
        }
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
      }
    } finally {
      process.removeListener('SIGINT', onSignal);
    }
  });
}

async function report(batchId: string, flags: { format: string; out?: string }): Promise<number> {
  if (flags.format !== 'csv' && flags.format !== 'ndjson') throw new CliError(`--format must be csv or ndjson, got '${flags.format}'`);
  const format: ReportFormat = flags.format;
  return withContext('revoker-report', async (context) => {
    await getBatch(context, batchId);
    const out = flags.out !== undefined ? createWriteStream(flags.out) : process.stdout;
    let lines = 0;
    for await (const text of reportLines(batchId, format, context.results, context.batches)) {
      lines += 1;
      if (!out.write(text)) await once(out, 'drain');
    }
    if (flags.out !== undefined) {
      await new Promise<void>((resolve, reject) => (out as ReturnType<typeof createWriteStream>).end((error?: Error | null) => (error ? reject(error) : resolve())));
      process.stderr.write(`report of ${batchId}: ${format === 'csv' ? lines - 1 : lines} lines written to ${flags.out}\n`);
    }
    return EXIT.ok;
  });
}

/** Adds the operator commands to the program. */
export function registerBatchCommands(program: Command, run: (body: () => Promise<number>) => Promise<void>): void {
  program
    .command('status')
    .description('counts by outcome, state, rate and ETA of a batch')
    .argument('<batch>', 'batch id')
    .option('--json', 'machine-readable')
    .option('--watch', 'redraw until the batch finishes')
    .option('--wait', 'block until the batch finishes; exit 0 only if every device was revoked or not found')
    .option('--interval-ms <ms>', 'refresh period of --watch/--wait', '1000')
    .action((batchId: string, flags: StatusFlags) => run(() => status(batchId, flags)));

  program
    .command('report')
    .description('one line per device and per rejected input row')
    .argument('<batch>', 'batch id')
    .option('--format <format>', 'csv or ndjson', 'csv')
    .option('--out <file>', 'write to a file instead of standard output')
    .action((batchId: string, flags: { format: string; out?: string }) => run(() => report(batchId, flags)));

  const batch = program.command('batch').description('list and control batches');
  batch
    .command('list')
    .description('the most recent batches first')
    .option('--limit <n>', 'how many', '20')
    .option('--json', 'machine-readable')
    .action((flags: { limit: string; json?: boolean }) =>
      run(() =>
        withContext('revoker-batch', async (context) => {
          const batches = await context.batches.list(Math.max(1, Number(flags.limit) || 20));
          if (flags.json === true) process.stdout.write(`${JSON.stringify(batches)}\n`);
          else if (batches.length === 0) process.stdout.write('no batches\n');
          else for (const entry of batches) process.stdout.write(`${describeBatch(entry, null)}\n`);
          return EXIT.ok;
        }),
      ),
    );
  for (const verb of ['pause', 'resume', 'cancel'] as const) {
    batch
      .command(verb)
      .description(verb === 'pause' ? 'stop calls for a batch (other batches go on)' : verb === 'resume' ? 'resume a paused batch' : 'record the remaining devices as cancelled, without calls')
      .argument('<batch>', 'batch id')
      .option('--reason <text>', 'why (shown by status)')
      .action((batchId: string, flags: { reason?: string }) =>
        run(() =>
          withContext('revoker-batch', async (context) => {
            await getBatch(context, batchId);
            const result = verb === 'pause' ? await context.control.pause(batchId, flags.reason) : verb === 'resume' ? await context.control.resume(batchId) : await context.control.cancel(batchId, flags.reason);
            if (!result.ok) throw new CliError(result.message, EXIT.incomplete);
            process.stdout.write(`batch ${batchId} ${result.message}${result.woken > 0 ? ` (${result.woken} parked jobs woken)` : ''}\n`);
            return EXIT.ok;
          }),
        ),
      );
  }

  batch
    .command('priority')
    .description('change a batch\'s priority (urgent, normal, bulk); its waiting jobs move with it')
    .argument('<batch>', 'batch id')
    .argument('<priority>', 'urgent, normal or bulk')
    .action((batchId: string, value: string) =>
      run(() =>
        withContext('revoker-batch', async (context) => {
          const priority = parsePriority(value);
          if (priority === null) throw new CliError(`priority must be urgent, normal or bulk, got '${value}'`);
          await getBatch(context, batchId);
          const result = await context.control.setPriority(batchId, priority);
          process.stdout.write(`batch ${batchId} is now ${priority} (${result.moved} waiting jobs moved)\n`);
          return EXIT.ok;
        }),
      ),
    );

  const dlq = program.command('dlq').description('dead letters: devices that could not be revoked');
  dlq
    .command('list')
    .option('--batch <batch>', 'only this batch')
    .option('--limit <n>', 'how many', '100')
    .option('--json', 'NDJSON, one dead letter per line')
    .action((flags: { batch?: string; limit: string; json?: boolean }) =>
      run(() =>
        withContext('revoker-dlq', async (context) => {
          const entries = await context.deadLetters.list(flags.batch, Math.max(1, Number(flags.limit) || 100));
          for (const entry of entries) {
            if (flags.json === true) process.stdout.write(`${JSON.stringify(entry)}\n`);
            else process.stdout.write(`${entry.batchId} ${entry.mqttInstanceId} ${entry.caSn} ${entry.deviceSn} attempts=${entry.history.filter((a) => a.counted).length} ${entry.reason}\n`);
          }
          if (flags.json !== true) process.stderr.write(`${entries.length} dead letters${flags.batch ? ` in ${flags.batch}` : ''}\n`);
          return EXIT.ok;
        }),
      ),
    );
  dlq
    .command('redrive')
    .description('put dead letters back on the queue with fresh attempts')
    .option('--batch <batch>', 'only this batch')
    .action((flags: { batch?: string }) =>
      run(() =>
        withContext('revoker-dlq', async (context) => {
          const summary = await context.deadLetters.redrive(flags.batch);
          process.stdout.write(`${summary.redriven} dead letters redriven${summary.skipped > 0 ? `, ${summary.skipped} skipped (batch expired)` : ''}\n`);
          return EXIT.ok;
        }),
      ),
    );
  dlq
    .command('purge')
    .description('delete dead letters (their records stay failed)')
    .option('--batch <batch>', 'only this batch')
    .action((flags: { batch?: string }) =>
      run(() =>
        withContext('revoker-dlq', async (context) => {
          const purged = await context.deadLetters.purge(flags.batch);
          process.stdout.write(`${purged} dead letters purged\n`);
          return EXIT.ok;
        }),
      ),
    );
}
