/**
 * Secrets never reach logs, job data, result records, reports, dead letters or error messages:
 * a batch with failures runs with debug logging and STS credentials, then everything it wrote
 * is searched for the secret and the token.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import { createLogger } from '../../src/logging/logger.js';
import { reportLines } from '../../src/results/report-writer.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { startWorkerRuntime, type WorkerRuntime } from '../../src/runtime/worker-runtime.js';
import { enqueueDevices, testConfig } from '../helpers/pipeline.js';
import { removePrefix, uniquePrefix, waitFor } from '../helpers/redis.js';

const ACCESS_KEY_ID = 'LTAIsecretstest000001';
const SECRET = 'Sup3rSecretAccessKeyValue-do-not-leak';
const TOKEN = 'CAIS-sts-token-value-that-must-not-leak';
const ADMIN = 'admin-token-value-that-must-not-leak';
const WEBHOOK = 'whsec_c2VjcmV0LXdlYmhvb2sta2V5LW11c3Qtbm90LWxlYWs=';

describe('secrets', () => {
  const prefix = uniquePrefix('secrets');
  const lines: string[] = [];
  let emulator: EmulatorHandle;
  let context: Context;
  let runtime: WorkerRuntime;

  beforeAll(async () => {
    emulator = await startEmulator({ accounts: [{ accessKeyId: ACCESS_KEY_ID, accessKeySecret: SECRET, securityToken: TOKEN }], latency: { medianMs: 1, p99Ms: 5 } });
    const extra = {
      ALIBABA_CLOUD_ACCESS_KEY_ID: ACCESS_KEY_ID,
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: SECRET,
      ALIBABA_CLOUD_SECURITY_TOKEN: TOKEN,
      ADMIN_TOKEN: ADMIN,
      WEBHOOK_SECRETS: WEBHOOK,
      MAX_ATTEMPTS: '2',
      LOG_LEVEL: 'debug',
    };
    const config = testConfig(prefix, emulator, extra);
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log = createLogger('trace', 'secrets-test', sink);
    // Someone logs the whole config by mistake: redaction must still hold.
    log.info({ config }, 'configuration');
    context = openContext(config, 'test-secrets');
    runtime = await startWorkerRuntime(config, log);
  });
  afterAll(async () => {
    await runtime?.close();
    await context?.close();
    await emulator?.stop();
    await removePrefix(prefix);
  });

  it('appear in no log line, job, record, report, dead letter or batch reason', async () => {
    const devices = generateDevices({ mqttInstanceId: 'mqtt-cn-secrets01', caSn: 'ca0000000secrets', count: 40, prefix: 'secrets' });
    for (const device of devices.slice(0, 30)) emulator.registry.addDevice(device);
    emulator.script(devices[0]!.deviceSn, [{ code: 'ParameterFieldCheckFailed', httpStatus: 400 }]);
    emulator.script(devices[1]!.deviceSn, ['timeout', 'drop']);
    const batchId = await enqueueDevices(context, devices);
    await waitFor(async () => (await context.batches.get(batchId))?.state === 'completed', 'the batch to finish');

    // Then the credentials go bad: the pause reason is written from the API's error.
    const paused = await enqueueDevices(context, generateDevices({ mqttInstanceId: 'mqtt-cn-secrets01', caSn: 'ca0000000secrets', count: 5, prefix: 'secrets-b' }));
    emulator.setAccountState(ACCESS_KEY_ID, 'inactive');
    await waitFor(async () => (await context.batches.get(paused))?.state === 'paused', 'the account pause');

    const written: string[] = [...lines];
    for (const batch of [batchId, paused]) {
      written.push(JSON.stringify(await context.batches.get(batch)));
      for await (const line of reportLines(batch, 'csv', context.results, context.batches)) written.push(line);
    }
    for (const letter of await context.deadLetters.list()) written.push(JSON.stringify(letter));
    const jobs = await context.queue.getJobs(['waiting', 'delayed', 'active', 'failed', 'completed']);
    for (const job of jobs) written.push(JSON.stringify(job.asJSON()));
    // Every key under the prefix, raw.
    for (const key of await context.redis.keys(`${prefix}*`)) {
      const type = await context.redis.type(key);
      if (type === 'hash') written.push(JSON.stringify(await context.redis.hgetall(key)));
      if (type === 'string') written.push((await context.redis.get(key)) ?? '');
      if (type === 'list') written.push(...(await context.redis.lrange(key, 0, -1)));
    }

    const all = written.join('\n');
    expect(lines.length).toBeGreaterThan(3);
    expect(all).toContain('[redacted]');
    expect(all).toContain('ParameterFieldCheckFailed');
    for (const secret of [SECRET, TOKEN, ADMIN, WEBHOOK, 'c2VjcmV0LXdlYmhvb2sta2V5LW11c3Qtbm90LWxlYWs']) expect(all).not.toContain(secret);
  });
});
