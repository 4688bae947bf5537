import { describe, it, expect, afterEach } from 'vitest';
import { DEMO_ACCOUNT, generateDevices, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import { NO_LATENCY, anyString, callAction, callFailure, makeClient } from './emulator-test-helpers.js';

const INSTANCE = 'mqtt-cn-ca0001';
const CA = 'ca00contain';
const OTHER_CA = 'ca00keep';
const CA_QUERY = { MqttInstanceId: INSTANCE, Sn: CA };
const CA_ACTIONS = ['InactivateCaCertificate', 'ActiveCaCertificate', 'DeleteCaCertificate'] as const;

let emulator: EmulatorHandle | undefined;
afterEach(async () => {
  await emulator?.stop();
  emulator = undefined;
});

async function start(devicesUnderCa = 3, extra: Parameters<typeof startEmulator>[0] = {}): Promise<EmulatorHandle> {
  const devices = [
    ...generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: devicesUnderCa }),
    ...generateDevices({ mqttInstanceId: INSTANCE, caSn: OTHER_CA, count: 3, prefix: 'keep' }),
  ];
  emulator = await startEmulator({ latency: NO_LATENCY, devices, ...extra });
  return emulator;
}

async function caStatus(client: ReturnType<typeof makeClient>): Promise<unknown> {
  return ((await callAction(client, 'GetCaCertificate', CA_QUERY)).Data as { Status: string }).Status;
}

async function listed(client: ReturnType<typeof makeClient>, caSn: string): Promise<string[]> {
  const data = (await callAction(client, 'ListDeviceCertificateByCaSn', { MqttInstanceId: INSTANCE, CaSn: caSn, PageNo: '1', PageSize: '100' })).Data as {
    DeviceCertificateVOS: Array<{ DeviceSn: string }>;
  };
  return data.DeviceCertificateVOS.map((d) => d.DeviceSn);
}

describe('CA calls through the real SDK', () => {
  it('InactivateCaCertificate and ActiveCaCertificate flip the Status GetCaCertificate shows, answering {RequestId, Sn}', async () => {
    const handle = await start();
    const client = makeClient(handle.endpoint);
    expect(await caStatus(client)).toBe('1');
    expect(await callAction(client, 'InactivateCaCertificate', CA_QUERY)).toEqual({ RequestId: anyString(), Sn: CA });
    expect(await caStatus(client)).toBe('0');
    expect(handle.registry.getCa(INSTANCE, CA)?.status).toBe('0');
    // Inactivating again succeeds and changes nothing; the other CA is untouched.
    await callAction(client, 'InactivateCaCertificate', CA_QUERY);
    expect(handle.registry.getCa(INSTANCE, OTHER_CA)?.status).toBe('1');
    expect(await callAction(client, 'ActiveCaCertificate', CA_QUERY)).toEqual({ RequestId: anyString(), Sn: CA });
    expect(await caStatus(client)).toBe('1');
    // The devices stay registered throughout.
    expect(handle.registry.count(INSTANCE, CA)).toBe(3);
    expect(handle.calls().map((c) => [c.action, c.caSn, c.code])).toContainEqual(['InactivateCaCertificate', CA, 'OK']);
  });

  it('DeleteCaCertificate removes the CA and all 100,000 devices under it, and nothing else', async () => {
    const handle = await start(100_000);
    const client = makeClient(handle.endpoint);
    const former = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 2 });
    expect(handle.registry.count()).toBe(100_003);
    expect(await callAction(client, 'DeleteCaCertificate', CA_QUERY)).toEqual({ RequestId: anyString(), Sn: CA });
    expect(handle.registry.count()).toBe(3);
    expect(handle.registry.count(INSTANCE, CA)).toBe(0);
    expect(handle.registry.getCa(INSTANCE, CA)).toBeUndefined();
    // Every view of the API agrees that they are gone.
    expect((await callFailure(client, 'GetCaCertificate', CA_QUERY)).code).toBe('FindCaBySnError');
    expect((await callFailure(client, 'GetDeviceCertificate', { MqttInstanceId: INSTANCE, CaSn: CA, DeviceSn: former[1]!.deviceSn })).code).toBe('FindDeviceBySnError');
    expect((await callFailure(client, 'DeleteDeviceCertificate', { MqttInstanceId: INSTANCE, CaSn: CA, DeviceSn: former[0]!.deviceSn })).code).toBe('FindDeviceBySnError');
    expect(await listed(client, CA)).toEqual([]);
    // The other CA of the instance keeps its devices.
    expect(await listed(client, OTHER_CA)).toHaveLength(3);
    // Deleting it again: the CA is not registered.
    const again = await callFailure(client, 'DeleteCaCertificate', CA_QUERY);
    expect([again.code, again.statusCode]).toEqual(['FindCaBySnError', 500]);
    const cas = (await (await fetch(`${handle.url}/_emulator/cas?mqttInstanceId=${INSTANCE}`)).json()) as { total: number; cas: unknown[] };
    expect(cas).toEqual({ total: 1, cas: [{ mqttInstanceId: INSTANCE, caSn: OTHER_CA, status: '1', devices: 3 }] });
  });

  it('documented errors of each CA call change nothing', async () => {
    const handle = await start();
    const client = makeClient(handle.endpoint);
    for (const action of CA_ACTIONS) {
      const missing = await callFailure(client, action, { MqttInstanceId: INSTANCE });
      expect([action, missing.code, missing.statusCode, missing.data?.Code]).toEqual([action, 'ParameterFieldCheckFailed', 400, 'ParameterFieldCheckFailed']);
      expect((await callFailure(client, action, { ...CA_QUERY, Sn: 'c'.repeat(129) })).code).toBe('ParameterFieldCheckFailed');
      const unknownCa = await callFailure(client, action, { ...CA_QUERY, Sn: 'ca-nope' });
      expect([unknownCa.code, unknownCa.statusCode]).toEqual(['FindCaBySnError', 500]);
      const unknownInstance = await callFailure(client, action, { ...CA_QUERY, MqttInstanceId: 'mqtt-cn-nope' });
      expect([unknownInstance.code, unknownInstance.statusCode]).toEqual(['MqttInstanceNotFound', 500]);
    }
    handle.denyInstance(DEMO_ACCOUNT.accessKeyId, INSTANCE);
    for (const action of CA_ACTIONS) expect((await callFailure(client, action, CA_QUERY)).code).toBe('MqttOwnerCheckError');
    expect(handle.registry.getCa(INSTANCE, CA)?.status).toBe('1');
    expect(handle.registry.count()).toBe(6);
    expect(handle.calls().every((c) => !c.applied)).toBe(true);
  });
});

describe('registering devices and CAs while running', () => {
  it('a device re-registered after a listing appears at the end of the next one (handle and control API)', async () => {
    const handle = await start();
    const client = makeClient(handle.endpoint);
    const before = await listed(client, CA);
    expect(before).toHaveLength(3);
    const [first, second] = before as [string, string, string];
    await callAction(client, 'DeleteDeviceCertificate', { MqttInstanceId: INSTANCE, CaSn: CA, DeviceSn: first });
    await callAction(client, 'DeleteDeviceCertificate', { MqttInstanceId: INSTANCE, CaSn: CA, DeviceSn: second });
    handle.registry.addDevice({ mqttInstanceId: INSTANCE, caSn: CA, deviceSn: first });
    const response = await fetch(`${handle.url}/_emulator/devices`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ devices: [{ mqttInstanceId: INSTANCE, caSn: CA, deviceSn: second, status: '0' }] }),
    });
    expect(await response.json()).toEqual({ added: 1, total: 6 });
    expect(await listed(client, CA)).toEqual([before[2], first, second]);
    expect(handle.registry.get(INSTANCE, CA, second)?.status).toBe('0');
  });

  it('a device registered under a deleted CA registers the CA again, active; CAs can be registered through the control API', async () => {
    const handle = await start();
    const client = makeClient(handle.endpoint);
    await callAction(client, 'InactivateCaCertificate', CA_QUERY);
    await callAction(client, 'DeleteCaCertificate', CA_QUERY);
    handle.registry.addDevice({ mqttInstanceId: INSTANCE, caSn: CA, deviceSn: 'back01' });
    expect(await caStatus(client)).toBe('1');
    expect(await listed(client, CA)).toEqual(['back01']);
    const post = await fetch(`${handle.url}/_emulator/cas`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cas: [{ mqttInstanceId: 'mqtt-cn-new', caSn: 'ca-new', status: '0' }] }),
    });
    expect(await post.json()).toEqual({ added: 1, total: 3 });
    expect(((await callAction(client, 'GetCaCertificate', { MqttInstanceId: 'mqtt-cn-new', Sn: 'ca-new' })).Data as { Status: string }).Status).toBe('0');
    const bad = await fetch(`${handle.url}/_emulator/cas`, { method: 'POST', body: JSON.stringify({ cas: [{ mqttInstanceId: 'i', caSn: 'c', status: 'x' }] }) });
    expect(bad.status).toBe(400);
  });
});
