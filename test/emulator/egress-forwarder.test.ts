import { describe, it, expect, afterEach } from 'vitest';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { EgressForwarder, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import { NO_LATENCY, callAction, callFailure, makeClient, waitFor } from './emulator-test-helpers.js';

const DEVICE = { mqttInstanceId: 'mqtt-cn-egress01', caSn: 'ca00egress', deviceSn: 'e9e550' };
const QUERY = { MqttInstanceId: DEVICE.mqttInstanceId, CaSn: DEVICE.caSn, DeviceSn: DEVICE.deviceSn };

let emulator: EmulatorHandle | undefined;
let forwarder: EgressForwarder | undefined;
afterEach(async () => {
  await forwarder?.close();
  forwarder = undefined;
  await emulator?.stop();
  emulator = undefined;
});

async function setUp(localAddress = '127.0.0.2'): Promise<{ handle: EmulatorHandle; forwarder: EgressForwarder }> {
  const handle = (emulator = await startEmulator({ latency: NO_LATENCY, devices: [DEVICE] }));
  forwarder = await EgressForwarder.start({ targetHost: '127.0.0.1', targetPort: handle.port, localAddress });
  return { handle, forwarder };
}

/** Opens a raw TCP connection and waits until it is established. */
async function rawConnection(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  return socket;
}

describe('EgressForwarder', () => {
  it('carries SDK calls over kept-alive connections, from its local address', async () => {
    const { handle, forwarder: egress } = await setUp('127.0.0.3');
    expect(egress.endpoint).toMatch(/^127\.0\.0\.1:\d+$/);
    const client = makeClient(egress.endpoint);
    for (let i = 0; i < 5; i += 1) await callAction(client, 'GetDeviceCertificate', QUERY);
    await callAction(client, 'DeleteDeviceCertificate', QUERY);
    expect(handle.registry.has(DEVICE.mqttInstanceId, DEVICE.caSn, DEVICE.deviceSn)).toBe(false);
    expect(handle.calls().map((c) => c.sourceIp)).toEqual(Array(6).fill('127.0.0.3'));
    expect(handle.stats().connectionsAccepted).toBeLessThanOrEqual(2);
  });

  it("passes the emulator's dropped connection on to the client", async () => {
    const { handle, forwarder: egress } = await setUp();
    handle.script(DEVICE.deviceSn, ['drop']);
    const dropped = await callFailure(makeClient(egress.endpoint), 'DeleteDeviceCertificate', QUERY);
    expect(dropped.code).toBe('ECONNRESET');
    expect(dropped.statusCode).toBeUndefined();
    expect(handle.registry.has(DEVICE.mqttInstanceId, DEVICE.caSn, DEVICE.deviceSn)).toBe(true);
  });

  it('resets the client when the target refuses the connection', async () => {
    // A port that was just free: nothing listens on it.
    const probe = createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const freePort = (probe.address() as AddressInfo).port;
    probe.close();
    await once(probe, 'close');
    forwarder = await EgressForwarder.start({ targetHost: '127.0.0.1', targetPort: freePort, localAddress: '127.0.0.2' });
    const socket = connect({ host: '127.0.0.1', port: forwarder.port });
    const errors: string[] = [];
    socket.on('error', (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message));
    // Not events.once: it would reject on the 'error' this test expects.
    await new Promise((resolve) => socket.once('close', resolve));
    expect(errors).toEqual(['ECONNRESET']);
  });

  it('close() destroys open connections, stops listening and is idempotent', async () => {
    const { forwarder: egress } = await setUp();
    const client = makeClient(egress.endpoint);
    await callAction(client, 'GetDeviceCertificate', QUERY);
    const raw = await rawConnection(egress.port);
    raw.on('error', () => undefined);
    const rawClosed = new Promise((resolve) => raw.once('close', resolve));
    // The SDK's kept-alive connection and the raw one, each with its outgoing side.
    await waitFor(() => egress.openSockets === 4, 5000, 'both connections to be forwarded');
    await egress.close();
    await rawClosed;
    expect(egress.openSockets).toBe(0);
    const refused = connect({ host: '127.0.0.1', port: egress.port });
    const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    expect(error.code).toBe('ECONNREFUSED');
    await egress.close();
  });
});
