/**
 * `revoker report BATCH [--format csv|ndjson] [--out FILE] [--sign] [--plain]`: the batch's
 * report, sealed by default (a header, a hash chain over the lines in input order, a seal line;
 * `--sign` signs the seal with REPORT_SIGNING_KEY_FILE), or the bare table with `--plain`.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import type { Command } from 'commander';
import { AuditTrail } from '../audit/audit-trail.js';
import type { Batch } from '../batches/batch.js';
import type { KeyObject } from 'node:crypto';
import { loadSigningKey, SigningKeyError } from '../report/report-signature.js';
import { reportStores } from '../report/report-stores.js';
import { writeSealedReport, type SealedReportSummary } from '../report/sealed-report.js';
import { reportLines, type ReportFormat } from '../results/report-writer.js';
import type { Context } from '../runtime/context.js';
import { batchFinished } from './batch-commands.js';
import { CliError, EXIT, withContext } from './cli-context.js';
import { operatorName } from './operator.js';
import { terminalLine } from './terminal-text.js';

/** Flags of `revoker report`. */
export interface ReportFlags {
  format: string;
  out?: string;
  sign?: boolean;
  plain?: boolean;
}

/** What a report run wrote. */
export type ReportResult = { kind: 'plain'; lines: number } | { kind: 'sealed'; summary: SealedReportSummary };

async function signingKey(context: Context): Promise<KeyObject> {
  const file = context.config.reportSigningKeyFile;
  if (file === null) throw new CliError('--sign needs REPORT_SIGNING_KEY_FILE: the path of an Ed25519 private key in PEM (openssl genpkey -algorithm ed25519 -out report-signing.pem)');
  try {
    const { key, warning } = await loadSigningKey(file);
    if (warning !== null) process.stderr.write(`revoker: warning: ${warning}\n`);
    return key;
  } catch (error) {
    if (error instanceof SigningKeyError) throw new CliError(`REPORT_SIGNING_KEY_FILE: ${error.message}`);
    throw error;
  }
}

/** Writes `batch`'s report to `out` (not ended) as the flags say. */
export async function writeReport(context: Context, batch: Batch, flags: ReportFlags, out: NodeJS.WritableStream): Promise<ReportResult> {
  if (flags.format !== 'csv' && flags.format !== 'ndjson') throw new CliError(`--format must be csv or ndjson, got '${flags.format}'`);
  const format: ReportFormat = flags.format;
  if (flags.plain === true && flags.sign === true) throw new CliError('--plain reports have no seal to sign: leave out one of --plain and --sign');
  const { order, audit } = reportStores(context);
  if (flags.plain === true) {
    let lines = 0;
    for await (const text of reportLines(batch.id, format, context.results, context.batches, order)) {
      lines += 1;
      if (!out.write(text)) await once(out, 'drain');
    }
    return { kind: 'plain', lines: format === 'csv' ? lines - 1 : lines };
  }
  let key: KeyObject | null = null;
  if (flags.sign === true) {
    // A signature vouches for the outcomes: they must be final.
    if (!batchFinished(batch)) throw new CliError(`batch ${batch.id} is ${batch.state}: sign its report once it is finished (revoker status ${batch.id} --wait)`);
    key = await signingKey(context);
  }
  const trail = new AuditTrail(context.redis, context.keys, context.config.retentionDays);
  const summary = await writeSealedReport(batch, out, { results: context.results, batches: context.batches, order, audit, trail }, { format, signingKey: key, generatedBy: operatorName() });
  return { kind: 'sealed', summary };
}

/** Standard output that escapes control characters in what it is given. */
function inertTerminal(): NodeJS.WritableStream {
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      // Each write is one report line (a quoted newline inside it is shown as \x0a).
      process.stdout.write(terminalLine(String(chunk)), () => callback());
    },
  });
}

async function report(batchId: string, flags: ReportFlags): Promise<number> {
  return withContext('revoker-report', async (context) => {
    const batch = await context.batches.get(batchId);
    if (batch === null) throw new CliError(`batch ${batchId} not found (wrong id, or expired after the retention period)`, EXIT.notFound);
    // On a terminal, stored text is shown inert (a report shown that way is for reading: write
    // it with --out, or through a pipe, to keep the bytes its chain covers).
    const out = flags.out !== undefined ? createWriteStream(flags.out) : process.stdout.isTTY === true ? inertTerminal() : process.stdout;
    const result = await writeReport(context, batch, flags, out);
    if (flags.out !== undefined) {
      const file = out as ReturnType<typeof createWriteStream>;
      await new Promise<void>((resolve, reject) => file.end((error?: Error | null) => (error ? reject(error) : resolve())));
    }
    const where = flags.out !== undefined ? ` written to ${flags.out}` : '';
    if (result.kind === 'plain') process.stderr.write(`report of ${batchId}: ${result.lines} lines${where}\n`);
    else {
      const { seal, header } = result.summary;
      const signature = seal.signature !== null ? `signed with key ${seal.signature.keyFingerprint}` : 'not signed (--sign signs it)';
      process.stderr.write(`report of ${batchId}: ${header.lines} device and rejected-row lines${where}; final hash ${seal.finalHash}; ${signature}\n`);
    }
    return EXIT.ok;
  });
}

/** Adds `report` to the program. */
export function registerReportCommand(program: Command, run: (body: () => Promise<number>) => Promise<void>): void {
  program
    .command('report')
    .description('the batch report: a header, one line per device and per rejected input row in input order, hash-chained and sealed')
    .argument('<batch>', 'batch id')
    .option('--format <format>', 'csv or ndjson', 'csv')
    .option('--out <file>', 'write to a file instead of standard output')
    .option('--sign', 'sign the seal with the Ed25519 key in REPORT_SIGNING_KEY_FILE (finished batches only)')
    .option('--plain', 'only the table: no header, chain or seal (not verifiable)')
    .action((batchId: string, flags: ReportFlags) => run(() => report(batchId, flags)));
}
