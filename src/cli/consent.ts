/**
 * Consent before a command changes anything: on a terminal, a question; `--yes` (or, for `ca
 * delete`, `--confirm SN`) answers it in advance; without a terminal and without that answer the
 * command refuses (exit 2) before doing anything. A script that meant to revoke says so.
 */
import { createInterface } from 'node:readline';
import { CliError, EXIT } from './cli-context.js';

/** The terminal the question would be asked on. */
export interface Terminal {
  input: NodeJS.ReadableStream & { isTTY?: boolean };
  output: NodeJS.WritableStream;
}

/** The process's own terminal (the question goes to stderr, so stdout stays the command's output). */
export function processTerminal(): Terminal {
  return { input: process.stdin, output: process.stderr };
}

/** True when a person can answer a question: standard input is a terminal. */
export function isInteractive(terminal: Terminal = processTerminal()): boolean {
  return terminal.input.isTTY === true;
}

/**
 * Refuses up front when nobody could answer: no `--yes` (or `--confirm`), not a dry run, and no
 * terminal. `how` names the flag that would answer.
 */
export function requireConsentPossible(flags: { yes?: boolean; dryRun?: boolean }, how = '--yes', terminal: Terminal = processTerminal()): void {
  if (flags.yes === true || flags.dryRun === true || isInteractive(terminal)) return;
  throw new CliError(`no terminal to ask for confirmation: pass ${how} to go ahead without one, or --dry-run to see the plan`, EXIT.usage);
}

/** Asks one question and resolves with the answer (trimmed); an ended input answers ''. */
export async function ask(question: string, terminal: Terminal = processTerminal()): Promise<string> {
  const rl = createInterface({ input: terminal.input, output: terminal.output, terminal: false });
  terminal.output.write(question);
  try {
    const answer = await new Promise<string>((resolve) => {
      rl.once('line', (line) => resolve(line));
      rl.once('close', () => resolve(''));
    });
    return answer.trim();
  } finally {
    rl.close();
  }
}

/** Asks for `y`; true only for y or yes. */
export async function confirmYes(question: string, terminal: Terminal = processTerminal()): Promise<boolean> {
  return /^(y|yes)$/i.test(await ask(`${question} [y/N] `, terminal));
}
