/**
 * `revoker worker`: runs a worker until SIGTERM/SIGINT, then stops taking jobs, finishes
 * in-flight calls and closes connections.
 */
import { ConfigError, resolveConfig } from '../config/config.js';
import { createLogger } from '../logging/logger.js';
import { startWorkerMetrics } from './worker-metrics-server.js';
import { startWorkerRuntime } from './worker-runtime.js';

/** Runs a worker until a termination signal; resolves with the process exit code. */
export async function runWorker(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let config;
  try {
    config = resolveConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`revoker worker: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const log = createLogger(config.logLevel, 'revoker-worker');
  let currentRate = () => config.ratePerSecond;
  const metrics = await startWorkerMetrics(config.workerMetricsPort, () => currentRate(), log, config.workerMetricsHost);
  const runtime = await startWorkerRuntime(config, log, { onCall: metrics.onCall });
  currentRate = () => runtime.gate.ratePerSecond();
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping: finishing in-flight calls');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await runtime.close();
  await metrics.close();
  return 0;
}
