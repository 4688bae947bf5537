import { describe, it, expect } from 'vitest';
import { createHash, createHmac } from 'node:crypto';
import { stringify } from 'node:querystring';
import {
  acsPercentEncode,
  canonicalHeaders,
  canonicalQueryString,
  canonicalRequest,
  computeSignature,
  parseAuthorization,
  parseQueryPairs,
  signRequest,
  signableHeaderNames,
} from '../../src/emulator/signature-verifier.js';

describe('acsPercentEncode', () => {
  it('escapes what encodeURIComponent leaves alone except ~ - _ .', () => {
    expect(acsPercentEncode("a b*'()!~-_.")).toBe('a%20b%2A%27%28%29%21~-_.');
  });

  it('encodes unicode as UTF-8 bytes and reserved characters', () => {
    expect(acsPercentEncode('é/+=&中')).toBe('%C3%A9%2F%2B%3D%26%E4%B8%AD');
  });
});

describe('canonical query', () => {
  it('decodes the wire form (Node querystring) and re-encodes it, keys sorted', () => {
    const wire = stringify({ DeviceSn: "d 1*'(~)é", CaSn: 'ca+1', MqttInstanceId: 'i-1' });
    // querystring leaves ' ( ) * ~ alone, which the canonical form must escape (except ~).
    expect(wire).toContain("d%201*'(~)%C3%A9");
    expect(canonicalQueryString(parseQueryPairs(wire))).toBe('CaSn=ca%2B1&DeviceSn=d%201%2A%27%28~%29%C3%A9&MqttInstanceId=i-1');
  });

  it('treats + on the wire as a space and keeps empty values', () => {
    expect(parseQueryPairs('a=x+y&b=&c')).toEqual([
      ['a', 'x y'],
      ['b', ''],
      ['c', ''],
    ]);
    expect(canonicalQueryString(parseQueryPairs('b=&a=x+y'))).toBe('a=x%20y&b=');
  });

  it('sorts by UTF-16 code units (upper case before lower case)', () => {
    expect(canonicalQueryString([['b', '1'], ['B', '2'], ['a', '3']])).toBe('B=2&a=3&b=1');
  });

  it('survives a malformed escape without throwing', () => {
    expect(parseQueryPairs('a=%zz')).toEqual([['a', '%zz']]);
  });
});

describe('canonical headers', () => {
  const headers = {
    Host: '127.0.0.1:8787',
    'X-Acs-Date': ' 2026-01-01T00:00:00Z ',
    'x-acs-action': 'DeleteDeviceCertificate',
    'user-agent': 'not signed',
    'content-type': 'application/x-www-form-urlencoded',
  };

  it('selects host, content-type and x-acs-*, lower-cased and sorted', () => {
    expect(signableHeaderNames(headers)).toEqual(['content-type', 'host', 'x-acs-action', 'x-acs-date']);
  });

  it('writes one trimmed name:value line per header', () => {
    expect(canonicalHeaders(headers, ['x-acs-date', 'host'])).toBe('host:127.0.0.1:8787\nx-acs-date:2026-01-01T00:00:00Z\n');
  });

  it('joins repeated values sorted with a comma', () => {
    expect(canonicalHeaders({ 'x-acs-a': ['b', ' a '] }, ['x-acs-a'])).toBe('x-acs-a:a,b\n');
  });
});

describe('signature', () => {
  const parts = {
    method: 'POST',
    pathname: '/',
    rawQuery: 'MqttInstanceId=i1&DeviceSn=d1',
    headers: { host: 'h', 'x-acs-date': '2026-01-01T00:00:00Z' },
    signedHeaders: ['x-acs-date', 'host'],
    hashedPayload: createHash('sha256').update('').digest('hex'),
  };

  it('builds the canonical request of DESIGN §1 (blank line before the signed header list)', () => {
    expect(canonicalRequest(parts)).toBe(
      ['POST', '/', 'DeviceSn=d1&MqttInstanceId=i1', 'host:h\nx-acs-date:2026-01-01T00:00:00Z\n', 'host;x-acs-date', parts.hashedPayload].join('\n'),
    );
  });

  it('is the HMAC of "ACS3-HMAC-SHA256\\n" + sha256(canonical request) keyed by the secret', () => {
    const expected = createHmac('sha256', 'secret')
      .update(`ACS3-HMAC-SHA256\n${createHash('sha256').update(canonicalRequest(parts)).digest('hex')}`)
      .digest('hex');
    expect(computeSignature(parts, 'secret')).toBe(expected);
    expect(computeSignature(parts, 'other')).not.toBe(expected);
  });

  it('parses the Authorization header and rejects garbage', () => {
    expect(parseAuthorization('ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host;X-Acs-Date,Signature=ABC')).toEqual({
      algorithm: 'ACS3-HMAC-SHA256',
      accessKeyId: 'AK',
      signedHeaders: ['host', 'x-acs-date'],
      signature: 'abc',
    });
    expect(parseAuthorization('garbage')).toBeUndefined();
    expect(parseAuthorization('ACS3-HMAC-SHA256 Credential=AK,Signature=abc')).toBeUndefined();
  });

  it('signRequest produces what verification recomputes', () => {
    const headers = signRequest({
      method: 'POST',
      pathname: '/',
      rawQuery: 'A=1',
      headers: { host: 'h', 'x-acs-date': '2026-01-01T00:00:00Z', 'x-acs-signature-nonce': 'n1' },
      accessKeyId: 'AK',
      accessKeySecret: 's',
    });
    const auth = parseAuthorization(headers.Authorization!)!;
    expect(auth.signedHeaders).toEqual(['host', 'x-acs-content-sha256', 'x-acs-date', 'x-acs-signature-nonce']);
    const recomputed = computeSignature(
      { method: 'POST', pathname: '/', rawQuery: 'A=1', headers, signedHeaders: auth.signedHeaders, hashedPayload: headers['x-acs-content-sha256']! },
      's',
    );
    expect(auth.signature).toBe(recomputed);
  });
});
