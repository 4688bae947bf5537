/**
 * Test helpers that assemble the real pipeline: config pointing at an emulator and a private
 * key prefix, contexts, and enqueueing a list of devices.
 */
import { pino, type Logger } from 'pino';
import { resolveConfig, type Config } from '../../src/config/config.js';
import { DEMO_ACCOUNT, startEmulator, type EmulatorHandle, type EmulatorOptions } from '../../src/emulator/index.js';
import type { InputItem } from '../../src/producer/device-request.js';
import { Enqueuer } from '../../src/producer/enqueuer.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { startWorkerRuntime, type WorkerRuntime } from '../../src/runtime/worker-runtime.js';
import type { RevocationWorkerDeps } from '../../src/worker/revocation-worker.js';
import { TEST_REDIS_URL, removePrefix, uniquePrefix } from './redis.js';

/** Environment for a revoker process talking to `emulator` under `prefix`. */
export function testEnv(prefix: string, emulator: EmulatorHandle, extra: Record<string, string> = {}): Record<string, string> {
  return {
    REDIS_URL: TEST_REDIS_URL,
    REVOKER_PREFIX: prefix,
    MQTT_API_ENDPOINT: emulator.endpoint,
    MQTT_API_PROTOCOL: 'http',
    ALIBABA_CLOUD_ACCESS_KEY_ID: DEMO_ACCOUNT.accessKeyId,
    ALIBABA_CLOUD_ACCESS_KEY_SECRET: DEMO_ACCOUNT.accessKeySecret,
    RATE_LIMIT_KEY: `test-${prefix.replace(/[^A-Za-z0-9]/g, '')}`,
    MQTT_API_TIMEOUT_MS: '2000',
    RETRY_BASE_MS: '100',
    RETRY_MAX_MS: '1000',
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

/** A resolved config for tests. */
export function testConfig(prefix: string, emulator: EmulatorHandle, extra: Record<string, string> = {}): Config {
  return resolveConfig(testEnv(prefix, emulator, extra));
}

/** A logger that keeps quiet unless a test asks for more. */
export function quietLogger(): Logger {
  return pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
}

/** Creates a batch and enqueues these devices into it; returns the batch id. */
export async function enqueueDevices(
  context: Context,
  devices: { mqttInstanceId: string; caSn: string; deviceSn: string }[],
  options: { action?: 'delete' | 'inactivate'; name?: string } = {},
): Promise<string> {
  const action = options.action ?? 'delete';
  const batchId = await context.batches.create({ name: options.name ?? 'test', source: 'csv', action, createdBy: 'test' });
  const items: InputItem[] = devices.map((device, index) => ({ kind: 'device', request: { ...device, line: index + 2 } }));
  await new Enqueuer(context.queue, context.batches, context.results).enqueue(batchId, action, items);
  return batchId;
}

/** An in-process emulator, a context and one in-process worker, over a fresh key prefix. */
export interface Pipeline {
  emulator: EmulatorHandle;
  context: Context;
  runtime: WorkerRuntime;
  /** The environment a spawned revoker process needs to join this pipeline. */
  env: Record<string, string>;
  /** Stops the worker, the context and the emulator, and removes the prefix's keys. */
  close(): Promise<void>;
}

/** Starts a `Pipeline` labelled `label`; `env` adds to or overrides `testEnv`. */
export async function startPipeline(
  label: string,
  options: { emulator?: Partial<EmulatorOptions>; env?: Record<string, string>; onCall?: RevocationWorkerDeps['onCall'] } = {},
): Promise<Pipeline> {
  const prefix = uniquePrefix(label);
  const emulator = await startEmulator(options.emulator ?? {});
  const env = testEnv(prefix, emulator, options.env);
  const config = testConfig(prefix, emulator, options.env);
  const context = openContext(config, `test-${label}`);
  const runtime = await startWorkerRuntime(config, quietLogger(), options.onCall ? { onCall: options.onCall } : {});
  return {
    emulator,
    context,
    runtime,
    env,
    async close() {
      await runtime.close();
      await context.close();
      await emulator.stop();
      await removePrefix(prefix);
    },
  };
}
