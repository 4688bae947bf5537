import { describe, it, expect, afterEach } from 'vitest';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import { anyString, NO_LATENCY, callAction, callFailure, makeClient } from './emulator-test-helpers.js';

const DEVICE = { mqttInstanceId: 'mqtt-auth', caSn: 'ca-auth', deviceSn: 'a1b2c3' };
const QUERY = { MqttInstanceId: DEVICE.mqttInstanceId, CaSn: DEVICE.caSn, DeviceSn: DEVICE.deviceSn };

let emulator: EmulatorHandle | undefined;
afterEach(async () => {
  await emulator?.stop();
  emulator = undefined;
});

async function start(extra: Parameters<typeof startEmulator>[0] = {}): Promise<EmulatorHandle> {
  emulator = await startEmulator({ latency: NO_LATENCY, devices: [DEVICE], ...extra });
  return emulator;
}

/** Sends a request with exactly these headers (as captured), returning status and JSON body. */
async function sendRaw(port: number, path: string, headers: IncomingHttpHeaders): Promise<{ status: number; body: Record<string, unknown> }> {
  const req = request({ host: '127.0.0.1', port, method: 'POST', path, headers, agent: false });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return { status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> };
}

describe('authentication through the real SDK', () => {
  it('accepts a correctly signed call', async () => {
    const handle = await start();
    const body = await callAction(makeClient(handle.endpoint), 'GetDeviceCertificate', QUERY);
    expect(body.RequestId).toMatch(/^[0-9A-F-]{36}$/);
  });

  it('refuses a wrong secret with SignatureDoesNotMatch (400) and applies nothing', async () => {
    const handle = await start();
    const error = await callFailure(makeClient(handle.endpoint, { accessKeySecret: 'wrong' }), 'DeleteDeviceCertificate', QUERY);
    expect(error.code).toBe('SignatureDoesNotMatch');
    expect(error.statusCode).toBe(400);
    expect(error.data).toMatchObject({ Code: 'SignatureDoesNotMatch', RequestId: anyString(), HostId: anyString(), Message: anyString(), Recommend: anyString() });
    expect(handle.registry.has(DEVICE.mqttInstanceId, DEVICE.caSn, DEVICE.deviceSn)).toBe(true);
  });

  it('refuses an unknown key with InvalidAccessKeyId.NotFound (404)', async () => {
    const handle = await start();
    const error = await callFailure(makeClient(handle.endpoint, { accessKeyId: 'LTAInobody' }), 'GetDeviceCertificate', QUERY);
    expect(error.code).toBe('InvalidAccessKeyId.NotFound');
    expect(error.statusCode).toBe(404);
  });

  it('refuses a key disabled at run time with InvalidAccessKeyId.Inactive, and takes it back', async () => {
    const handle = await start();
    const client = makeClient(handle.endpoint);
    handle.setAccountState('LTAIemulator0000000000', 'inactive');
    const error = await callFailure(client, 'GetDeviceCertificate', QUERY);
    expect([error.code, error.statusCode]).toEqual(['InvalidAccessKeyId.Inactive', 400]);
    handle.setAccountState('LTAIemulator0000000000', 'active');
    await expect(callAction(client, 'GetDeviceCertificate', QUERY)).resolves.toBeDefined();
  });

  it('accepts an STS key with its token and refuses a wrong token', async () => {
    const sts = { accessKeyId: 'STS.emulator01', accessKeySecret: 'sts-secret', securityToken: 'token-one' };
    const handle = await start({ accounts: [sts] });
    await expect(callAction(makeClient(handle.endpoint, sts), 'GetDeviceCertificate', QUERY)).resolves.toMatchObject({ Data: { DeviceSn: DEVICE.deviceSn } });
    const wrong = await callFailure(makeClient(handle.endpoint, { ...sts, securityToken: 'token-two' }), 'GetDeviceCertificate', QUERY);
    expect([wrong.code, wrong.statusCode]).toEqual(['InvalidSecurityToken.MismatchWithAccessKey', 400]);
    const none = await callFailure(makeClient(handle.endpoint, { accessKeyId: sts.accessKeyId, accessKeySecret: sts.accessKeySecret }), 'GetDeviceCertificate', QUERY);
    expect(none.code).toBe('MissingSecurityToken');
  });

  it('refuses a request whose x-acs-date is more than 15 minutes off the server clock', async () => {
    const handle = await start();
    const client = makeClient(handle.endpoint);
    handle.setClockOffsetMs(20 * 60 * 1000);
    const error = await callFailure(client, 'GetDeviceCertificate', QUERY);
    expect([error.code, error.statusCode]).toEqual(['InvalidTimeStamp.Expired', 400]);
    handle.setClockOffsetMs(-10 * 60 * 1000);
    await expect(callAction(client, 'GetDeviceCertificate', QUERY)).resolves.toBeDefined();
  });

  it('refuses a replayed request (same nonce) with SignatureNonceUsed', async () => {
    // A recorder stands where the gateway would and captures exactly what the SDK sends.
    const captured: Array<{ url: string; headers: IncomingHttpHeaders }> = [];
    const recorder = createServer((req, res) => {
      captured.push({ url: req.url ?? '/', headers: req.headers });
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ RequestId: 'rec', DeviceSn: DEVICE.deviceSn }));
    });
    recorder.listen(0, '127.0.0.1');
    await once(recorder, 'listening');
    try {
      const address = recorder.address() as AddressInfo;
      await callAction(makeClient(`127.0.0.1:${address.port}`), 'DeleteDeviceCertificate', QUERY);
    } finally {
      recorder.closeAllConnections();
      recorder.close();
    }
    const handle = await start();
    const [{ url, headers }] = captured as [(typeof captured)[0]];
    // The query is signed: changing the device refuses the call (and does not burn the nonce).
    const tampered = await sendRaw(handle.port, url.replace(DEVICE.deviceSn, 'ffffff'), headers);
    expect([tampered.status, tampered.body.Code]).toEqual([400, 'SignatureDoesNotMatch']);
    const first = await sendRaw(handle.port, url, headers);
    expect(first.status).toBe(200);
    expect(first.body.DeviceSn).toBe(DEVICE.deviceSn);
    const replay = await sendRaw(handle.port, url, headers);
    expect([replay.status, replay.body.Code]).toEqual([400, 'SignatureNonceUsed']);
  });

  it('refuses a missing or garbled Authorization header', async () => {
    const handle = await start();
    const missing = await sendRaw(handle.port, '/?A=1', { 'x-acs-action': 'GetDeviceCertificate' });
    expect([missing.status, missing.body.Code]).toEqual([400, 'MissingAuthorization']);
    const garbled = await sendRaw(handle.port, '/?A=1', { authorization: 'ACS3-HMAC-SHA256 nonsense' });
    expect([garbled.status, garbled.body.Code]).toEqual([400, 'IncompleteSignature']);
  });
});
