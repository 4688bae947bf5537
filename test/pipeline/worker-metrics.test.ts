/**
 * A worker's /metrics after a small batch: calls by outcome and code, latency, throttled, rate.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { startWorkerMetrics, type WorkerMetricsEndpoint } from '../../src/runtime/worker-metrics-server.js';
import { startWorkerRuntime, type WorkerRuntime } from '../../src/runtime/worker-runtime.js';
import { enqueueDevices, quietLogger, testConfig } from '../helpers/pipeline.js';
import { removePrefix, uniquePrefix, waitFor } from '../helpers/redis.js';

describe('worker metrics', () => {
  const prefix = uniquePrefix('wmetrics');
  let emulator: EmulatorHandle;
  let context: Context;
  let runtime: WorkerRuntime;
  let endpoint: WorkerMetricsEndpoint;

  beforeAll(async () => {
    emulator = await startEmulator({ latency: { medianMs: 2, p99Ms: 10 } });
    const config = testConfig(prefix, emulator, { RATE_LIMIT_PER_SECOND: '250' });
    context = openContext(config, 'test-wmetrics');
    endpoint = await startWorkerMetrics(0, () => runtime?.gate.ratePerSecond() ?? 0, quietLogger(), '127.0.0.1');
    runtime = await startWorkerRuntime(config, quietLogger(), { onCall: endpoint.onCall });
  });
  afterAll(async () => {
    await runtime?.close();
    await endpoint?.close();
    await context?.close();
    await emulator?.stop();
    await removePrefix(prefix);
  });

  it('counts every call by action, code and outcome', async () => {
    const devices = generateDevices({ mqttInstanceId: 'mqtt-cn-wmetrics01', caSn: 'ca000000wmetrics', count: 30, prefix: 'wm' });
    for (const device of devices.slice(0, 25)) emulator.registry.addDevice(device);
    emulator.script(devices[0]!.deviceSn, [{ code: 'ServiceUnavailable', httpStatus: 503 }]);
    emulator.script(devices[1]!.deviceSn, [{ code: 'Throttling.User', httpStatus: 400 }]);
    const batchId = await enqueueDevices(context, devices);
    await waitFor(async () => (await context.batches.get(batchId))?.state === 'completed', 'the batch to finish');
    const text = await (await fetch(`http://127.0.0.1:${endpoint.port}/metrics`)).text();
    expect(text).toContain('revoker_api_calls_total{action="DeleteDeviceCertificate",code="OK",outcome="success"} 25');
    expect(text).toContain('revoker_api_calls_total{action="DeleteDeviceCertificate",code="FindDeviceBySnError",outcome="not_found"} 5');
    expect(text).toContain('revoker_api_calls_total{action="DeleteDeviceCertificate",code="ServiceUnavailable",outcome="retry"} 1');
    expect(text).toContain('revoker_throttled_total 1');
    expect(text).toMatch(/revoker_api_call_duration_seconds_count\{action="DeleteDeviceCertificate"\} 32/);
    expect(text).toMatch(/revoker_rate_limit_per_second \d+/);
  });
});
