import { describe, expect, it } from 'vitest';
import { parseRevocationBody } from '../../src/producer/webhook-body.js';
import type { ParsedRevocation } from '../../src/producer/webhook-body.js';

const INSTANCE = 'mqtt-cn-0pp1ldu0a01';
const OTHER_INSTANCE = 'post-cn-abc12345';

function accepted(body: unknown, maxDevices = 100): ParsedRevocation {
  const result = parseRevocationBody(body, { maxDevices });
  if (!result.ok) throw new Error(`refused: ${result.code} ${result.message}`);
  return result.value;
}

describe('parseRevocationBody', () => {
  it('accepts a good body as JSON delivers it', () => {
    const body: unknown = JSON.parse(
      JSON.stringify({
        mqttInstanceId: INSTANCE,
        caSn: 'CA01',
        deviceSns: ['DEV001', ' DEV002 '],
        action: 'inactivate',
        reason: 'key leak 2024-05',
        name: 'leak batch',
        callbackUrl: 'https://ops.example.com/hooks/revoker',
        somethingNew: { ignored: true },
      }),
    );
    expect(accepted(body)).toEqual({
      action: 'inactivate',
      reason: 'key leak 2024-05',
      name: 'leak batch',
      callbackUrl: 'https://ops.example.com/hooks/revoker',
      requests: [
        { mqttInstanceId: INSTANCE, caSn: 'CA01', deviceSn: 'DEV001', line: 0 },
        { mqttInstanceId: INSTANCE, caSn: 'CA01', deviceSn: 'DEV002', line: 1 },
      ],
      rejected: [],
    });
  });

  it('defaults the action to delete', () => {
    const value = accepted({ mqttInstanceId: INSTANCE, caSn: 'CA01', deviceSns: ['DEV001'] });
    expect(value.action).toBe('delete');
    expect(value).not.toHaveProperty('reason');
  });

  it('mixes string and object entries, objects overriding the top-level caSn and instance', () => {
    const value = accepted({
      mqttInstanceId: INSTANCE,
      caSn: 'CA01',
      deviceSns: [
        'DEV001',
        { deviceSn: 'DEV002' },
        { deviceSn: 'DEV003', caSn: 'CA02' },
        { deviceSn: 'DEV004', mqttInstanceId: OTHER_INSTANCE, caSn: null },
      ],
    });
    expect(value.requests).toEqual([
      { mqttInstanceId: INSTANCE, caSn: 'CA01', deviceSn: 'DEV001', line: 0 },
      { mqttInstanceId: INSTANCE, caSn: 'CA01', deviceSn: 'DEV002', line: 1 },
      { mqttInstanceId: INSTANCE, caSn: 'CA02', deviceSn: 'DEV003', line: 2 },
      { mqttInstanceId: OTHER_INSTANCE, caSn: 'CA01', deviceSn: 'DEV004', line: 3 },
    ]);
  });

  it('works without top-level identifiers when every entry carries them', () => {
    const value = accepted({
      deviceSns: [{ deviceSn: 'DEV001', caSn: 'CA01', mqttInstanceId: INSTANCE }, 'DEV002'],
    });
    expect(value.requests).toEqual([{ mqttInstanceId: INSTANCE, caSn: 'CA01', deviceSn: 'DEV001', line: 0 }]);
    expect(value.rejected).toEqual([
      {
        line: 1,
        deviceSn: 'DEV002',
        reason:
          'CaSn is missing: give caSn at the top level or on the entry; MqttInstanceId is missing: give mqttInstanceId at the top level or on the entry',
      },
    ]);
  });

  it('rejects bad entries one by one and accepts the rest', () => {
    const value = accepted({
      mqttInstanceId: INSTANCE,
      caSn: 'CA01',
      deviceSns: [
        'DEV001',
        'DEV 002',
        '',
        'x'.repeat(200),
        42,
        null,
        ['DEV007'],
        { caSn: 'CA01' },
        { deviceSn: 9 },
        { deviceSn: 'DEV010', mqttInstanceId: 'NOT_AN_ID' },
        { deviceSn: 'DEV011', caSn: 7 },
        'DEV012',
      ],
    });
    expect(value.requests.map((request) => [request.line, request.deviceSn])).toEqual([
      [0, 'DEV001'],
      [11, 'DEV012'],
    ]);
    expect(value.rejected).toEqual([
      { line: 1, deviceSn: 'DEV 002', reason: 'DeviceSn contains whitespace (U+0020) at position 4' },
      { line: 2, reason: 'DeviceSn is empty' },
      { line: 3, deviceSn: `${'x'.repeat(64)}…`, reason: 'DeviceSn is longer than 128 bytes (200)' },
      { line: 4, reason: 'entry must be a device serial string or an object with deviceSn, got a number' },
      { line: 5, reason: 'entry must be a device serial string or an object with deviceSn, got null' },
      { line: 6, reason: 'entry must be a device serial string or an object with deviceSn, got an array' },
      { line: 7, reason: 'deviceSn is missing' },
      { line: 8, reason: 'deviceSn must be a string, got a number' },
      {
        line: 9,
        deviceSn: 'DEV010',
        reason:
          'MqttInstanceId "NOT_AN_ID" is not an instance id like mqtt-cn-0pp1ldu0a01 (lower-case letters, digits and \'-\')',
      },
      { line: 10, deviceSn: 'DEV011', reason: 'caSn must be a string, got a number' },
    ]);
  });

  it.each([
    ['an array', [], 'the body must be a JSON object, got an array'],
    ['null', null, 'the body must be a JSON object, got null'],
    ['a string', '{"deviceSns":["x"]}', 'the body must be a JSON object, got a string'],
    ['a number', 3, 'the body must be a JSON object, got a number'],
    ['a class instance', new Date(0), 'the body must be a JSON object, got an object'],
  ])('refuses %s as invalid_body', (_name, body, message) => {
    expect(parseRevocationBody(body, { maxDevices: 10 })).toEqual({ ok: false, code: 'invalid_body', message, status: 400 });
  });

  it.each([
    ['"revoke"', 'revoke', 'action must be "delete" or "inactivate", got "revoke"'],
    ['"DELETE"', 'DELETE', 'action must be "delete" or "inactivate", got "DELETE"'],
    ['a number', 1, 'action must be "delete" or "inactivate", got a number'],
  ])('refuses action %s as invalid_action', (_name, action, message) => {
    expect(parseRevocationBody({ caSn: 'CA01', mqttInstanceId: INSTANCE, deviceSns: ['D1'], action }, { maxDevices: 10 })).toEqual({
      ok: false,
      code: 'invalid_action',
      message,
      status: 400,
    });
  });

  it.each([
    ['missing', {}, 'deviceSns is missing: give a non-empty array of device serial numbers'],
    ['empty', { deviceSns: [] }, 'deviceSns is empty'],
    ['a string', { deviceSns: 'DEV001' }, 'deviceSns must be an array, got a string'],
    ['an object', { deviceSns: { 0: 'DEV001' } }, 'deviceSns must be an array, got an object'],
  ])('refuses deviceSns %s as missing_devices', (_name, body, message) => {
    expect(parseRevocationBody({ caSn: 'CA01', mqttInstanceId: INSTANCE, ...body }, { maxDevices: 10 })).toEqual({
      ok: false,
      code: 'missing_devices',
      message,
      status: 400,
    });
  });

  it('answers 413 too_many_devices above maxDevices, and accepts exactly maxDevices', () => {
    const deviceSns = Array.from({ length: 11 }, (_, index) => `DEV${index}`);
    expect(parseRevocationBody({ caSn: 'CA01', mqttInstanceId: INSTANCE, deviceSns }, { maxDevices: 10 })).toEqual({
      ok: false,
      code: 'too_many_devices',
      message: 'deviceSns has 11 entries; at most 10 are accepted per delivery',
      status: 413,
    });
    expect(accepted({ caSn: 'CA01', mqttInstanceId: INSTANCE, deviceSns: deviceSns.slice(1) }, 10).requests).toHaveLength(10);
  });

  it.each([
    ['a non-string reason', { reason: 5 }, 'reason must be a string, got a number'],
    ['a huge reason', { reason: 'r'.repeat(1001) }, 'reason is longer than 1000 characters (1001)'],
    ['a non-http callbackUrl', { callbackUrl: 'file:///etc/passwd' }, 'callbackUrl must be an http(s) URL of at most 2048 characters'],
    ['a non-URL callbackUrl', { callbackUrl: 'not a url' }, 'callbackUrl must be an http(s) URL of at most 2048 characters'],
    ['a bad top-level caSn', { caSn: 'CA 01' }, 'caSn: CaSn contains whitespace (U+0020) at position 3'],
    [
      'a bad top-level instance',
      { mqttInstanceId: 'Mqtt' },
      'mqttInstanceId: MqttInstanceId "Mqtt" is not an instance id like mqtt-cn-0pp1ldu0a01 (lower-case letters, digits and \'-\')',
    ],
    ['an object as caSn', { caSn: { toString: 'CA01' } }, 'caSn must be a string, got an object'],
  ])('refuses %s as invalid_field', (_name, override, message) => {
    expect(
      parseRevocationBody({ caSn: 'CA01', mqttInstanceId: INSTANCE, deviceSns: ['DEV001'], ...override }, { maxDevices: 10 }),
    ).toEqual({ ok: false, code: 'invalid_field', message, status: 400 });
  });

  it('ignores __proto__, constructor and prototype keys without polluting anything', () => {
    const body: unknown = JSON.parse(
      `{"__proto__":{"polluted":"yes","deviceSns":["EVIL"],"caSn":"EVIL"},"constructor":{"prototype":{"polluted":"yes"}},"prototype":{"polluted":"yes"},"mqttInstanceId":"${INSTANCE}","caSn":"CA01","deviceSns":["DEV001",{"__proto__":{"caSn":"EVIL"},"deviceSn":"DEV002"}]}`,
    );
    const value = accepted(body);
    expect(value.requests).toEqual([
      { mqttInstanceId: INSTANCE, caSn: 'CA01', deviceSn: 'DEV001', line: 0 },
      { mqttInstanceId: INSTANCE, caSn: 'CA01', deviceSn: 'DEV002', line: 1 },
    ]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.getPrototypeOf(value.requests[0])).toBe(Object.prototype);
  });

  it('does not take fields from a prototype chain', () => {
    const inherited = Object.create({ deviceSns: ['DEV001'], caSn: 'CA01', mqttInstanceId: INSTANCE }) as object;
    expect(parseRevocationBody(inherited, { maxDevices: 10 })).toMatchObject({ ok: false, code: 'invalid_body' });
    const nullPrototype = Object.assign(Object.create(null) as object, { caSn: 'CA01', mqttInstanceId: INSTANCE, deviceSns: ['DEV001'] });
    expect(accepted(nullPrototype).requests).toHaveLength(1);
    // An entry object's inherited deviceSn is not a deviceSn.
    const entry = Object.create({ deviceSn: 'DEV002' }) as object;
    expect(accepted({ caSn: 'CA01', mqttInstanceId: INSTANCE, deviceSns: [entry] }).rejected).toEqual([
      { line: 0, reason: 'entry must be a device serial string or an object with deviceSn, got an object' },
    ]);
  });
});

describe('parseRevocationBody priority', () => {
  it('accepts urgent, normal and bulk, defaults to none, refuses anything else', () => {
    const base = { caSn: 'CA01', mqttInstanceId: 'mqtt-cn-prio01', deviceSns: ['D1'] };
    const urgent = parseRevocationBody({ ...base, priority: 'urgent' }, { maxDevices: 10 });
    expect(urgent.ok && urgent.value.priority).toBe('urgent');
    const none = parseRevocationBody(base, { maxDevices: 10 });
    expect(none.ok && none.value.priority).toBeUndefined();
    expect(parseRevocationBody({ ...base, priority: 'high' }, { maxDevices: 10 })).toMatchObject({ ok: false, code: 'invalid_field', status: 400 });
  });
});

describe('parseRevocationBody free text', () => {
  const base = { caSn: 'CA01', mqttInstanceId: 'mqtt-cn-text01', deviceSns: ['D1'] };

  it.each([
    ['name', 'lot 7\u001b[2K\r[completed] all 50000 devices deleted', 'U+001B'],
    ['reason', 'leak \u001b]52;c;ZWNobyBwd25lZA==\u0007', 'U+001B'],
    ['name', 'a\u0000b', 'U+0000'],
    ['reason', 'multi\nline', 'U+000A'],
    ['name', 'c1 \u009b31m', 'U+009B'],
    ['name', 'invoice\u202efdp.exe', 'U+202E'],
  ])('refuses a %s holding a control character (%j)', (field, value, named) => {
    const result = parseRevocationBody({ ...base, [field]: value }, { maxDevices: 10 });
    expect(result).toMatchObject({ ok: false, code: 'invalid_field', status: 400 });
    expect(!result.ok && result.message).toContain(`${field} contains a control character (${named})`);
  });

  it('accepts ordinary text, accents and emoji included', () => {
    const result = parseRevocationBody({ ...base, name: 'Lot 7 — décommission 🚚', reason: 'clé fuitée (ticket #42)' }, { maxDevices: 10 });
    expect(result.ok && result.value).toMatchObject({ name: 'Lot 7 — décommission 🚚', reason: 'clé fuitée (ticket #42)' });
  });
});
