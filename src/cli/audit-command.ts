/**
 * `revoker audit [BATCH] [--limit N] [--json]`: the audit trail of a batch (oldest first), or the
 * most recent entries of all batches: who paused, resumed, cancelled, changed the priority of,
 * redrove, purged or enqueued what, when, from where and with which arguments.
 */
import type { Command } from 'commander';
import { AuditTrail, type AuditEntry } from '../audit/audit-trail.js';
import { CliError, EXIT, withContext } from './cli-context.js';
import { escapeControl, jsonForTerminal } from './terminal-text.js';

/** One entry as a line a person reads (stored text escaped). */
export function describeAuditEntry(entry: AuditEntry): string {
  const args = Object.entries(entry.args)
    .filter(([, value]) => value !== null)
    .map(([name, value]) => `${name}=${typeof value === 'string' ? JSON.stringify(value) : String(value)}`)
    .join(' ');
  return escapeControl(`${entry.at} ${entry.action}${entry.ok ? '' : ' (no effect)'} ${entry.batchId ?? '-'} by ${entry.actor} from ${entry.from}${args === '' ? '' : ` ${args}`}`);
}

/** Adds `audit` to the program. */
export function registerAuditCommand(program: Command, run: (body: () => Promise<number>) => Promise<void>): void {
  program
    .command('audit')
    .description('who did what to a batch (or to any batch), when, from where, with which arguments')
    .argument('[batch]', 'batch id (default: the most recent entries of every batch)')
    .option('--limit <n>', 'how many entries', '100')
    .option('--json', 'NDJSON, one entry per line')
    .action((batchId: string | undefined, flags: { limit: string; json?: boolean }) =>
      run(() =>
        withContext('revoker-audit', async (context) => {
          const limit = Number(flags.limit);
          if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) throw new CliError(`--limit must be an integer from 1 to 10000, got '${flags.limit}'`);
          if (batchId !== undefined && (await context.batches.get(batchId)) === null) {
            throw new CliError(`batch ${escapeControl(batchId)} not found (wrong id, or expired after the retention period)`, EXIT.notFound);
          }
          const entries = await new AuditTrail(context.redis, context.keys, context.config.retentionDays).list(batchId, limit);
          for (const entry of entries) process.stdout.write(`${flags.json === true ? jsonForTerminal(entry) : describeAuditEntry(entry)}\n`);
          if (flags.json !== true && entries.length === 0) process.stderr.write('no audit entries\n');
          return EXIT.ok;
        }),
      ),
    );
}
