#!/usr/bin/env node
/**
 * The `revoker` command line.
 */
import { Command, CommanderError } from 'commander';
import { registerEmulatorCommand } from '../emulator/emulator-command.js';
import { registerServeCommand } from '../server/serve-command.js';
import { runWorker } from '../runtime/run-worker.js';
import { registerReconcileCommand } from '../reconcile/reconcile-command.js';
import { registerAccountCommands } from './account-commands.js';
import { registerAuditCommand } from './audit-command.js';
import { registerBatchCommands } from './batch-commands.js';
import { registerCaCommands } from './ca-commands.js';
import { CliError, EXIT } from './cli-context.js';
import { registerEnqueueCommands } from './enqueue-commands.js';
import { registerReportCommand } from './report-command.js';
import { registerVerifyCommands } from './verify-commands.js';

/** Runs a command body, turning its result or error into the process exit code. */
async function run(body: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await body();
  } catch (error) {
    if (error instanceof CliError) {
      process.stderr.write(`revoker: ${error.message}\n`);
      process.exitCode = error.exitCode;
      return;
    }
    process.stderr.write(`revoker: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}

/** Builds the program (exported for tests). */
export function buildProgram(): Command {
  const program = new Command('revoker')
    .description('bulk revocation of device certificates on ApsaraMQ for MQTT, at the account API cap')
    .exitOverride()
    .showHelpAfterError();
  program
    .command('worker')
    .description('run a worker until SIGTERM/SIGINT, then finish in-flight calls')
    .action(() => run(() => runWorker()));
  registerEnqueueCommands(program, run);
  registerBatchCommands(program, run);
  registerCaCommands(program, run);
  registerVerifyCommands(program, run);
  registerAuditCommand(program, run);
  registerAccountCommands(program, run);
  registerReportCommand(program, run);
  registerReconcileCommand(program, run);
  registerServeCommand(program);
  registerEmulatorCommand(program);
  return program;
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return;
    }
    throw error;
  }
  // Commands that hold no handles let the process end by itself; the worker and emulator exit on signals.
}

void main();
