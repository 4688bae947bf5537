/**
 * Shared plumbing of CLI commands: configuration errors as exit code 2, a context closed on the
 * way out whatever happens.
 */
import { ConfigError, resolveConfig, type Config } from '../config/config.js';
import { openContext, type Context } from '../runtime/context.js';

/** Exit codes of the CLI. */
export const EXIT = {
  ok: 0,
  /** The batch ended with devices not revoked (failed or cancelled). */
  incomplete: 1,
  /** Bad configuration, flags or input file. */
  usage: 2,
  /** The batch (or other named thing) does not exist. */
  notFound: 3,
} as const;

/** An error the CLI reports as one line and an exit code, without a stack. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.usage,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Resolves the configuration, turning a bad variable into a `CliError`. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return resolveConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(error.message, EXIT.usage);
    throw error;
  }
}

/** Runs `body` with an open context and closes it afterwards. */
export async function withContext<T>(name: string, body: (context: Context) => Promise<T>): Promise<T> {
  const context = openContext(loadConfig(), name);
  try {
    return await body(context);
  } finally {
    await context.close();
  }
}
