/**
 * A worker's /metrics after a small batch: calls by outcome and code, latency, throttled, rate.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevices, type EmulatorHandle } from '../../src/emulator/index.js';
import type { Context } from '../../src/runtime/context.js';
import { startWorkerMetrics, type WorkerMetricsEndpoint } from '../../src/runtime/worker-metrics-server.js';
import { enqueueDevices, quietLogger, startPipeline, type Pipeline } from '../helpers/pipeline.js';
import { waitFor } from '../helpers/redis.js';

describe('worker metrics', () => {
  let emulator: EmulatorHandle;
  let context: Context;
  let pipeline: Pipeline | undefined;
  let endpoint: WorkerMetricsEndpoint;

  beforeAll(async () => {
    endpoint = await startWorkerMetrics(0, () => pipeline?.runtime.gate.ratePerSecond() ?? 0, quietLogger(), '127.0.0.1');
    pipeline = await startPipeline('wmetrics', { emulator: { latency: { medianMs: 2, p99Ms: 10 } }, env: { RATE_LIMIT_PER_SECOND: '250' }, onCall: endpoint.onCall });
    ({ emulator, context } = pipeline);
  });
  afterAll(async () => {
    await pipeline?.close();
    await endpoint?.close();
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
