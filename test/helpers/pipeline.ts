/**
 * Test helpers that assemble the real pipeline: config pointing at an emulator and a private
 * key prefix, contexts, and enqueueing a list of devices.
 */
import { pino, type Logger } from 'pino';
import { resolveConfig, type Config } from '../../src/config/config.js';
import { DEMO_ACCOUNT, type EmulatorHandle } from '../../src/emulator/index.js';
import { Enqueuer, type EnqueueItem } from '../../src/producer/enqueuer.js';
import type { Context } from '../../src/runtime/context.js';
import { TEST_REDIS_URL } from './redis.js';

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
  const items: EnqueueItem[] = devices.map((device, index) => ({ kind: 'device', request: { ...device, line: index + 2 } }));
  await new Enqueuer(context.queue, context.batches, context.results).enqueue(batchId, action, items);
  return batchId;
}
