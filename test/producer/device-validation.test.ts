import { describe, expect, it } from 'vitest';
import {
  normaliseIdentifier,
  truncateForEcho,
  validateCaSn,
  validateDeviceSn,
  validateInstanceId,
} from '../../src/producer/device-validation.js';

describe('validateDeviceSn', () => {
  it.each([
    ['a hex serial', '4A1B2C3D4E5F'],
    ['trailing spaces from a spreadsheet', 'DEV001   '],
    ['surrounding tab and NBSP', '\tDEV001\u00a0'],
    ['a formula-like serial (escaped later, not refused)', '=CMD(1)'],
    ['a leading plus', '+41'],
    ['a leading minus', '-1'],
    ['a leading at-sign', '@SUM'],
    ['exactly 128 ASCII bytes', 'x'.repeat(128)],
    ['punctuation', 'a-b_c.d:e/f"g'],
  ])('accepts %s', (_name, value) => {
    expect(validateDeviceSn(value)).toBeNull();
  });

  it.each([
    ['empty', '', 'DeviceSn is empty'],
    ['only spaces', '   ', 'DeviceSn is empty'],
    ['129 ASCII bytes', 'x'.repeat(129), 'DeviceSn is longer than 128 bytes (129)'],
    // 70 characters but 140 bytes: bytes are what the API limits.
    ['70 two-byte characters', 'é'.repeat(70), 'DeviceSn is longer than 128 bytes (140)'],
    ['a space inside', 'DEV 01', 'DeviceSn contains whitespace (U+0020) at position 4'],
    ['a NBSP inside', 'DEV\u00a001', 'DeviceSn contains whitespace (U+00A0) at position 4'],
    ['a NUL', 'DEV\u000001', 'DeviceSn contains a control character (U+0000) at position 4'],
    ['a BEL', 'DEV\u000701', 'DeviceSn contains a control character (U+0007) at position 4'],
    ['a newline inside', 'DEV\n01', 'DeviceSn contains a control character (U+000A) at position 4'],
    ['DEL', 'DEV\u007f', 'DeviceSn contains a control character (U+007F) at position 4'],
    ['a C1 control', 'DEV\u0085', 'DeviceSn contains a control character (U+0085) at position 4'],
    // 64 two-byte characters fit in 128 bytes: refused for the charset, not the length.
    ['non-ASCII within 128 bytes', 'é'.repeat(64), 'DeviceSn contains a non-ASCII character (U+00E9) at position 1'],
    ['an emoji', 'DEV😀', 'DeviceSn contains a non-ASCII character (U+1F600) at position 4'],
  ])('refuses %s', (_name, value, reason) => {
    expect(validateDeviceSn(value)).toBe(reason);
  });
});

describe('validateCaSn', () => {
  it('applies the serial rules and names CaSn', () => {
    expect(validateCaSn(' 0A1B ')).toBeNull();
    expect(validateCaSn('')).toBe('CaSn is empty');
    expect(validateCaSn('CA 1')).toBe('CaSn contains whitespace (U+0020) at position 3');
    expect(validateCaSn('ü'.repeat(65))).toBe('CaSn is longer than 128 bytes (130)');
  });
});

describe('validateInstanceId', () => {
  it.each(['mqtt-cn-0pp1ldu0a01', 'post-cn-abc12345', 'mqtt-sg-x', '  mqtt-cn-0pp1ldu0a01 '])('accepts %j', (value) => {
    expect(validateInstanceId(value)).toBeNull();
  });

  it.each([
    ['', 'MqttInstanceId is empty'],
    ['MQTT-CN-0PP1', 'MqttInstanceId "MQTT-CN-0PP1" is not an instance id like mqtt-cn-0pp1ldu0a01 (lower-case letters, digits and \'-\')'],
    ['mqtt', 'MqttInstanceId "mqtt" is not an instance id like mqtt-cn-0pp1ldu0a01 (lower-case letters, digits and \'-\')'],
    ['mqtt--cn', 'MqttInstanceId "mqtt--cn" is not an instance id like mqtt-cn-0pp1ldu0a01 (lower-case letters, digits and \'-\')'],
    ['0mqtt-cn', 'MqttInstanceId "0mqtt-cn" is not an instance id like mqtt-cn-0pp1ldu0a01 (lower-case letters, digits and \'-\')'],
    ['mqtt-cn-', 'MqttInstanceId "mqtt-cn-" is not an instance id like mqtt-cn-0pp1ldu0a01 (lower-case letters, digits and \'-\')'],
    ['mqtt_cn_1', 'MqttInstanceId "mqtt_cn_1" is not an instance id like mqtt-cn-0pp1ldu0a01 (lower-case letters, digits and \'-\')'],
    [`mqtt-${'a'.repeat(60)}`, 'MqttInstanceId is longer than 64 characters (65)'],
  ])('refuses %j', (value, reason) => {
    expect(validateInstanceId(value)).toBe(reason);
  });
});

describe('normaliseIdentifier and truncateForEcho', () => {
  it('trims surrounding whitespace only', () => {
    expect(normaliseIdentifier('\ufeff DEV 01 \r\n')).toBe('DEV 01');
  });

  it('cuts long values to 64 code points without splitting surrogate pairs', () => {
    expect(truncateForEcho('x'.repeat(64))).toBe('x'.repeat(64));
    expect(truncateForEcho('x'.repeat(65))).toBe(`${'x'.repeat(64)}…`);
    expect(truncateForEcho('😀'.repeat(64))).toBe('😀'.repeat(64));
    expect(truncateForEcho('😀'.repeat(100))).toBe(`${'😀'.repeat(64)}…`);
    expect(truncateForEcho('y'.repeat(1_000_000))).toHaveLength(65);
  });
});
