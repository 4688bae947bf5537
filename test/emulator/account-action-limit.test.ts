import { describe, it, expect, afterEach } from 'vitest';
import { DEMO_ACCOUNT, startEmulator, type EmulatorHandle } from '../../src/emulator/index.js';
import { NO_LATENCY, anyNumber, callAction, makeClient, type SdkError } from './emulator-test-helpers.js';

const DEVICE = { mqttInstanceId: 'mqtt-cn-acct01', caSn: 'ca00acct', deviceSn: 'acc0un7' };
const QUERY = { MqttInstanceId: DEVICE.mqttInstanceId, CaSn: DEVICE.caSn, DeviceSn: DEVICE.deviceSn };
// A key rotation: the old and the new key of one account.
const OLD_KEY = { accessKeyId: 'LTAIrotationold0000000', accessKeySecret: 'old-secret', accountId: '1234567890123456' };
const NEW_KEY = { accessKeyId: 'LTAIrotationnew0000000', accessKeySecret: 'new-secret', accountId: '1234567890123456' };

let emulator: EmulatorHandle | undefined;
afterEach(async () => {
  await emulator?.stop();
  emulator = undefined;
});

type Client = ReturnType<typeof makeClient>;

function burst(client: Client, count: number, action: string): Promise<PromiseSettledResult<Record<string, unknown>>[]> {
  return Promise.allSettled(Array.from({ length: count }, () => callAction(client, action, QUERY)));
}

const admitted = (results: PromiseSettledResult<unknown>[]): number => results.filter((r) => r.status === 'fulfilled').length;

describe('rate limit per account and per action', () => {
  it('two keys of one account share a budget per action; another action and another account have their own', async () => {
    const handle = (emulator = await startEmulator({ latency: NO_LATENCY, ratePerSecond: 6, accounts: [OLD_KEY, NEW_KEY, { ...DEMO_ACCOUNT }], devices: [DEVICE] }));
    const oldClient = makeClient(handle.endpoint, OLD_KEY);
    const newClient = makeClient(handle.endpoint, NEW_KEY);
    const demoClient = makeClient(handle.endpoint);
    const [oldGets, newGets, newInactivates, demoGets] = await Promise.all([
      burst(oldClient, 5, 'GetDeviceCertificate'),
      burst(newClient, 5, 'GetDeviceCertificate'),
      burst(newClient, 8, 'InactivateDeviceCertificate'),
      burst(demoClient, 8, 'GetDeviceCertificate'),
    ]);
    const stats = handle.stats();
    // Every window below holds all of its calls: they arrived within one sliding second.
    expect(stats.byAccountAction).toEqual({
      '1234567890123456': {
        GetDeviceCertificate: { calls: 10, admitted: 6, throttled: 4, busiestSecond: 10, busiestSecondAtMs: anyNumber() },
        InactivateDeviceCertificate: { calls: 8, admitted: 6, throttled: 2, busiestSecond: 8, busiestSecondAtMs: anyNumber() },
      },
      // A key without an accountId is an account of its own, named after the key.
      [DEMO_ACCOUNT.accessKeyId]: { GetDeviceCertificate: { calls: 8, admitted: 6, throttled: 2, busiestSecond: 8, busiestSecondAtMs: anyNumber() } },
    });
    // Per key, the two keys of the account together got one budget of Gets.
    expect(admitted(oldGets) + admitted(newGets)).toBe(6);
    expect(admitted(newInactivates)).toBe(6);
    expect(admitted(demoGets)).toBe(6);
    for (const result of [...oldGets, ...newGets, ...newInactivates, ...demoGets]) {
      if (result.status === 'fulfilled') continue;
      const error = result.reason as SdkError;
      expect([error.code, error.statusCode, error.data?.Message]).toEqual(['Throttling.User', 400, 'Request was denied due to user flow control.']);
    }
    expect(stats).toMatchObject({ total: 26, admitted: 18, throttled: 8, byCode: { OK: 18, 'Throttling.User': 8 } });
    // The per-key statistics are still per key.
    expect(stats.maxAdmittedInAnySecondByKey[NEW_KEY.accessKeyId]! + stats.maxAdmittedInAnySecondByKey[OLD_KEY.accessKeyId]!).toBe(12);
    // With the source IP limit off, the address is still counted.
    expect(stats.bySourceIp['127.0.0.1']).toMatchObject({ calls: 26, admitted: 26, busiestSecond: 26, blocked: false, blockCount: 0 });
  });

  it('a key added at run time with the accountId of another shares its budgets', async () => {
    const handle = (emulator = await startEmulator({ latency: NO_LATENCY, ratePerSecond: 3, accounts: [OLD_KEY], devices: [DEVICE] }));
    handle.addAccount(NEW_KEY);
    const [oldGets, newGets] = await Promise.all([burst(makeClient(handle.endpoint, OLD_KEY), 3, 'GetDeviceCertificate'), burst(makeClient(handle.endpoint, NEW_KEY), 3, 'GetDeviceCertificate')]);
    expect(handle.stats().byAccountAction[OLD_KEY.accountId]!.GetDeviceCertificate).toEqual({ calls: 6, admitted: 3, throttled: 3, busiestSecond: 6, busiestSecondAtMs: anyNumber() });
    expect(admitted(oldGets) + admitted(newGets)).toBe(3);
  });

  it('refuses an empty accountId', async () => {
    await expect(startEmulator({ accounts: [{ ...OLD_KEY, accountId: '' }] })).rejects.toThrow(/accounts\[0\]\.accountId/);
  });
});
