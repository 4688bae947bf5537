import { describe, it, expect, afterEach } from 'vitest';
import {
  DEFAULT_IP_LIMIT_OPTIONS,
  EgressForwarder,
  generateDevices,
  normaliseSourceIp,
  startEmulator,
  type EmulatorHandle,
  type SourceIpStats,
} from '../../src/emulator/index.js';
import { SourceIpGuard } from '../../src/emulator/source-ip-guard.js';
import { NO_LATENCY, anyNumber, anyString, callAction, callFailure, makeClient, waitFor, type SdkError } from './emulator-test-helpers.js';

const INSTANCE = 'mqtt-cn-iplimit01';
const CA = 'ca00iplimit';
const DEVICE = { mqttInstanceId: INSTANCE, caSn: CA, deviceSn: 'e0ffee01' };
const QUERY = { MqttInstanceId: INSTANCE, CaSn: CA, DeviceSn: DEVICE.deviceSn };

let emulator: EmulatorHandle | undefined;
const forwarders: EgressForwarder[] = [];
afterEach(async () => {
  await Promise.all(forwarders.splice(0).map((forwarder) => forwarder.close()));
  await emulator?.stop();
  emulator = undefined;
});

async function start(extra: Parameters<typeof startEmulator>[0] = {}): Promise<EmulatorHandle> {
  emulator = await startEmulator({ latency: NO_LATENCY, devices: [DEVICE], ...extra });
  return emulator;
}

/** A forwarder to the emulator whose connections come from `localAddress`. */
async function egress(handle: EmulatorHandle, localAddress: string, targetHost = '127.0.0.1'): Promise<EgressForwarder> {
  const forwarder = await EgressForwarder.start({ targetHost, targetPort: handle.port, localAddress });
  forwarders.push(forwarder);
  return forwarder;
}

/** Fires `count` calls at once; returns the answers in the order of the calls. */
function burst(client: ReturnType<typeof makeClient>, count: number, action: string, query: (i: number) => Record<string, string>): Promise<PromiseSettledResult<Record<string, unknown>>[]> {
  return Promise.allSettled(Array.from({ length: count }, (_, i) => callAction(client, action, query(i))));
}

const fulfilled = (results: PromiseSettledResult<unknown>[]): number => results.filter((r) => r.status === 'fulfilled').length;
const rejections = (results: PromiseSettledResult<unknown>[]): SdkError[] =>
  results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as SdkError);

describe('SourceIpGuard (pure)', () => {
  const guard = (limit: number, blockSeconds: number): SourceIpGuard =>
    new SourceIpGuard({ ...DEFAULT_IP_LIMIT_OPTIONS, ipLimitPerSecond: limit, ipBlockSeconds: blockSeconds });

  it('blocks at exactly limit + 1 in a sliding second (not a fixed one), for the configured time', () => {
    const g = guard(3, 2);
    const at = (ms: number, ip = 'a'): string => g.check(ip, ms);
    // Three in (0, 1000] pass; at 1000 the one at 0 has left the window, so 500, 999, 1000 is 3 again.
    expect([at(0), at(500), at(999), at(1000)]).toEqual(['admitted', 'admitted', 'admitted', 'admitted']);
    // (1, 1001] holds 500, 999, 1000, 1001: the 4th. A fixed second [1000, 2000) would hold 2.
    expect(at(1001)).toBe('newly_blocked');
    expect(g.blocks(1001)).toEqual(new Map([['a', 3001]]));
    // Blocked until 1001 + 2 s whatever the window says; other addresses are unaffected.
    expect([at(1500), at(3000)]).toEqual(['blocked', 'blocked']);
    expect(at(3000, 'b')).toBe('admitted');
    // At 3001 the block is over and (2001, 3001] holds 3000 and 3001: admitted.
    expect(at(3001)).toBe('admitted');
    expect(g.blocks(3001).size).toBe(0);
  });

  it('counts requests refused by the block: an address that keeps calling above the limit is blocked again', () => {
    const g = guard(3, 1);
    for (const ms of [0, 1, 2]) expect(g.check('a', ms)).toBe('admitted');
    expect(g.check('a', 3)).toBe('newly_blocked');
    for (const ms of [500, 600, 700, 800]) expect(g.check('a', ms)).toBe('blocked');
    // The block ends at 1003, but (3, 1003] holds 4 blocked requests and this one.
    expect(g.check('a', 1003)).toBe('newly_blocked');
    expect(g.blocks(1003).get('a')).toBe(2003);
  });

  it('clear() lifts blocks and forgets the recent requests; a null limit admits everything', () => {
    const g = guard(1, 60);
    g.check('a', 0);
    g.check('b', 0);
    expect([g.check('a', 1), g.check('b', 1)]).toEqual(['newly_blocked', 'newly_blocked']);
    expect(g.clear('a', 2)).toBe(1);
    expect([g.check('a', 2), g.check('b', 2)]).toEqual(['admitted', 'blocked']);
    g.configure({ ...DEFAULT_IP_LIMIT_OPTIONS, ipLimitPerSecond: null });
    expect(g.blocks(3).size).toBe(0);
    for (let ms = 3; ms < 100; ms += 1) expect(g.check('b', ms)).toBe('admitted');
  });

  it('normalises IPv4-mapped IPv6 addresses to IPv4', () => {
    expect(normaliseSourceIp('::ffff:127.0.0.2')).toBe('127.0.0.2');
    expect(normaliseSourceIp('::FFFF:10.1.2.3')).toBe('10.1.2.3');
    expect(normaliseSourceIp('127.0.0.3')).toBe('127.0.0.3');
    expect(normaliseSourceIp('::1')).toBe('::1');
    expect(normaliseSourceIp('fe80::ffff:1')).toBe('fe80::ffff:1');
    expect(normaliseSourceIp(undefined)).toBe('unknown');
  });
});

describe('source IP limit through the real SDK', () => {
  it('the call above the limit and every call until the block ends get 403 Forbidden.IpBlocked and change nothing', async () => {
    const devices = generateDevices({ mqttInstanceId: INSTANCE, caSn: CA, count: 25 });
    const handle = await start({ devices: [DEVICE, ...devices], ipLimitPerSecond: 20, ipBlockSeconds: 2 });
    const client = makeClient(handle.endpoint);
    const results = await burst(client, 25, 'DeleteDeviceCertificate', (i) => ({ MqttInstanceId: INSTANCE, CaSn: CA, DeviceSn: devices[i]!.deviceSn }));
    const local = (): SourceIpStats => handle.stats().bySourceIp['127.0.0.1']!;
    // All 25 arrived within one sliding second (the test means nothing otherwise).
    expect(local().busiestSecond).toBe(25);
    expect(fulfilled(results)).toBe(20);
    const refused = rejections(results);
    expect(refused).toHaveLength(5);
    for (const error of refused) {
      expect([error.code, error.statusCode]).toEqual(['Forbidden.IpBlocked', 403]);
      // The SDK adds statusCode to the parsed body.
      expect(error.data).toEqual({ RequestId: anyString(), HostId: anyString(), Code: 'Forbidden.IpBlocked', Message: anyString(), Recommend: anyString(), statusCode: 403 });
    }
    // The 21st request is the first refused, in the server's own order; the refused did nothing.
    const calls = handle.calls();
    expect(calls.slice(0, 20).map((c) => c.code)).toEqual(Array(20).fill('OK'));
    expect(calls.slice(20).map((c) => [c.code, c.httpStatus, c.applied, c.sourceIp])).toEqual(Array(5).fill(['Forbidden.IpBlocked', 403, false, '127.0.0.1']));
    expect(handle.registry.count()).toBe(5 + 1);
    const blockStartMs = calls[20]!.atMs;
    // The busiest second ended with the 25th request (the window is dated by its last arrival).
    expect(local()).toEqual({ calls: 25, admitted: 20, busiestSecond: 25, busiestSecondAtMs: Math.max(...calls.map((c) => c.atMs)), blocked: true, blockedUntilMs: blockStartMs + 2000, blockedCalls: 5, blockCount: 1 });

    // Still blocked: a call from the same address changes nothing, whatever its action.
    const during = await callFailure(client, 'GetDeviceCertificate', QUERY);
    expect(during.code).toBe('Forbidden.IpBlocked');
    const blockedUntilMs = blockStartMs + 2000;
    expect(handle.calls().at(-1)!.atMs).toBeLessThan(blockedUntilMs);

    // Wait on the clock, not with calls: calls made while blocked count toward the next window.
    await waitFor(() => Date.now() > blockedUntilMs, 10_000, 'the block to end');
    const left = devices.find((d) => handle.registry.has(d.mqttInstanceId, d.caSn, d.deviceSn))!;
    await callAction(client, 'DeleteDeviceCertificate', { MqttInstanceId: INSTANCE, CaSn: CA, DeviceSn: left.deviceSn });
    expect(handle.registry.has(INSTANCE, CA, left.deviceSn)).toBe(false);
    // Every call before the end of the block was refused, every one after it admitted.
    for (const call of handle.calls().slice(20)) expect(call.code).toBe(call.atMs < blockedUntilMs ? 'Forbidden.IpBlocked' : 'OK');
    expect(local()).toMatchObject({ calls: 27, admitted: 21, blocked: false, blockedUntilMs: null, blockedCalls: 6, blockCount: 1 });
    // Refused before authentication: no account budget was touched by the blocked calls.
    expect(handle.stats().byAccountAction).toEqual({
      LTAIemulator0000000000: { DeleteDeviceCertificate: { calls: 21, admitted: 21, throttled: 0, busiestSecond: 20, busiestSecondAtMs: anyNumber() } },
    });
  });

  it('other source addresses are unaffected (forwarders from 127.0.0.2 and 127.0.0.3), and a block can be cleared', async () => {
    const handle = await start({ ipLimitPerSecond: 10, ipBlockSeconds: 600 });
    const viaTwo = makeClient((await egress(handle, '127.0.0.2')).endpoint);
    const viaThree = makeClient((await egress(handle, '127.0.0.3')).endpoint);
    const get = (): Record<string, string> => QUERY;
    const [two, three] = await Promise.all([burst(viaTwo, 15, 'GetDeviceCertificate', get), burst(viaThree, 10, 'GetDeviceCertificate', get)]);
    const stats = handle.stats();
    expect(stats.bySourceIp['127.0.0.2']!.busiestSecond).toBe(15);
    expect(fulfilled(two)).toBe(10);
    expect(rejections(two).map((e) => e.code)).toEqual(Array(5).fill('Forbidden.IpBlocked'));
    // Exactly at the limit is allowed.
    expect(fulfilled(three)).toBe(10);
    await expect(callAction(makeClient(handle.endpoint), 'GetDeviceCertificate', QUERY)).resolves.toBeDefined();
    expect(handle.stats().bySourceIp).toEqual({
      '127.0.0.2': { calls: 15, admitted: 10, busiestSecond: 15, busiestSecondAtMs: anyNumber(), blocked: true, blockedUntilMs: anyNumber(), blockedCalls: 5, blockCount: 1 },
      '127.0.0.3': { calls: 10, admitted: 10, busiestSecond: 10, busiestSecondAtMs: anyNumber(), blocked: false, blockedUntilMs: null, blockedCalls: 0, blockCount: 0 },
      '127.0.0.1': { calls: 1, admitted: 1, busiestSecond: 1, busiestSecondAtMs: anyNumber(), blocked: false, blockedUntilMs: null, blockedCalls: 0, blockCount: 0 },
    });
    expect(new Set(handle.calls().map((c) => c.sourceIp))).toEqual(new Set(['127.0.0.1', '127.0.0.2', '127.0.0.3']));

    // The control route lifts the block (and only that one).
    const clear = async (body: unknown): Promise<unknown> =>
      (await fetch(`${handle.url}/_emulator/ip-blocks/clear`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json();
    expect(await clear({ ip: '127.0.0.3' })).toEqual({ cleared: 0 });
    expect(await clear({ ip: '127.0.0.2' })).toEqual({ cleared: 1 });
    await expect(callAction(viaTwo, 'GetDeviceCertificate', QUERY)).resolves.toBeDefined();
    expect(handle.stats().bySourceIp['127.0.0.2']).toMatchObject({ blocked: false, blockCount: 1, admitted: 11 });
  });

  it('answers with the configured status, code or verbatim body', async () => {
    const handle = await start({ ipLimitPerSecond: 1, ipBlockSeconds: 600, ipBlockStatus: 429, ipBlockCode: 'Throttling.IpBlocked' });
    const client = makeClient(handle.endpoint);
    const results = await burst(client, 2, 'GetDeviceCertificate', () => QUERY);
    expect(fulfilled(results)).toBe(1);
    const [first] = rejections(results);
    expect([first!.code, first!.statusCode, first!.data?.Code]).toEqual(['Throttling.IpBlocked', 429, 'Throttling.IpBlocked']);

    handle.setIpLimit({ ipBlockStatus: 403, ipBlockBody: '{"Code":"Denied","Message":"blacklisted"}' });
    const custom = await callFailure(client, 'DeleteDeviceCertificate', QUERY);
    // Verbatim: nothing but what was configured (and the statusCode the SDK adds).
    expect([custom.code, custom.statusCode, custom.data]).toEqual(['Denied', 403, { Code: 'Denied', Message: 'blacklisted', statusCode: 403 }]);
    expect(handle.calls().at(-1)).toMatchObject({ code: 'Denied', httpStatus: 403, applied: false, accessKeyId: 'LTAIemulator0000000000' });
    expect(handle.registry.has(INSTANCE, CA, DEVICE.deviceSn)).toBe(true);
    expect(() => handle.setIpLimit({ ipBlockBody: 'not json' })).toThrow(/ipBlockBody must be JSON/);
    expect(() => handle.setIpLimit({ ipLimitPerSecond: 0 })).toThrow(/ipLimitPerSecond must be an integer from 1/);
    // Turning the limit off lifts the block.
    handle.setIpLimit({ ipLimitPerSecond: null });
    await expect(callAction(client, 'GetDeviceCertificate', QUERY)).resolves.toBeDefined();
    expect(handle.stats().bySourceIp['127.0.0.1']).toMatchObject({ blocked: false, blockCount: 1, blockedCalls: 2 });
  });

  it('counts an IPv4 client of a dual-stack listener under its IPv4 address', async () => {
    const handle = await start({ host: '::', ipLimitPerSecond: 100 });
    const viaTwo = makeClient((await egress(handle, '127.0.0.2')).endpoint);
    await callAction(viaTwo, 'GetDeviceCertificate', QUERY);
    expect(Object.keys(handle.stats().bySourceIp)).toEqual(['127.0.0.2']);
    expect(handle.calls()[0]!.sourceIp).toBe('127.0.0.2');
  });

  it('control routes do not count, and the limit is settable through POST /_emulator/config', async () => {
    const handle = await start({ ipLimitPerSecond: 2 });
    const post = (path: string, body: unknown): Promise<Response> =>
      fetch(`${handle.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    for (let i = 0; i < 5; i += 1) expect((await fetch(`${handle.url}/_emulator/stats`)).status).toBe(200);
    expect(handle.stats().bySourceIp).toEqual({});
    const bad = await post('/_emulator/config', { ratePerSecond: 7, ipLimit: { ipBlockStatus: 99 } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/ipBlockStatus/);
    expect(handle.settings()).toMatchObject({ ratePerSecond: 500, ipLimit: { ipLimitPerSecond: 2, ipBlockStatus: 403 } });
    const configured = (await (await post('/_emulator/config', { ipLimit: { ipLimitPerSecond: 300, ipBlockSeconds: 5 } })).json()) as Record<string, unknown>;
    expect(configured.ipLimit).toEqual({ ipLimitPerSecond: 300, ipBlockSeconds: 5, ipBlockStatus: 403, ipBlockCode: 'Forbidden.IpBlocked', ipBlockBody: null });
  });
});
