/**
 * `revoker serve [--port 8080] [--host 0.0.0.0]`: runs the HTTP server (webhook, admin API,
 * /metrics, probes, dashboard) until SIGTERM/SIGINT, then stops taking requests, lets in-flight
 * ones finish, and closes Redis.
 */
import { InvalidArgumentError, type Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import { ConfigError, resolveConfig, type Config } from '../config/config.js';
import { createLogger } from '../logging/logger.js';
import { openContext, type Context } from '../runtime/context.js';
import { buildServer } from './build-server.js';

/** The flags of `revoker serve`, as commander hands them over (already parsed). */
export interface ServeCommandFlags {
  port: number;
  host: string;
}

/** Exit code of a configuration error (the CLI's `usage` code). */
const EXIT_CONFIG = 2;

function portArgument(value: string): number {
  const parsed = /^\d{1,5}$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(parsed) || parsed > 65_535) {
    throw new InvalidArgumentError(`--port must be an integer from 0 to 65535, got '${value}'.`);
  }
  return parsed;
}

/** A running `serve`: the server and what it was built on. */
export interface RunningServer {
  app: FastifyInstance;
  context: Context;
  /** `http://host:port` it listens on. */
  address: string;
  /** Closes the server (in-flight requests finish), then the context. */
  close(): Promise<void>;
}

/**
 * Starts the server from a resolved config. Throws a `ConfigError` when no admin token is
 * configured or a senders/tokens file is unusable (the context is closed again first).
 */
export async function startServe(config: Config, flags: ServeCommandFlags): Promise<RunningServer> {
  const logger = createLogger(config.logLevel, 'revoker-server');
  const context = openContext(config, 'revoker-server');
  let app: FastifyInstance;
  try {
    app = await buildServer({ context, logger });
    await app.listen({ port: flags.port, host: flags.host });
  } catch (error) {
    await context.close();
    throw error;
  }
  const addressInfo = app.server.address();
  const address = typeof addressInfo === 'object' && addressInfo !== null ? `http://${addressInfo.address.includes(':') ? `[${addressInfo.address}]` : addressInfo.address}:${addressInfo.port}` : String(addressInfo);
  logger.info({ address, webhooks: config.webhookSecrets.length > 0 || config.webhookSendersFile !== null, trustProxy: config.trustProxy !== false }, `revoker server listening on ${address}`);
  let closing: Promise<void> | null = null;
  return {
    app,
    context,
    address,
    close() {
      // Fastify first (it stops accepting, finishes in-flight requests that still need Redis), then Redis.
      closing ??= app.close().then(() => context.close());
      return closing;
    },
  };
}

/** Runs `serve` from the environment: exit code 2 on a configuration error, stops on SIGTERM/SIGINT. */
export async function runServeCommand(flags: ServeCommandFlags, env: NodeJS.ProcessEnv = process.env): Promise<RunningServer | null> {
  let running: RunningServer;
  try {
    running = await startServe(resolveConfig(env), flags);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`revoker: ${error.message}\n`);
      process.exitCode = EXIT_CONFIG;
      return null;
    }
    // A port in use, Redis refusing a command: one line, not a stack.
    process.stderr.write(`revoker: the server could not start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
    return null;
  }
  const logger = running.app.log;
  const shutdown = (signal: NodeJS.Signals): void => {
    process.off('SIGTERM', shutdown);
    process.off('SIGINT', shutdown);
    logger.info({ signal }, 'revoker server stopping');
    running.close().then(
      () => logger.info('revoker server stopped'),
      (error: unknown) => {
        logger.error({ err: error }, 'revoker server did not stop cleanly');
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  return running;
}

/** Adds `serve` to the CLI program. */
export function registerServeCommand(program: Command): Command {
  return program
    .command('serve')
    .description('run the HTTP server: signed webhooks, admin API, /metrics, /healthz, /readyz and the dashboard')
    .option('--port <n>', 'TCP port (0 picks a free one)', portArgument, 8080)
    .option('--host <host>', 'interface to listen on', '0.0.0.0')
    .action(async (flags: ServeCommandFlags) => {
      await runServeCommand(flags);
    });
}
