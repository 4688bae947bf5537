import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import {
  DEFAULT_EMULATOR_CA_SN,
  DEFAULT_EMULATOR_INSTANCE,
  emulatorOptionsFromFlags,
  generateDevices,
  readSeedCsv,
  registerEmulatorCommand,
  startEmulator,
  type EmulatorCommandFlags,
  type EmulatorHandle,
} from '../../src/emulator/index.js';
import { OrderedIndex } from '../../src/emulator/ordered-index.js';
import { NO_LATENCY, callAction, makeClient } from './emulator-test-helpers.js';

let emulator: EmulatorHandle | undefined;
afterEach(async () => {
  await emulator?.stop();
  emulator = undefined;
});

async function json(response: Response): Promise<Record<string, unknown>> {
  return (await response.json()) as Record<string, unknown>;
}

describe('control API over HTTP (no signature)', () => {
  it('seeds, lists, configures, scripts, reports stats and resets', async () => {
    const handle = (emulator = await startEmulator({ latency: NO_LATENCY }));
    const post = (path: string, body: unknown): Promise<Response> =>
      fetch(`${handle.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

    const seeded = await post('/_emulator/devices', { devices: generateDevices({ mqttInstanceId: 'i1', caSn: 'c1', count: 3 }).concat([{ mqttInstanceId: 'i2', caSn: 'c2', deviceSn: 'x1' }]) });
    expect(await json(seeded)).toEqual({ added: 4, total: 4 });
    const listed = await json(await fetch(`${handle.url}/_emulator/devices?mqttInstanceId=i1&caSn=c1`));
    expect(listed.total).toBe(3);
    expect((listed.devices as Array<{ status: string }>)[0]).toMatchObject({ mqttInstanceId: 'i1', caSn: 'c1', status: '1' });

    const bad = await post('/_emulator/config', { ratePerSecond: 10, faults: { timeoutRate: 2 } });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error).toMatch(/faults\.timeoutRate/);
    expect(handle.settings().ratePerSecond).toBe(500); // a refused change changes nothing

    const configured = await json(await post('/_emulator/config', { ratePerSecond: 2, faults: { serviceUnavailableRate: 0 }, latency: { medianMs: 0, p99Ms: 0 } }));
    expect(configured).toMatchObject({ ratePerSecond: 2 });

    expect((await post('/_emulator/script', { deviceSn: 'x1', steps: [{ code: 'InternalError', httpStatus: 500 }] })).status).toBe(200);
    expect((await post('/_emulator/script', { deviceSn: 'x1', steps: ['bogus'] })).status).toBe(400);

    const client = makeClient(handle.endpoint);
    const query = { MqttInstanceId: 'i2', CaSn: 'c2', DeviceSn: 'x1' };
    await expect(callAction(client, 'DeleteDeviceCertificate', query)).rejects.toMatchObject({ code: 'InternalError' });
    await expect(callAction(client, 'DeleteDeviceCertificate', query)).resolves.toMatchObject({ DeviceSn: 'x1' });
    await expect(callAction(client, 'DeleteDeviceCertificate', query)).rejects.toMatchObject({ code: 'Throttling.User' });

    const stats = await json(await fetch(`${handle.url}/_emulator/stats`));
    expect(stats).toMatchObject({ total: 3, admitted: 2, throttled: 1, byCode: { InternalError: 1, OK: 1, 'Throttling.User': 1 } });
    expect((await post('/_emulator/reset', {})).status).toBe(200);
    expect(handle.stats()).toMatchObject({ total: 0, admitted: 0, firstAtMs: null });
    expect(handle.calls()).toEqual([]);
    expect((await fetch(`${handle.url}/_emulator/nothing`)).status).toBe(404);
  });
});

describe('registry ordering (OrderedIndex)', () => {
  it('slices the current order after deletions, re-adds at the end, and survives growth', () => {
    const index = new OrderedIndex<number>();
    for (let i = 0; i < 5000; i += 1) index.set(`k${i}`, i);
    for (let i = 0; i < 5000; i += 2) index.delete(`k${i}`);
    expect(index.size).toBe(2500);
    expect(index.slice(0, 3)).toEqual([1, 3, 5]);
    expect(index.slice(1000, 2)).toEqual([2001, 2003]);
    index.set('k0', -1);
    expect(index.slice(2499, 5)).toEqual([4999, -1]);
    index.set('k1', 100); // replacing keeps the position
    expect(index.slice(0, 1)).toEqual([100]);
    expect(index.slice(2500, 1)).toEqual([-1]);
    expect(index.slice(2501, 1)).toEqual([]);
  });
});

describe('OrderedIndex against a plain array model', () => {
  it('agrees on every slice through random inserts, deletes and growth', () => {
    const index = new OrderedIndex<string>();
    let model: string[] = [];
    let state = 7;
    const random = (n: number): number => (state = (state * 1103515245 + 12345) % 2147483648) % n;
    for (let step = 0; step < 20_000; step += 1) {
      const key = `k${random(3000)}`;
      if (random(3) === 0) {
        index.delete(key);
        model = model.filter((k) => k !== key);
      } else {
        if (!model.includes(key)) model.push(key);
        index.set(key, key);
      }
      if (step % 500 === 0) {
        const offset = random(model.length + 1);
        expect(index.slice(offset, 100)).toEqual(model.slice(offset, offset + 100));
      }
    }
    expect([...index.values()]).toEqual(model);
  });
});

describe('generateDevices', () => {
  it('is deterministic, unique, hex and never all digits', () => {
    const a = generateDevices({ mqttInstanceId: 'i', caSn: 'c', count: 2000 });
    expect(generateDevices({ mqttInstanceId: 'i', caSn: 'c', count: 2000 })).toEqual(a);
    expect(new Set(a.map((d) => d.deviceSn)).size).toBe(2000);
    for (const d of a) expect(d.deviceSn).toMatch(/^[a-f][0-9a-f]{31}$/);
    expect(generateDevices({ mqttInstanceId: 'i', caSn: 'c', count: 1, prefix: 'other' })[0]!.deviceSn).not.toBe(a[0]!.deviceSn);
  });
});

describe('the emulator command', () => {
  const parseFlags = (args: string[]): EmulatorCommandFlags => {
    const program = new Command().exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
    let flags: EmulatorCommandFlags | undefined;
    registerEmulatorCommand(program).action((parsed: EmulatorCommandFlags) => {
      flags = parsed;
    });
    program.parse(['node', 'revoker', 'emulator', ...args]);
    return flags!;
  };

  it('has the documented defaults', () => {
    expect(parseFlags([])).toMatchObject({ port: 8787, host: '127.0.0.1', rateLimit: 500, devices: 0, instance: DEFAULT_EMULATOR_INSTANCE, caSn: DEFAULT_EMULATOR_CA_SN });
  });

  it('limits each source IP to the real API\'s 300 calls/s by default; --ip-limit 0 turns it off', async () => {
    const defaults = await emulatorOptionsFromFlags(parseFlags([]), {});
    expect(defaults).toMatchObject({ ipLimitPerSecond: 300, ipBlockSeconds: 60, ipBlockStatus: 403, ipBlockCode: 'Forbidden.IpBlocked', ipBlockBody: null });
    expect((await emulatorOptionsFromFlags(parseFlags(['--ip-limit', '0']), {})).ipLimitPerSecond).toBeNull();
    const custom = await emulatorOptionsFromFlags(
      parseFlags(['--ip-limit', '5', '--ip-block-seconds', '1.5', '--ip-block-status', '429', '--ip-block-code', 'Throttling.Ip', '--ip-block-body', '{"Code":"X"}']),
      {},
    );
    expect(custom).toMatchObject({ ipLimitPerSecond: 5, ipBlockSeconds: 1.5, ipBlockStatus: 429, ipBlockCode: 'Throttling.Ip', ipBlockBody: '{"Code":"X"}' });
    const handle = (emulator = await startEmulator({ ...custom, port: 0 }));
    expect(handle.settings().ipLimit).toEqual({ ipLimitPerSecond: 5, ipBlockSeconds: 1.5, ipBlockStatus: 429, ipBlockCode: 'Throttling.Ip', ipBlockBody: '{"Code":"X"}' });
    expect(() => parseFlags(['--ip-block-body', '{nope'])).toThrow(/--ip-block-body must be JSON/);
    expect(() => parseFlags(['--ip-block-status', '99'])).toThrow(/--ip-block-status must be an integer from 200 to 599/);
    expect(() => parseFlags(['--ip-limit', '-1'])).toThrow(/--ip-limit/);
  });

  it('refuses bad numbers with an error naming the flag', () => {
    expect(() => parseFlags(['--rate-limit', 'fast'])).toThrow(/--rate-limit must be an integer from 1 to 1000000, got 'fast'/);
    expect(() => parseFlags(['--fault-drop', '1.5'])).toThrow(/--fault-drop must be a number from 0 to 1, got '1.5'/);
    expect(() => parseFlags(['--port', '70000'])).toThrow(/--port/);
  });

  it('builds options from flags and the environment, generated devices and a CSV', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'emulator-csv-'));
    try {
      const csv = join(dir, 'seed.csv');
      writeFileSync(csv, '\uFEFFmqtt_instance_id,CaSn,DeviceSn\r\nmqtt-x,ca-x,"abc,1"\r\n,,def2\r\n');
      expect(await readSeedCsv(csv, { mqttInstanceId: 'fallback-i', caSn: 'fallback-c' })).toEqual([
        { mqttInstanceId: 'mqtt-x', caSn: 'ca-x', deviceSn: 'abc,1' },
        { mqttInstanceId: 'fallback-i', caSn: 'fallback-c', deviceSn: 'def2' },
      ]);
      const flags = parseFlags(['--devices', '3', '--seed-csv', csv, '--port', '0', '--fault-503', '0.25', '--latency-median-ms', '0', '--latency-p99-ms', '0']);
      const options = await emulatorOptionsFromFlags(flags, { ALIBABA_CLOUD_ACCESS_KEY_ID: 'LTAIfromenv', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'env-secret' });
      expect(options.accounts).toEqual([{ accessKeyId: 'LTAIfromenv', accessKeySecret: 'env-secret' }]);
      expect(options.devices).toHaveLength(5);
      expect(options.faults?.serviceUnavailableRate).toBe(0.25);
      await expect(emulatorOptionsFromFlags(parseFlags([]), { ALIBABA_CLOUD_ACCESS_KEY_ID: 'LTAIhalf' })).rejects.toThrow(/ALIBABA_CLOUD_ACCESS_KEY_SECRET/);
      const demo = await emulatorOptionsFromFlags(parseFlags([]), {});
      expect(demo.accounts?.[0]?.accessKeyId).toBe('LTAIemulator0000000000');
      const handle = (emulator = await startEmulator(options));
      expect(handle.registry.count()).toBe(5);
      // 3 generated + the CSV row that fell back to --instance/--ca-sn.
      expect(handle.registry.count(DEFAULT_EMULATOR_INSTANCE, DEFAULT_EMULATOR_CA_SN)).toBe(4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
