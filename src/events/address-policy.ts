/**
 * Which IP addresses a completion event may be sent to. The worker that sends events is the
 * process holding the AccessKey or RAM role: a callback that reaches its loopback, the VPC or the
 * ECS metadata service (100.100.100.200 on Alibaba Cloud, 169.254.169.254 elsewhere) is a server-side
 * request forgery. Everything that is not a public unicast address is refused unless the
 * deployment says otherwise (EVENTS_ALLOW_PRIVATE). Pure; `net.BlockList` does the prefix matching.
 */
import { BlockList, isIP } from 'node:net';

/** A refused address range and why, as named in errors and logs. */
interface ForbiddenRange {
  network: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
  what: string;
}

// IPv4-mapped (::ffff:0:0/96) and IPv4-compatible (::/96) forms are refused as a whole rather
// than unwrapped: no legitimate receiver is reached that way, and unwrapping is where filters go wrong.
const FORBIDDEN_RANGES: readonly ForbiddenRange[] = [
  { network: '0.0.0.0', prefix: 8, family: 'ipv4', what: 'unspecified ("this network")' },
  { network: '10.0.0.0', prefix: 8, family: 'ipv4', what: 'private' },
  { network: '100.64.0.0', prefix: 10, family: 'ipv4', what: 'carrier-grade NAT / cloud metadata (100.64.0.0/10)' },
  { network: '127.0.0.0', prefix: 8, family: 'ipv4', what: 'loopback' },
  { network: '169.254.0.0', prefix: 16, family: 'ipv4', what: 'link-local / cloud metadata' },
  { network: '172.16.0.0', prefix: 12, family: 'ipv4', what: 'private' },
  { network: '192.0.0.0', prefix: 24, family: 'ipv4', what: 'IETF protocol assignments' },
  { network: '192.0.2.0', prefix: 24, family: 'ipv4', what: 'documentation' },
  { network: '192.168.0.0', prefix: 16, family: 'ipv4', what: 'private' },
  { network: '198.18.0.0', prefix: 15, family: 'ipv4', what: 'benchmarking' },
  { network: '198.51.100.0', prefix: 24, family: 'ipv4', what: 'documentation' },
  { network: '203.0.113.0', prefix: 24, family: 'ipv4', what: 'documentation' },
  { network: '224.0.0.0', prefix: 4, family: 'ipv4', what: 'multicast' },
  { network: '240.0.0.0', prefix: 4, family: 'ipv4', what: 'reserved / broadcast' },
  { network: '::', prefix: 128, family: 'ipv6', what: 'unspecified' },
  { network: '::1', prefix: 128, family: 'ipv6', what: 'loopback' },
  { network: '::ffff:0:0', prefix: 96, family: 'ipv6', what: 'IPv4-mapped' },
  { network: '::', prefix: 96, family: 'ipv6', what: 'IPv4-compatible' },
  { network: '64:ff9b::', prefix: 96, family: 'ipv6', what: 'NAT64 (embeds an IPv4 address)' },
  { network: '64:ff9b:1::', prefix: 48, family: 'ipv6', what: 'local NAT64' },
  { network: '100::', prefix: 64, family: 'ipv6', what: 'discard' },
  { network: '2001:db8::', prefix: 32, family: 'ipv6', what: 'documentation' },
  { network: '2002::', prefix: 16, family: 'ipv6', what: '6to4 (embeds an IPv4 address)' },
  { network: 'fc00::', prefix: 7, family: 'ipv6', what: 'unique local (private)' },
  { network: 'fe80::', prefix: 10, family: 'ipv6', what: 'link-local' },
  { network: 'fec0::', prefix: 10, family: 'ipv6', what: 'site-local' },
  { network: 'ff00::', prefix: 8, family: 'ipv6', what: 'multicast' },
];

// One list per range so the answer can say which rule refused the address.
const RANGE_LISTS = FORBIDDEN_RANGES.map((range) => {
  const list = new BlockList();
  list.addSubnet(range.network, range.prefix, range.family);
  return { range, list };
});

/** Strips the brackets a URL puts around an IPv6 literal. */
export function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/**
 * Why `address` (an IP literal) must not receive events, or null when it is a public unicast
 * address. Anything that is not an IP address at all is refused too.
 */
export function forbiddenAddressReason(address: string): string | null {
  const bare = unbracket(address);
  const version = isIP(bare);
  if (version === 0) return 'not an IP address';
  const family = version === 4 ? 'ipv4' : 'ipv6';
  for (const { range, list } of RANGE_LISTS) {
    // An IPv4 rule must not match an IPv6 address through BlockList's mapped-address handling
    // (the mapped range has its own rule above, with its own name).
    if (range.family !== family) continue;
    if (list.check(bare, family)) return `${bare} is ${range.what} (${range.network}/${range.prefix})`;
  }
  return null;
}
