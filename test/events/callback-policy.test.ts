/**
 * The callback rules, pure: which addresses are refused (the probes first), how a URL is
 * checked against the allow-list, and how a name is resolved once and refused as a whole when any
 * of its addresses is inside.
 */
import { describe, expect, it } from 'vitest';
import { forbiddenAddressReason } from '../../src/events/address-policy.js';
import { checkCallbackUrl, normaliseOrigin, resolvePinned, type CallbackPolicy } from '../../src/events/callback-policy.js';

/** The URLs the security review reached from the worker. */
const PROBES = [
  'http://127.0.0.1:19999/actuator/shutdown?force=true',
  'http://2130706433:19999/',
  'http://[::ffff:127.0.0.1]:19999/',
  'http://100.100.100.200/latest/meta-data/ram/security-credentials/',
  'http://169.254.169.254/latest/meta-data/',
];

describe('forbidden addresses', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['fd00::1', 'unique local'],
    ['169.254.169.254', 'link-local'],
    ['fe80::1', 'link-local'],
    ['100.100.100.200', 'carrier-grade NAT'],
    ['100.64.0.1', 'carrier-grade NAT'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'IPv4-mapped'],
    ['::ffff:8.8.8.8', 'IPv4-mapped'],
    ['64:ff9b::7f00:1', 'NAT64'],
    ['2002:7f00:1::1', '6to4'],
    ['255.255.255.255', 'broadcast'],
  ])('refuses %s (%s)', (address, what) => {
    expect(forbiddenAddressReason(address)).toContain(what);
  });

  it.each(['8.8.8.8', '47.88.1.1', '100.63.255.255', '100.128.0.1', '172.32.0.1', '2606:4700:4700::1111', '[2400:3200::1]'])('allows the public address %s', (address) => {
    expect(forbiddenAddressReason(address)).toBeNull();
  });

  it('refuses what is not an IP address', () => {
    expect(forbiddenAddressReason('localhost')).toBe('not an IP address');
  });
});

describe('callback URLs against the policy', () => {
  const strict: CallbackPolicy = { allowedOrigins: ['https://hooks.example.com', 'http://plain.example.com:8080', ...PROBES.map((probe) => new URL(probe).origin)], allowPrivate: false };

  it('refuses every probe of the review even when its origin is on the allow-list', () => {
    for (const probe of PROBES) {
      const check = checkCallbackUrl(probe, strict);
      expect(check, probe).toMatchObject({ ok: false, rule: 'callback_address_forbidden' });
    }
  });

  it('allows them only when private addresses are allowed and the origin is listed', () => {
    const lenient: CallbackPolicy = { ...strict, allowPrivate: true };
    for (const probe of PROBES) expect(checkCallbackUrl(probe, lenient).ok, probe).toBe(true);
    expect(checkCallbackUrl('http://127.0.0.1:20000/', lenient)).toMatchObject({ ok: false, rule: 'callback_origin_not_allowed' });
  });

  it('names the rule: origin, https, syntax', () => {
    expect(checkCallbackUrl('https://hooks.example.com/revoker?x=1', strict)).toMatchObject({ ok: true, origin: 'https://hooks.example.com' });
    expect(checkCallbackUrl('https://HOOKS.example.com:443/a', strict)).toMatchObject({ ok: true });
    expect(checkCallbackUrl('https://evil.example.net/', strict)).toMatchObject({ ok: false, rule: 'callback_origin_not_allowed' });
    expect(checkCallbackUrl('https://hooks.example.com.evil.net/', strict)).toMatchObject({ ok: false, rule: 'callback_origin_not_allowed' });
    expect(checkCallbackUrl('https://hooks.example.com:8443/', strict)).toMatchObject({ ok: false, rule: 'callback_origin_not_allowed' });
    expect(checkCallbackUrl('http://hooks.example.com/', strict)).toMatchObject({ ok: false, rule: 'callback_https_required' });
    expect(checkCallbackUrl('http://plain.example.com:8080/x', strict)).toMatchObject({ ok: true });
    expect(checkCallbackUrl('https://user:pw@hooks.example.com/', strict)).toMatchObject({ ok: false, rule: 'callback_url_invalid' });
    expect(checkCallbackUrl('ftp://hooks.example.com/', strict)).toMatchObject({ ok: false, rule: 'callback_url_invalid' });
    expect(checkCallbackUrl('not a url', strict)).toMatchObject({ ok: false, rule: 'callback_url_invalid' });
  });

  it('narrows to a sender’s own origins, never beyond the policy’s', () => {
    expect(checkCallbackUrl('https://hooks.example.com/', strict, ['http://plain.example.com:8080'])).toMatchObject({ ok: false, rule: 'callback_origin_not_allowed' });
    expect(checkCallbackUrl('https://other.example.com/', strict, ['https://other.example.com'])).toMatchObject({ ok: false, rule: 'callback_origin_not_allowed' });
  });

  it('normalises allow-list entries and refuses anything but a bare origin', () => {
    expect(normaliseOrigin('https://Hooks.Example.com:443')).toBe('https://hooks.example.com');
    expect(normaliseOrigin('https://hooks.example.com/')).toBe('https://hooks.example.com');
    expect(normaliseOrigin('http://[::1]:8080')).toBe('http://[::1]:8080');
    for (const bad of ['https://hooks.example.com/path', 'https://a.com?x=1', 'ftp://a.com', 'https://u:p@a.com', 'hooks.example.com', '']) expect(normaliseOrigin(bad), bad).toBeNull();
  });
});

describe('resolving a callback host once', () => {
  const lookupOf = (table: Record<string, string[]>) => (host: string) => Promise.resolve((table[host] ?? []).map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));

  it('refuses a name with any inside address (a rebinding answer), and pins a public one', async () => {
    const lookup = lookupOf({ 'rebind.example': ['93.184.216.34', '127.0.0.1'], 'inside.example': ['10.0.0.5'], 'good.example': ['93.184.216.34', '2606:2800:220:1::1'] });
    expect(await resolvePinned(new URL('https://rebind.example/'), false, lookup)).toMatchObject({ ok: false, message: expect.stringContaining('127.0.0.1') as unknown });
    expect(await resolvePinned(new URL('https://inside.example/'), false, lookup)).toMatchObject({ ok: false });
    expect(await resolvePinned(new URL('https://good.example/'), false, lookup)).toEqual({ ok: true, address: '93.184.216.34', family: 4 });
    expect(await resolvePinned(new URL('https://inside.example/'), true, lookup)).toEqual({ ok: true, address: '10.0.0.5', family: 4 });
    expect(await resolvePinned(new URL('https://nothing.example/'), false, lookup)).toMatchObject({ ok: false });
  });

  it('takes an IP literal as is, without a lookup', async () => {
    const lookup = () => Promise.reject(new Error('must not be called'));
    expect(await resolvePinned(new URL('http://[::ffff:127.0.0.1]/'), false, lookup)).toMatchObject({ ok: false });
    expect(await resolvePinned(new URL('http://127.0.0.1:8080/'), true, lookup)).toEqual({ ok: true, address: '127.0.0.1', family: 4 });
  });
});
