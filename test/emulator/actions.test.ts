import { describe, it, expect, afterEach } from 'vitest';
import { generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import { anyString, NO_LATENCY, callAction, callFailure, makeClient, stringContaining, stringMatching } from './emulator-test-helpers.js';

const INSTANCE = 'mqtt-cn-actions01';
const CA = 'ca00actions';
const DEVICE_SN = '4f3a9c0de1';
const QUERY = { MqttInstanceId: INSTANCE, CaSn: CA, DeviceSn: DEVICE_SN };

let emulator: EmulatorHandle | undefined;
afterEach(async () => {
  await emulator?.stop();
  emulator = undefined;
});

async function start(extra: Parameters<typeof startEmulator>[0] = {}): Promise<EmulatorHandle> {
  emulator = await startEmulator({ latency: NO_LATENCY, devices: [{ mqttInstanceId: INSTANCE, caSn: CA, deviceSn: DEVICE_SN }], ...extra });
  return emulator;
}

describe('the five actions through the real SDK', () => {
  it('DeleteDeviceCertificate removes the certificate and answers {RequestId, DeviceSn}', async () => {
    const handle = await start();
    const body = await callAction(makeClient(handle.endpoint), 'DeleteDeviceCertificate', QUERY);
    expect(Object.keys(body).sort()).toEqual(['DeviceSn', 'RequestId']);
    expect(body.DeviceSn).toBe(DEVICE_SN);
    expect(handle.registry.has(INSTANCE, CA, DEVICE_SN)).toBe(false);
    expect(handle.calls()).toMatchObject([{ action: 'DeleteDeviceCertificate', code: 'OK', httpStatus: 200, applied: true, deviceSn: DEVICE_SN, requestId: body.RequestId }]);
  });

  it('InactivateDeviceCertificate sets Status "0" and keeps the certificate', async () => {
    const handle = await start();
    const client = makeClient(handle.endpoint);
    expect(handle.registry.get(INSTANCE, CA, DEVICE_SN)?.status).toBe('1');
    const body = await callAction(client, 'InactivateDeviceCertificate', QUERY);
    expect(body).toEqual({ RequestId: anyString(), DeviceSn: DEVICE_SN });
    expect(handle.registry.get(INSTANCE, CA, DEVICE_SN)?.status).toBe('0');
  });

  it('GetDeviceCertificate answers the details under Data (as the real API does)', async () => {
    const handle = await start();
    const body = await callAction(makeClient(handle.endpoint), 'GetDeviceCertificate', QUERY);
    expect(body).toEqual({
      RequestId: anyString(),
      Data: {
        DeviceSn: DEVICE_SN,
        CaSn: CA,
        Status: '1',
        ValidBegin: stringMatching(/^\d{13}$/),
        ValidEnd: stringMatching(/^\d{13}$/),
        DeviceContent: stringContaining('-----BEGIN CERTIFICATE-----'),
        DeviceName: anyString(),
      },
    });
  });

  it('GetCaCertificate answers the CA, and FindCaBySnError for an unknown one', async () => {
    const handle = await start({ cas: [{ mqttInstanceId: INSTANCE, caSn: 'ca-empty' }] });
    const client = makeClient(handle.endpoint);
    const body = await callAction(client, 'GetCaCertificate', { MqttInstanceId: INSTANCE, Sn: 'ca-empty' });
    expect(body.Data).toEqual({
      Sn: 'ca-empty',
      CaName: anyString(),
      CaContent: stringContaining('BEGIN CERTIFICATE'),
      Status: '1',
      ValidBegin: anyString(),
      ValidEnd: anyString(),
      RegistrationCode: anyString(),
      VerificationContent: stringContaining('BEGIN CERTIFICATE'),
    });
    const error = await callFailure(client, 'GetCaCertificate', { MqttInstanceId: INSTANCE, Sn: 'ca-nope' });
    expect([error.code, error.statusCode, error.data?.Code]).toEqual(['FindCaBySnError', 500, 'FindCaBySnError']);
  });

  it('ListDeviceCertificateByCaSn pages 250 devices as 100, 100, 50 in insertion order', async () => {
    const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: 'ca-list', count: 250 });
    const handle = await start({ devices });
    const client = makeClient(handle.endpoint);
    const page = async (pageNo: number): Promise<{ Total: number; PageNo: number; PageSize: number; DeviceCertificateVOS: Array<Record<string, string>> }> =>
      (await callAction(client, 'ListDeviceCertificateByCaSn', { MqttInstanceId: INSTANCE, CaSn: 'ca-list', PageNo: String(pageNo), PageSize: '100' })).Data as never;
    const pages = [await page(1), await page(2), await page(3), await page(4)];
    expect(pages.map((p) => p.DeviceCertificateVOS.length)).toEqual([100, 100, 50, 0]);
    expect(pages[0]).toMatchObject({ Total: 250, PageNo: 1, PageSize: 100 });
    expect(pages.flatMap((p) => p.DeviceCertificateVOS.map((d) => d.DeviceSn))).toEqual(devices.map((d) => d.deviceSn));
    expect(pages[0]!.DeviceCertificateVOS[0]).toEqual({
      DeviceSn: devices[0]!.deviceSn,
      CaSn: 'ca-list',
      Status: '1',
      ValidBegin: anyString(),
      ValidEnd: anyString(),
      DeviceName: anyString(),
    });
  });

  it('pages over the current list: deleting page 1 makes page 2 skip ahead', async () => {
    const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: 'ca-list', count: 250 });
    const handle = await start({ devices });
    const client = makeClient(handle.endpoint);
    const list = async (pageNo: number): Promise<string[]> => {
      const data = (await callAction(client, 'ListDeviceCertificateByCaSn', { MqttInstanceId: INSTANCE, CaSn: 'ca-list', PageNo: String(pageNo), PageSize: '100' })).Data as {
        DeviceCertificateVOS: Array<{ DeviceSn: string }>;
      };
      return data.DeviceCertificateVOS.map((d) => d.DeviceSn);
    };
    const first = await list(1);
    await Promise.all(first.map((sn) => callAction(client, 'DeleteDeviceCertificate', { MqttInstanceId: INSTANCE, CaSn: 'ca-list', DeviceSn: sn })));
    const second = await list(2);
    // Items 100..199 moved to page 1: a naive "next page" walk misses them, like on the real API.
    expect(second).toEqual(devices.slice(200).map((d) => d.deviceSn));
    expect(await list(1)).toEqual(devices.slice(100, 200).map((d) => d.deviceSn));
    expect(handle.registry.count(INSTANCE, 'ca-list')).toBe(150);
  });
});

describe('documented errors reach the SDK', () => {
  it('ParameterFieldCheckFailed (400) for a 129-byte DeviceSn, a missing one, and a bad page size', async () => {
    const handle = await start();
    const client = makeClient(handle.endpoint);
    const tooLong = await callFailure(client, 'DeleteDeviceCertificate', { ...QUERY, DeviceSn: 'a'.repeat(129) });
    expect([tooLong.code, tooLong.statusCode, tooLong.data?.Code]).toEqual(['ParameterFieldCheckFailed', 400, 'ParameterFieldCheckFailed']);
    // 128 bytes is allowed (and then simply not found); multi-byte characters count as bytes.
    expect((await callFailure(client, 'DeleteDeviceCertificate', { ...QUERY, DeviceSn: 'a'.repeat(128) })).code).toBe('FindDeviceBySnError');
    expect((await callFailure(client, 'DeleteDeviceCertificate', { ...QUERY, DeviceSn: 'é'.repeat(65) })).code).toBe('ParameterFieldCheckFailed');
    expect((await callFailure(client, 'DeleteDeviceCertificate', { MqttInstanceId: INSTANCE, CaSn: CA })).code).toBe('ParameterFieldCheckFailed');
    expect((await callFailure(client, 'DeleteDeviceCertificate', { ...QUERY, CaSn: '' })).code).toBe('ParameterFieldCheckFailed');
    for (const [PageNo, PageSize] of [['1', '101'], ['1', '0'], ['0', '10'], ['x', '10']]) {
      const error = await callFailure(client, 'ListDeviceCertificateByCaSn', { MqttInstanceId: INSTANCE, CaSn: CA, PageNo: PageNo!, PageSize: PageSize! });
      expect(error.code).toBe('ParameterFieldCheckFailed');
    }
    expect(handle.registry.has(INSTANCE, CA, DEVICE_SN)).toBe(true);
  });

  it('FindDeviceBySnError (500) for an unregistered device, also under another CA', async () => {
    const handle = await start({ cas: [{ mqttInstanceId: INSTANCE, caSn: 'ca-other' }] });
    const client = makeClient(handle.endpoint);
    const error = await callFailure(client, 'DeleteDeviceCertificate', { ...QUERY, DeviceSn: 'ffff0000' });
    expect([error.code, error.statusCode, error.data?.Code]).toEqual(['FindDeviceBySnError', 500, 'FindDeviceBySnError']);
    expect((await callFailure(client, 'GetDeviceCertificate', { ...QUERY, CaSn: 'ca-other' })).code).toBe('FindDeviceBySnError');
    expect(handle.calls().every((c) => !c.applied)).toBe(true);
  });

  it('MqttInstanceNotFound (500) for an unknown instance', async () => {
    const handle = await start();
    const error = await callFailure(makeClient(handle.endpoint), 'DeleteDeviceCertificate', { ...QUERY, MqttInstanceId: 'mqtt-cn-nope' });
    expect([error.code, error.statusCode, error.data?.Code]).toEqual(['MqttInstanceNotFound', 500, 'MqttInstanceNotFound']);
  });

  it('MqttOwnerCheckError (500) when the key is denied the instance', async () => {
    const handle = await start();
    handle.denyInstance('LTAIemulator0000000000', INSTANCE);
    const client = makeClient(handle.endpoint);
    const error = await callFailure(client, 'DeleteDeviceCertificate', QUERY);
    expect([error.code, error.statusCode, error.data?.Code]).toEqual(['MqttOwnerCheckError', 500, 'MqttOwnerCheckError']);
    expect(handle.registry.has(INSTANCE, CA, DEVICE_SN)).toBe(true);
    handle.allowInstance('LTAIemulator0000000000', INSTANCE);
    await expect(callAction(client, 'DeleteDeviceCertificate', QUERY)).resolves.toBeDefined();
  });

  it('InvalidAction.NotFound (404) for an action the emulator does not know', async () => {
    const handle = await start();
    const error = await callFailure(makeClient(handle.endpoint), 'DeleteEverything', QUERY);
    expect([error.code, error.statusCode]).toEqual(['InvalidAction.NotFound', 404]);
  });
});
