/**
 * `revoker status`, `batch …` and `dlq …`: what an operator uses during a run (`report` is in
 * report-command.ts).
 */
import type { Command } from 'commander';
import type { Batch } from '../batches/batch.js';
import { readBudgetRates, type BudgetRate } from '../limiter/budget-status.js';
import { parsePriority } from '../queue/priority.js';
import type { Context } from '../runtime/context.js';
import { describeBudgets } from './account-commands.js';
import { auditCli } from './cli-actor.js';
import { CliError, EXIT, withContext } from './cli-context.js';
import { escapeControl, jsonForTerminal } from './terminal-text.js';
import { controlCharacterProblem } from '../producer/free-text.js';
import { ProgressLine } from './progress-line.js';

/** True when every accepted device ended revoked or confirmed absent. */
export function batchSucceeded(batch: Batch): boolean {
  return batch.counts.failed === 0 && batch.counts.cancelled === 0 && batch.done >= batch.accepted && batch.state === 'completed';
}

/** True when the batch will not change any more. */
export function batchFinished(batch: Batch): boolean {
  return batch.state === 'completed' || (batch.state === 'cancelled' && batch.finishedAt !== null);
}

/** One line a person reads; stored text in it (name, reason) has its control characters escaped. */
export function describeBatch(batch: Batch, ratePerSecond: number | null): string {
  return escapeControl(describeBatchRaw(batch, ratePerSecond));
}

function describeBatchRaw(batch: Batch, ratePerSecond: number | null): string {
  const c = batch.counts;
  const remaining = Math.max(0, batch.accepted - batch.done);
  const eta = ratePerSecond !== null && ratePerSecond > 0 && remaining > 0 && batch.state === 'running' ? `  eta ${Math.ceil(remaining / ratePerSecond)} s at ${Math.round(ratePerSecond)}/s` : '';
  const reason = batch.reason !== null ? `  reason: ${batch.reason}` : '';
  const events = batch.eventsFailed > 0 ? `  completion events undelivered: ${batch.eventsFailed}` : '';
  return (
    `${batch.id} [${batch.state}${batch.enqueued ? '' : ', enqueuing'}${batch.priority === 'normal' ? '' : `, ${batch.priority}`}] ${batch.name}: ` +
    `${batch.done}/${batch.accepted} done  deleted ${c.deleted}  inactivated ${c.inactivated}  not_found ${c.not_found}  gone ${c.gone}  failed ${c.failed}  cancelled ${c.cancelled}  ` +
    `rejected ${batch.rejected}  duplicates ${batch.duplicates}${eta}${reason}${events}`
  );
}

/**
 * The rate revocations are getting: what the revocation budgets handed out in the last second,
 * else what the budgets in force allow (the adaptive account rate, one egress budget).
 */
async function currentRate(context: Context, budgets: readonly BudgetRate[]): Promise<number | null> {
  const revoking = budgets.filter((budget) => budget.kind === 'account' && /^(Delete|Inactivate)DeviceCertificate$/.test(budget.label));
  const measured = revoking.reduce((sum, budget) => sum + budget.lastSecond, 0);
  if (measured > 0) return measured;
  const key = context.config.rateLimitKey;
  const shared = key === null ? null : await context.redis.get(context.keys.currentRate(key));
  const account = shared === null ? context.config.ratePerSecond : Number(shared);
  return Math.min(account, context.config.egressRatePerSecond);
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
        const budgets = await readBudgetRates(context.redis, context.keys);
        const rate = await currentRate(context, budgets);
        const text = flags.json === true ? jsonForTerminal({ ...batch, ratePerSecond: rate, budgets }) : describeBatch(batch, rate);
        const keepGoing = (flags.watch === true || flags.wait === true) && !finished && !stop;
        if (flags.json !== true && flags.watch === true && line.enabled) {
          line.update(text, true);
          if (!keepGoing) line.done();
        } else if (!keepGoing || flags.watch === true) {
          process.stdout.write(`${text}\n`);
        }
        if (!keepGoing) {
          if (flags.json !== true && flags.watch !== true) for (const budget of describeBudgets(budgets)) process.stdout.write(`  ${budget}\n`);
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
          if (flags.json === true) process.stdout.write(`${jsonForTerminal(batches)}\n`);
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
            const problem = flags.reason === undefined ? null : controlCharacterProblem('--reason', flags.reason);
            if (problem !== null) throw new CliError(problem);
            await getBatch(context, batchId);
            const result = verb === 'pause' ? await context.control.pause(batchId, flags.reason) : verb === 'resume' ? await context.control.resume(batchId) : await context.control.cancel(batchId, flags.reason);
            await auditCli(context, verb, batchId, { reason: flags.reason ?? null }, result.ok);
            if (!result.ok) throw new CliError(escapeControl(result.message), EXIT.incomplete);
            process.stdout.write(`batch ${batchId} ${escapeControl(result.message)}${result.woken > 0 ? ` (${result.woken} parked jobs woken)` : ''}\n`);
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
          await auditCli(context, 'priority', batchId, { priority, moved: result.moved }, result.ok);
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
            if (flags.json === true) process.stdout.write(`${jsonForTerminal(entry)}\n`);
            else process.stdout.write(`${escapeControl(`${entry.batchId} ${entry.mqttInstanceId} ${entry.caSn} ${entry.deviceSn} attempts=${entry.history.filter((a) => a.counted).length} ${entry.reason}`)}\n`);
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
          await auditCli(context, 'redrive', flags.batch ?? null, { redriven: summary.redriven, skipped: summary.skipped }, true);
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
          await auditCli(context, 'purge', flags.batch ?? null, { purged }, true);
          process.stdout.write(`${purged} dead letters purged\n`);
          return EXIT.ok;
        }),
      ),
    );
}
