/**
 * `revoker account …` and `revoker budgets`: the account-wide pause and the rate budgets.
 */
import type { Command } from 'commander';
import { readBudgetRates, type BudgetRate } from '../limiter/budget-status.js';
import { auditCli } from './cli-actor.js';
import { EXIT, withContext } from './cli-context.js';

/** The budgets as lines a person reads: "egress default: 271 of 280 calls in the last second". */
export function describeBudgets(budgets: readonly BudgetRate[]): string[] {
  return budgets.map((budget) =>
    budget.kind === 'egress'
      ? `egress ${budget.label}: ${budget.lastSecond} of ${budget.configuredPerSecond} calls in the last second (the API blocks a source IP above 300/s)`
      : `account ${budget.name.slice('account:'.length, budget.name.lastIndexOf(':'))} ${budget.label}: ${budget.lastSecond} of ${budget.configuredPerSecond} calls in the last second`,
  );
}

async function resumeAccount(): Promise<number> {
  return withContext('revoker-account', async (context) => {
    const { lifted, resumed, woken } = await context.control.resumeAccount();
    await auditCli(context, 'account_resume', null, { lifted: lifted.length, resumed: resumed.join(',') }, true);
    if (lifted.length === 0) process.stdout.write('no account-wide pause was in force\n');
    for (const reason of lifted) process.stdout.write(`lifted: ${reason}\n`);
    process.stdout.write(`${resumed.length} batches resumed${resumed.length > 0 ? ` (${resumed.join(', ')})` : ''}; ${woken} parked jobs woken\n`);
    return EXIT.ok;
  });
}

async function showAccount(json: boolean): Promise<number> {
  return withContext('revoker-account', async (context) => {
    const [pauses, budgets] = await Promise.all([context.control.accountPauseReasons(), readBudgetRates(context.redis, context.keys)]);
    if (json) {
      process.stdout.write(`${JSON.stringify({ paused: pauses.length > 0, reasons: pauses, budgets })}\n`);
      return EXIT.ok;
    }
    process.stdout.write(pauses.length === 0 ? 'account: not paused\n' : pauses.map((reason) => `account PAUSED: ${reason}\n`).join(''));
    for (const line of describeBudgets(budgets)) process.stdout.write(`${line}\n`);
    return EXIT.ok;
  });
}

/** Adds `account status|resume` to the program. */
export function registerAccountCommands(program: Command, run: (body: () => Promise<number>) => Promise<void>): void {
  const account = program.command('account').description('the account-wide pause and the rate budgets');
  account
    .command('status')
    .description('whether the account is paused (and why), and each rate budget in the last second')
    .option('--json', 'machine-readable')
    .action((flags: { json?: boolean }) => run(() => showAccount(flags.json === true)));
  account
    .command('resume')
    .description('lift the account-wide pause (credentials, permissions or a blocked IP fixed) and resume the batches it paused')
    .action(() => run(() => resumeAccount()));
}
