import { describe, it, expect, afterEach } from 'vitest';
import { startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import { decideFault, decisionForStep } from '../../src/emulator/faults.js';
import { sampleLatencyMs } from '../../src/emulator/latency.js';
import { DEFAULT_EMULATOR_OPTIONS } from '../../src/emulator/emulator-options.js';
import { NO_LATENCY, callAction, callFailure, makeClient, waitFor } from './emulator-test-helpers.js';

const DEVICE = { mqttInstanceId: 'mqtt-faults', caSn: 'ca-faults', deviceSn: 'fa0017' };
const QUERY = { MqttInstanceId: DEVICE.mqttInstanceId, CaSn: DEVICE.caSn, DeviceSn: DEVICE.deviceSn };
const registered = (handle: EmulatorHandle): boolean => handle.registry.has(DEVICE.mqttInstanceId, DEVICE.caSn, DEVICE.deviceSn);

let emulator: EmulatorHandle | undefined;
afterEach(async () => {
  await emulator?.stop();
  emulator = undefined;
});

async function start(extra: Parameters<typeof startEmulator>[0] = {}): Promise<EmulatorHandle> {
  emulator = await startEmulator({ latency: NO_LATENCY, devices: [DEVICE], ...extra });
  return emulator;
}

describe('decideFault (pure)', () => {
  const faults = { ...DEFAULT_EMULATOR_OPTIONS.faults, serviceUnavailableRate: 0.1, internalErrorRate: 0.2, dropConnectionRate: 0.1, timeoutRate: 0.1, nonJsonRate: 0.1 };
  it('lays the rates end to end on one draw', () => {
    const kindAt = (draw: number): string => decideFault(faults, () => draw).kind;
    expect([0, 0.05, 0.15, 0.29, 0.35, 0.45, 0.55, 0.65, 0.99].map(kindAt)).toEqual([
      'service_unavailable',
      'service_unavailable',
      'internal_error',
      'internal_error',
      'drop',
      'timeout',
      'nonjson',
      'none',
      'none',
    ]);
  });

  it('does not consume the random source when every rate is 0', () => {
    let draws = 0;
    expect(decideFault(DEFAULT_EMULATOR_OPTIONS.faults, () => (draws += 1) && 0).kind).toBe('none');
    expect(draws).toBe(0);
  });

  it('maps script steps', () => {
    expect(decisionForStep('ok').kind).toBe('none');
    expect(decisionForStep({ code: 'Throttling.User', httpStatus: 400 })).toEqual({ kind: 'scripted_error', error: { code: 'Throttling.User', httpStatus: 400 } });
  });
});

describe('sampleLatencyMs (pure)', () => {
  it('is 0 when disabled and log-normal with the given median and p99 otherwise', () => {
    expect(sampleLatencyMs({ medianMs: 0, p99Ms: 0 }, Math.random)).toBe(0);
    // A deterministic generator (LCG) so the check is exact across runs.
    let state = 42;
    const random = (): number => (state = (state * 1664525 + 1013904223) % 4294967296) / 4294967296;
    const samples = Array.from({ length: 20_000 }, () => sampleLatencyMs({ medianMs: 25, p99Ms: 120 }, random)).sort((a, b) => a - b);
    expect(samples[10_000]).toBeGreaterThan(23);
    expect(samples[10_000]).toBeLessThan(27);
    expect(samples[19_800]).toBeGreaterThan(105);
    expect(samples[19_800]).toBeLessThan(135);
    expect(samples[0]).toBeGreaterThan(0);
  });
});

describe('faults through the real SDK', () => {
  it("'timeout' applies the delete but the SDK's read timeout fires: result unknown", async () => {
    const handle = await start({ faults: { ...DEFAULT_EMULATOR_OPTIONS.faults, timeoutDelayMs: 5000 } });
    handle.script(DEVICE.deviceSn, ['timeout']);
    // The first call on a fresh connection, so the SDK's read timer is intact (see the next test).
    const error = await callFailure(makeClient(handle.endpoint, { readTimeout: 300 }), 'DeleteDeviceCertificate', QUERY);
    expect(error.name).toBe('RequestTimeoutError');
    expect(error.message).toMatch(/^ReadTimeout\(300\)\. POST http:\/\/127\.0\.0\.1:\d+\/\?.* failed\.$/);
    expect(error.code).toBeUndefined();
    expect(registered(handle)).toBe(false);
    expect(handle.calls()).toMatchObject([{ fault: 'timeout', applied: true, code: 'OK', httpStatus: 200 }]);
  });

  it('SDK quirk: on a just-reused keep-alive socket only the idle (connect) timeout fires', async () => {
    const handle = await start({ faults: { ...DEFAULT_EMULATOR_OPTIONS.faults, timeoutDelayMs: 5000 } });
    const client = makeClient(handle.endpoint, { readTimeout: 200, connectTimeout: 700 });
    await callAction(client, 'GetDeviceCertificate', QUERY);
    handle.script(DEVICE.deviceSn, ['timeout']);
    const startedMs = Date.now();
    const error = await callFailure(client, 'DeleteDeviceCertificate', QUERY);
    // httpx's stale read timer of the previous request cancels this one's; what remains is the
    // socket idle timeout, reported as "ConnectTimeout" although the request WAS sent.
    expect(error.name).toBe('RequestTimeoutError');
    expect(error.message).toMatch(/^ConnectTimeout: Connect http:\/\/127\.0\.0\.1:\d+\/\?.* failed\.$/);
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(650);
    expect(registered(handle)).toBe(false);
  });

  it("'timeout_before_apply' holds the call without applying it", async () => {
    const handle = await start({ faults: { ...DEFAULT_EMULATOR_OPTIONS.faults, timeoutDelayMs: 5000 } });
    handle.script(DEVICE.deviceSn, ['timeout_before_apply']);
    const error = await callFailure(makeClient(handle.endpoint, { readTimeout: 300 }), 'DeleteDeviceCertificate', QUERY);
    expect(error.name).toBe('RequestTimeoutError');
    expect(registered(handle)).toBe(true);
  });

  it("'drop' resets the connection before applying; 'drop_after_apply' after", async () => {
    const handle = await start();
    const client = makeClient(handle.endpoint);
    handle.script(DEVICE.deviceSn, ['drop', 'drop_after_apply']);
    const dropped = await callFailure(client, 'DeleteDeviceCertificate', QUERY);
    expect(dropped.constructor).toBe(Error);
    expect(dropped.code).toBe('ECONNRESET');
    expect(dropped.message).toMatch(/^socket hang up/);
    expect(dropped.statusCode).toBeUndefined();
    expect(registered(handle)).toBe(true);
    const droppedAfter = await callFailure(client, 'DeleteDeviceCertificate', QUERY);
    expect(droppedAfter.code).toBe('ECONNRESET');
    expect(registered(handle)).toBe(false);
    expect(handle.calls().map((c) => [c.fault, c.code, c.httpStatus, c.applied])).toEqual([
      ['drop', 'ConnectionDropped', 0, false],
      ['drop_after_apply', 'ConnectionDropped', 0, true],
    ]);
  });

  it("'nonjson' answers a 502 HTML page: the SDK throws a bare SyntaxError", async () => {
    const handle = await start();
    handle.script(DEVICE.deviceSn, ['nonjson']);
    const error = await callFailure(makeClient(handle.endpoint), 'DeleteDeviceCertificate', QUERY);
    expect(error).toBeInstanceOf(SyntaxError);
    expect(error.code).toBeUndefined();
    expect(error.statusCode).toBeUndefined();
    expect(registered(handle)).toBe(true);
    expect(handle.stats().byCode).toEqual({ BadGateway: 1 });
  });

  it('a scripted error is returned without applying, then the script runs out', async () => {
    const handle = await start();
    const client = makeClient(handle.endpoint);
    handle.script(DEVICE.deviceSn, [{ code: 'Throttling.Api', httpStatus: 429 }, 'ok']);
    const error = await callFailure(client, 'DeleteDeviceCertificate', QUERY);
    expect([error.code, error.statusCode]).toEqual(['Throttling.Api', 429]);
    expect(registered(handle)).toBe(true);
    await callAction(client, 'GetDeviceCertificate', QUERY);
    await callAction(client, 'DeleteDeviceCertificate', QUERY);
    expect(registered(handle)).toBe(false);
  });

  it('serviceUnavailableRate 1.0 answers ServiceUnavailable (503) and internalErrorRate 1.0 InternalError (500)', async () => {
    const handle = await start({ faults: { ...DEFAULT_EMULATOR_OPTIONS.faults, serviceUnavailableRate: 1 } });
    const client = makeClient(handle.endpoint);
    const unavailable = await callFailure(client, 'DeleteDeviceCertificate', QUERY);
    expect([unavailable.code, unavailable.statusCode, unavailable.data?.Code]).toEqual(['ServiceUnavailable', 503, 'ServiceUnavailable']);
    handle.setFaults({ serviceUnavailableRate: 0, internalErrorRate: 1 });
    const internal = await callFailure(client, 'DeleteDeviceCertificate', QUERY);
    expect([internal.code, internal.statusCode]).toEqual(['InternalError', 500]);
    expect(registered(handle)).toBe(true);
    expect(handle.stats().byFault).toEqual({ service_unavailable: 1, internal_error: 1 });
  });

  it('latency delays the answer but not the arrival record', async () => {
    const handle = await start({ latency: { medianMs: 150, p99Ms: 150 } });
    const startedMs = Date.now();
    await callAction(makeClient(handle.endpoint), 'GetDeviceCertificate', QUERY);
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(140);
    expect(handle.calls()[0]!.atMs - startedMs).toBeLessThan(100);
  });

  it('stop() closes a held response promptly', async () => {
    const handle = await start({ faults: { ...DEFAULT_EMULATOR_OPTIONS.faults, timeoutDelayMs: 60_000 } });
    handle.script(DEVICE.deviceSn, ['timeout']);
    const pending = callFailure(makeClient(handle.endpoint, { readTimeout: 30_000 }), 'DeleteDeviceCertificate', QUERY);
    await waitFor(() => handle.calls().length === 1, 5000, 'the held call to arrive');
    const stoppedAt = Date.now();
    await handle.stop();
    emulator = undefined;
    const error = await pending;
    expect(error.code).toBe('ECONNRESET');
    expect(Date.now() - stoppedAt).toBeLessThan(1000);
    await handle.stop(); // idempotent
  });
});
