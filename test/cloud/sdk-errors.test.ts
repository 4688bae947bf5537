/**
 * Every documented error, produced for real: the emulator answers (or misbehaves), the real
 * `@alicloud/openapi-client` throws whatever it throws, and `describeApiFailure` +
 * `classifyFailure` must turn that into the right action. Catches SDK changes that unit rows
 * built by hand would miss.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { startEmulator, DEMO_ACCOUNT, generateDevices, type EmulatorHandle, type ScriptStep } from '../../src/emulator/index.js';
import { CertificateApi, type DeviceRef } from '../../src/cloud/certificate-api.js';
import { describeApiFailure, type ApiFailure } from '../../src/cloud/api-failure.js';
import { classifyFailure, type FailureClass } from '../../src/cloud/classify.js';

const INSTANCE = 'mqtt-sdk-errors';
const CA = 'ca-sdk-errors';
const TIMEOUT_MS = 500;
const UUID = /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/;
const NO_LATENCY = { medianMs: 0, p99Ms: 0 };

function makeApi(endpoint: string, keys: { accessKeyId: string; accessKeySecret: string } = DEMO_ACCOUNT): CertificateApi {
  return new CertificateApi({
    endpoint,
    protocol: 'http',
    timeoutMs: TIMEOUT_MS,
    credentials: { accessKeyId: keys.accessKeyId, accessKeySecret: keys.accessKeySecret, securityToken: null },
  });
}

/** Runs a revoke that must fail; returns the normalised failure, its class and the raw error. */
async function failedRevoke(api: CertificateApi, device: DeviceRef): Promise<{ failure: ApiFailure; verdict: FailureClass; raw: unknown; elapsedMs: number }> {
  const startedAt = performance.now();
  try {
    await api.revoke(device, 'delete');
  } catch (raw) {
    const elapsedMs = performance.now() - startedAt;
    const failure = describeApiFailure(raw);
    return { failure, verdict: classifyFailure(failure), raw, elapsedMs };
  }
  throw new Error(`revoking ${device.deviceSn} succeeded but was expected to fail`);
}

/** A port on 127.0.0.1 nobody listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = address !== null && typeof address === 'object' ? address.port : 0;
  server.close();
  await once(server, 'close');
  return port;
}

describe('SDK errors from the emulator, classified', () => {
  let emulator: EmulatorHandle;
  let api: CertificateApi;
  const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 40, prefix: 'sdk-errors' });
  let nextDevice = 0;
  /** A registered device no other test touched. */
  const freshDevice = (): DeviceRef => {
    const device = devices[nextDevice++];
    if (device === undefined) throw new Error('out of seeded devices');
    return { mqttInstanceId: device.mqttInstanceId, caSn: device.caSn, deviceSn: device.deviceSn };
  };
  const isRegistered = (device: DeviceRef): boolean => emulator.registry.has(device.mqttInstanceId, device.caSn, device.deviceSn);
  /** The emulator's record of the last call that named this device. */
  const lastCallFor = (device: DeviceRef) => emulator.calls().filter((call) => call.deviceSn === device.deviceSn).at(-1);

  beforeAll(async () => {
    emulator = await startEmulator({ latency: NO_LATENCY, devices, instances: ['mqtt-other'] });
    api = makeApi(emulator.endpoint);
  });

  afterAll(async () => {
    await emulator.stop();
  });

  it('a success deletes the certificate and returns the RequestId', async () => {
    const device = freshDevice();
    const result = await api.revoke(device, 'delete');
    expect(result.requestId).toMatch(UUID);
    expect(result.requestId).toBe(lastCallFor(device)?.requestId);
    expect(result.body.DeviceSn).toBe(device.deviceSn);
    expect(isRegistered(device)).toBe(false);
  });

  it('ParameterFieldCheckFailed for a 129-byte DeviceSn → permanent', async () => {
    const device = { mqttInstanceId: INSTANCE, caSn: CA, deviceSn: 'a'.repeat(129) };
    const { failure, verdict } = await failedRevoke(api, device);
    expect(failure).toMatchObject({ kind: 'api', code: 'ParameterFieldCheckFailed', httpStatus: 400 });
    expect(failure.requestId).toMatch(UUID);
    expect(failure.requestId).toBe(lastCallFor(device)?.requestId);
    expect(verdict).toMatchObject({ action: 'permanent', uncertain: false });
  });

  it('FindDeviceBySnError for an unregistered device → not_found', async () => {
    const device = { mqttInstanceId: INSTANCE, caSn: CA, deviceSn: 'f0000000000000000000000000unknown' };
    const { failure, verdict } = await failedRevoke(api, device);
    expect(failure).toMatchObject({ kind: 'api', code: 'FindDeviceBySnError', httpStatus: 500 });
    expect(failure.requestId).toBe(lastCallFor(device)?.requestId);
    expect(verdict).toMatchObject({ action: 'not_found', uncertain: false });
  });

  it('MqttInstanceNotFound for an unknown instance → fatal_for_batch', async () => {
    const device = { mqttInstanceId: 'mqtt-does-not-exist', caSn: CA, deviceSn: 'a1b2c3' };
    const { failure, verdict } = await failedRevoke(api, device);
    expect(failure).toMatchObject({ kind: 'api', code: 'MqttInstanceNotFound', httpStatus: 500 });
    expect(failure.requestId).toMatch(UUID);
    expect(verdict).toMatchObject({ action: 'fatal_for_batch', uncertain: false });
  });

  it('MqttOwnerCheckError for a denied instance → fatal_for_batch, nothing applied', async () => {
    const device = freshDevice();
    emulator.denyInstance(DEMO_ACCOUNT.accessKeyId, INSTANCE);
    try {
      const { failure, verdict } = await failedRevoke(api, device);
      expect(failure).toMatchObject({ kind: 'api', code: 'MqttOwnerCheckError', httpStatus: 500 });
      expect(failure.requestId).toMatch(UUID);
      expect(verdict).toMatchObject({ action: 'fatal_for_batch', uncertain: false });
    } finally {
      emulator.allowInstance(DEMO_ACCOUNT.accessKeyId, INSTANCE);
    }
    expect(isRegistered(device)).toBe(true);
  });

  const scripted: Array<[code: string, httpStatus: number, verdict: Pick<FailureClass, 'action' | 'uncertain'>]> = [
    ['Throttling', 400, { action: 'throttle', uncertain: false }],
    ['Throttling.User', 400, { action: 'throttle', uncertain: false }],
    ['Throttling.Api', 400, { action: 'throttle', uncertain: false }],
    ['Throttling.Api', 429, { action: 'throttle', uncertain: false }],
    ['ServiceUnavailable', 503, { action: 'retry', uncertain: true }],
    ['InternalError', 500, { action: 'retry', uncertain: true }],
    ['SomeUndocumentedError', 500, { action: 'retry', uncertain: true }],
    ['SomeUndocumentedGatewayError', 504, { action: 'retry', uncertain: true }],
    ['SignatureNonceUsed', 400, { action: 'retry', uncertain: false }],
    ['Forbidden.RAM', 403, { action: 'fatal_for_account', uncertain: false }],
    ['NoPermission', 403, { action: 'fatal_for_account', uncertain: false }],
    ['Forbidden.IpBlocked', 403, { action: 'ip_blocked', uncertain: false }],
  ];
  it.each(scripted)('scripted %s %i', async (code, httpStatus, expected) => {
    const device = freshDevice();
    emulator.script(device.deviceSn, [{ code, httpStatus }]);
    const { failure, verdict } = await failedRevoke(api, device);
    expect(failure).toMatchObject({ kind: 'api', code, httpStatus });
    expect(failure.requestId).toMatch(UUID);
    expect(failure.requestId).toBe(lastCallFor(device)?.requestId);
    expect(verdict).toMatchObject(expected);
  });

  it('real Throttling.User from the emulator rate limit → throttle, nothing applied', async () => {
    emulator.setRatePerSecond(1);
    try {
      // At 1 call/s at most one of two back-to-back calls is admitted (earlier tests may have
      // filled the window already, so the first one may be throttled too).
      let throttled: { device: DeviceRef; failure: ApiFailure; verdict: FailureClass } | undefined;
      for (let i = 0; i < 2 && throttled === undefined; i += 1) {
        const device = freshDevice();
        try {
          await api.revoke(device, 'delete');
        } catch (raw) {
          const failure = describeApiFailure(raw);
          throttled = { device, failure, verdict: classifyFailure(failure) };
        }
      }
      expect(throttled).toBeDefined();
      expect(throttled!.failure).toMatchObject({ kind: 'api', code: 'Throttling.User', httpStatus: 400 });
      expect(throttled!.verdict).toMatchObject({ action: 'throttle', uncertain: false });
      expect(isRegistered(throttled!.device)).toBe(true);
    } finally {
      emulator.setRatePerSecond(500);
    }
  });

  it('SignatureDoesNotMatch for a wrong secret → fatal_for_account', async () => {
    const wrong = makeApi(emulator.endpoint, { accessKeyId: DEMO_ACCOUNT.accessKeyId, accessKeySecret: 'not-the-secret' });
    const { failure, verdict } = await failedRevoke(wrong, freshDevice());
    expect(failure).toMatchObject({ kind: 'api', code: 'SignatureDoesNotMatch', httpStatus: 400 });
    expect(failure.requestId).toMatch(UUID);
    expect(verdict).toMatchObject({ action: 'fatal_for_account', uncertain: false });
  });

  it('InvalidAccessKeyId.NotFound for an unknown key → fatal_for_account', async () => {
    const unknown = makeApi(emulator.endpoint, { accessKeyId: 'LTAInobody000000000000', accessKeySecret: 'whatever' });
    const { failure, verdict } = await failedRevoke(unknown, freshDevice());
    expect(failure).toMatchObject({ kind: 'api', code: 'InvalidAccessKeyId.NotFound', httpStatus: 404 });
    expect(verdict).toMatchObject({ action: 'fatal_for_account', uncertain: false });
  });

  it('InvalidAccessKeyId.Inactive for a disabled key → fatal_for_account', async () => {
    emulator.setAccountState(DEMO_ACCOUNT.accessKeyId, 'inactive');
    try {
      const { failure, verdict } = await failedRevoke(api, freshDevice());
      expect(failure).toMatchObject({ kind: 'api', code: 'InvalidAccessKeyId.Inactive', httpStatus: 400 });
      expect(verdict).toMatchObject({ action: 'fatal_for_account', uncertain: false });
    } finally {
      emulator.setAccountState(DEMO_ACCOUNT.accessKeyId, 'active');
    }
  });

  it('InvalidTimeStamp.Expired for a clock 20 minutes off → fatal_for_account', async () => {
    emulator.setClockOffsetMs(20 * 60 * 1000);
    try {
      const { failure, verdict } = await failedRevoke(api, freshDevice());
      expect(failure).toMatchObject({ kind: 'api', code: 'InvalidTimeStamp.Expired', httpStatus: 400 });
      expect(verdict).toMatchObject({ action: 'fatal_for_account', uncertain: false });
    } finally {
      emulator.setClockOffsetMs(0);
    }
  });

  it("'timeout' (applied, answer held) → retry, uncertain, within the timeout", async () => {
    const device = freshDevice();
    emulator.script(device.deviceSn, ['timeout']);
    const { failure, verdict, elapsedMs } = await failedRevoke(api, device);
    expect(failure).toMatchObject({ kind: expect.stringMatching(/^(read_timeout|connection_lost)$/) as unknown, httpStatus: null, requestId: null });
    expect(['ReadTimeout', 'ConnectTimeout']).toContain(failure.code);
    expect(verdict).toMatchObject({ action: 'retry', uncertain: true });
    expect(elapsedMs).toBeGreaterThanOrEqual(TIMEOUT_MS * 0.9);
    expect(elapsedMs).toBeLessThan(3 * TIMEOUT_MS);
    // Why "uncertain" matters: the delete did happen.
    expect(isRegistered(device)).toBe(false);
  });

  it("'timeout_before_apply' → retry, uncertain (the client cannot tell it from 'timeout')", async () => {
    const device = freshDevice();
    emulator.script(device.deviceSn, ['timeout_before_apply']);
    const { verdict } = await failedRevoke(api, device);
    expect(verdict).toMatchObject({ action: 'retry', uncertain: true });
    expect(isRegistered(device)).toBe(true);
  });

  it("'drop' (socket destroyed) → connection_lost, retry, uncertain", async () => {
    const device = freshDevice();
    emulator.script(device.deviceSn, ['drop']);
    const { failure, verdict } = await failedRevoke(api, device);
    expect(failure).toMatchObject({ kind: 'connection_lost', code: 'ECONNRESET', httpStatus: null, requestId: null });
    expect(verdict).toMatchObject({ action: 'retry', uncertain: true });
  });

  it("'drop_after_apply' → retry, uncertain, and the delete did happen", async () => {
    const device = freshDevice();
    emulator.script(device.deviceSn, ['drop_after_apply']);
    const { failure, verdict } = await failedRevoke(api, device);
    expect(failure.kind).toBe('connection_lost');
    expect(verdict).toMatchObject({ action: 'retry', uncertain: true });
    expect(isRegistered(device)).toBe(false);
  });

  it("'nonjson' (a 502 HTML page) → non_json, retry, uncertain", async () => {
    const device = freshDevice();
    emulator.script(device.deviceSn, ['nonjson']);
    const { failure, verdict, raw } = await failedRevoke(api, device);
    expect((raw as Error).name).toBe('SyntaxError');
    expect(failure).toMatchObject({ kind: 'non_json', code: 'NonJsonResponse', requestId: null });
    expect(verdict).toMatchObject({ action: 'retry', uncertain: true });
    expect(isRegistered(device)).toBe(true);
  });

  it('ECONNREFUSED on a closed port → connect, retry, certain', async () => {
    const port = await closedPort();
    const refused = makeApi(`127.0.0.1:${port}`);
    const { failure, verdict } = await failedRevoke(refused, freshDevice());
    expect(failure).toMatchObject({ kind: 'connect', code: 'ECONNREFUSED', httpStatus: null, requestId: null });
    expect(verdict).toMatchObject({ action: 'retry', uncertain: false });
  });

  it('a read timeout on a reused keep-alive socket still ends within the timeout, retry + uncertain', async () => {
    const warmUp = [freshDevice(), freshDevice(), freshDevice()];
    for (const device of warmUp) await api.revoke(device, 'delete');
    const connectionsBefore = emulator.stats().connectionsAccepted;
    const device = freshDevice();
    emulator.script(device.deviceSn, ['timeout']);
    const { failure, verdict, elapsedMs } = await failedRevoke(api, device);
    // No new connection: the timed-out call went out on a kept-alive socket.
    expect(emulator.stats().connectionsAccepted).toBe(connectionsBefore);
    expect(lastCallFor(device)?.fault).toBe('timeout');
    expect(['ReadTimeout', 'ConnectTimeout']).toContain(failure.code);
    expect(verdict).toMatchObject({ action: 'retry', uncertain: true });
    expect(elapsedMs).toBeGreaterThanOrEqual(TIMEOUT_MS * 0.9);
    expect(elapsedMs).toBeLessThan(3 * TIMEOUT_MS);
  });
});

describe('scripted steps are consumed one per call', () => {
  let emulator: EmulatorHandle;
  beforeAll(async () => {
    emulator = await startEmulator({ latency: NO_LATENCY, devices: generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 1, prefix: 'steps' }) });
  });
  afterAll(async () => {
    await emulator.stop();
  });

  it('a throttle, then an InternalError, then success: each classified on its own', async () => {
    const api = makeApi(emulator.endpoint);
    const [seed] = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 1, prefix: 'steps' });
    const device: DeviceRef = { mqttInstanceId: INSTANCE, caSn: CA, deviceSn: seed!.deviceSn };
    const steps: ScriptStep[] = [{ code: 'Throttling.User', httpStatus: 400 }, { code: 'InternalError', httpStatus: 500 }];
    emulator.script(device.deviceSn, steps);
    expect((await failedRevoke(api, device)).verdict).toMatchObject({ action: 'throttle', uncertain: false });
    expect((await failedRevoke(api, device)).verdict).toMatchObject({ action: 'retry', uncertain: true });
    await expect(api.revoke(device, 'delete')).resolves.toMatchObject({ requestId: expect.stringMatching(UUID) as unknown });
    expect(emulator.registry.has(INSTANCE, CA, device.deviceSn)).toBe(false);
  });
});
