/**
 * `revoker reconcile [BATCH]`: runs one reconciler sweep now (waiting for a worker's sweep to end
 * if one holds the lock) and prints what it fixed.
 */
import type { Command } from 'commander';
import { destination } from 'pino';
import { CliError, EXIT, withContext } from '../cli/cli-context.js';
import { escapeControl } from '../cli/terminal-text.js';
import { createLogger } from '../logging/logger.js';
import { nothingFixed, Reconciler, type ReconcileReport } from './reconciler.js';

/** How long `revoker reconcile` waits for a sweep in progress elsewhere before giving up. */
export const CLI_LOCK_WAIT_MS = 300_000;

/** The report as lines a person reads. */
export function describeReconcile(report: ReconcileReport): string[] {
  if (nothingFixed(report)) return ['nothing to repair: every pending device has its job'];
  const lines: string[] = [];
  for (const batchId of report.cutShort) lines.push(`batch ${batchId}: its producer had stopped; marked enqueued with the devices accepted so far`);
  if (report.droppedSets > 0) lines.push(`${report.droppedSets} subscriber sets of finished jobs removed`);
  if (report.closedRevocations > 0) lines.push(`${report.closedRevocations} revocations whose job never reached the queue closed (nobody was waiting)`);
  if (report.retried.length > 0) lines.push(`${report.retried.length} jobs of the failed set retried`);
  if (report.removedFailed.length > 0) lines.push(`${report.removedFailed.length} stale jobs of the failed set removed`);
  if (report.resubscribed > 0) lines.push(`${report.resubscribed} batches put back on their device's job`);
  for (const device of report.requeued) {
    lines.push(`batch ${device.batchId}: device ${device.deviceSn} had ${device.why === 'missing' ? 'a job that did not exist' : 'no job'}: queued ${device.jobId}`);
  }
  return lines.map((line) => escapeControl(line));
}

async function reconcile(batchId: string | undefined, json: boolean): Promise<number> {
  return withContext('revoker-reconcile', async (context) => {
    if (batchId !== undefined && (await context.batches.get(batchId)) === null) throw new CliError(`batch ${batchId} not found`, EXIT.notFound);
    // Logs go to stderr: stdout is the report (`--json` is parsed by scripts).
    const log = createLogger(context.config.logLevel === 'info' ? 'warn' : context.config.logLevel, 'revoker-reconcile', destination(2));
    const reconciler = new Reconciler({ redis: context.redis, keys: context.keys, queue: context.queue, batches: context.batches, results: context.results, deadLetters: context.deadLetters, log });
    // A worker's sweep holds the lock for seconds, a very large one for minutes (it refreshes the
    // lock at every page): wait for it rather than fail. A holder that died frees it within lockMs.
    const report = await reconciler.runOnce(batchId, CLI_LOCK_WAIT_MS);
    if (report === null) throw new CliError('another reconciler kept the lock: try again later', EXIT.incomplete);
    if (json) process.stdout.write(`${JSON.stringify(report)}\n`);
    else for (const line of describeReconcile(report)) process.stdout.write(`${line}\n`);
    return EXIT.ok;
  });
}

/** Adds `reconcile [BATCH]` to the program. */
export function registerReconcileCommand(program: Command, run: (body: () => Promise<number>) => Promise<void>): void {
  program
    .command('reconcile [batch]')
    .description('find and repair devices without a job or record (after a crash); prints what it fixed')
    .option('--json', 'the report as one JSON object')
    .action((batchId: string | undefined, flags: { json?: boolean }) => run(() => reconcile(batchId, flags.json === true)));
}
