/**
 * Options of the local onsmqtt API emulator, their defaults, and the one function that checks
 * a partial set and fills in the rest.
 */

/** An AccessKey the emulator accepts. */
export interface EmulatorAccount {
  accessKeyId: string;
  accessKeySecret: string;
  /**
   * When set, the key behaves like an STS key: every request must carry this value in
   * `x-acs-security-token` (signed), as a real STS credential must.
   */
  securityToken?: string;
  /**
   * The Alibaba Cloud account the key belongs to. The API's budgets are per account, so keys
   * with the same accountId (a key rotation, RAM users of one account) share them. A key
   * without one is an account of its own, named after its AccessKey id.
   */
  accountId?: string;
}

/** A device certificate to register at start (or later through the handle / control API). */
export interface EmulatorDeviceSeed {
  mqttInstanceId: string;
  caSn: string;
  deviceSn: string;
  /** "1" active (the default), "0" inactive. */
  status?: '0' | '1';
}

/** A CA certificate to register with no devices under it. */
export interface EmulatorCaSeed {
  mqttInstanceId: string;
  caSn: string;
  /** "1" active (the default), "0" inactive (as after InactivateCaCertificate). */
  status?: '0' | '1';
}

/** Response-time distribution: log-normal, so most calls are quick and a few are slow. */
export interface LatencyOptions {
  /** Median added delay before a call is answered, in ms. 0 with p99Ms 0 means no delay. */
  medianMs: number;
  /** 99th percentile of the added delay, in ms; must be ≥ medianMs. */
  p99Ms: number;
}

/**
 * Injected failures. Each rate is the probability (0..1) that one admitted API call gets that
 * fault instead of normal behaviour; the rates together must not exceed 1. Throttled and
 * unauthenticated calls never get a fault.
 */
export interface FaultOptions {
  /** HTTP 503 `ServiceUnavailable`; the registry is not touched. */
  serviceUnavailableRate: number;
  /** HTTP 500 `InternalError`; the registry is not touched. */
  internalErrorRate: number;
  /** The socket is destroyed BEFORE the operation is applied: the client sees a reset. */
  dropConnectionRate: number;
  /**
   * The operation IS applied, then the answer is held for `timeoutDelayMs`: the client's read
   * timeout fires first, so it never learns the call succeeded ("result unknown").
   */
  timeoutRate: number;
  /** HTTP 502 with an HTML body (a proxy error page); the registry is not touched. */
  nonJsonRate: number;
  /** How long a "timeout" answer is held, in ms: longer than the client's read timeout. */
  timeoutDelayMs: number;
}

/**
 * The per source IP address limit. The API documents 300 calls/s per source IP and that an
 * address going above it is blocked (拉黑), not throttled; the answer, the duration and what
 * counts are undocumented, so they are all settable. The emulator's reading: every API request
 * from the address counts (every action, every key, whatever its outcome, counted before
 * authentication as a gateway in front of the API would, and requests refused by the block
 * too, so an address that keeps calling above the limit while blocked is blocked again as soon
 * as the block ends). Control routes (`/_emulator/*`) do not count.
 */
export interface IpLimitOptions {
  /**
   * A request arriving when this many requests from the same address arrived in the preceding
   * 1000 ms (sliding window) blocks the address for `ipBlockSeconds`. null turns the check off:
   * the library default, so in-process tests are not limited; `revoker emulator` defaults to
   * the real API's 300.
   */
  ipLimitPerSecond: number | null;
  /**
   * How long a block lasts, in seconds (fractions allowed). The request that triggers it and
   * every request from the address until it ends get the block answer and change nothing.
   */
  ipBlockSeconds: number;
  /** HTTP status of the block answer. */
  ipBlockStatus: number;
  /** `Code` of the block answer (its body is `{RequestId, HostId, Code, Message, Recommend}`). */
  ipBlockCode: string;
  /** When not null, the whole body of the block answer, sent verbatim; must be JSON. */
  ipBlockBody: string | null;
}

/** Everything `startEmulator` accepts. */
export interface EmulatorOptions extends IpLimitOptions {
  /** TCP port on 127.0.0.1 (or `host`); 0 picks a free one. */
  port: number;
  /** Interface to listen on. */
  host: string;
  /** AccessKeys that may call the API. */
  accounts: EmulatorAccount[];
  /**
   * Per account (`EmulatorAccount.accountId`, else the AccessKey id) AND per action, as the API
   * documents its 500 calls/s: a call arriving when this many calls of the same action were
   * admitted for the same account in the preceding 1000 ms (sliding window) is refused with
   * HTTP 400 `Throttling.User` and does nothing.
   */
  ratePerSecond: number;
  /** Added response time. */
  latency: LatencyOptions;
  /** Injected failures. */
  faults: FaultOptions;
  /** How far `x-acs-date` may be from the server clock, in ms (15 min, like the gateway). */
  clockSkewToleranceMs: number;
  /** Source of randomness for latency and faults; pass a seeded one for deterministic tests. */
  random: () => number;
  /** Device certificates registered at start; their instances and CAs are created with them. */
  devices: EmulatorDeviceSeed[];
  /** Instances registered at start with nothing under them. */
  instances: string[];
  /** CA certificates registered at start with no devices. */
  cas: EmulatorCaSeed[];
  /**
   * How many call records `calls()` keeps (oldest dropped first). About 200 bytes each;
   * statistics do not depend on it.
   */
  maxRecordedCalls: number;
}

/** The demo account: not a real key, only good for this emulator. */
export const DEMO_ACCOUNT: Readonly<EmulatorAccount> = Object.freeze({
  accessKeyId: 'LTAIemulator0000000000',
  accessKeySecret: 'emulator-secret-not-for-production',
});

/** Defaults of the per source IP limit (off in the library). */
export const DEFAULT_IP_LIMIT_OPTIONS: Readonly<IpLimitOptions> = Object.freeze({
  ipLimitPerSecond: null,
  // Undocumented; a minute is what API gateways commonly use for an abuse block.
  ipBlockSeconds: 60,
  ipBlockStatus: 403,
  ipBlockCode: 'Forbidden.IpBlocked',
  ipBlockBody: null,
});

/** The per source IP limit of the real API (DESIGN §1), the default of `revoker emulator`. */
export const API_IP_LIMIT_PER_SECOND = 300;

/** Defaults for every option. */
export const DEFAULT_EMULATOR_OPTIONS: Readonly<EmulatorOptions> = Object.freeze({
  ...DEFAULT_IP_LIMIT_OPTIONS,
  port: 0,
  host: '127.0.0.1',
  accounts: [{ ...DEMO_ACCOUNT }],
  // The documented per-account cap of every onsmqtt certificate API.
  ratePerSecond: 500,
  // Roughly what a same-region call to a cloud API gateway takes, with a visible tail.
  latency: { medianMs: 25, p99Ms: 120 },
  faults: {
    serviceUnavailableRate: 0,
    internalErrorRate: 0,
    dropConnectionRate: 0,
    timeoutRate: 0,
    nonJsonRate: 0,
    // Well past the SDK's default 3000 ms read timeout.
    timeoutDelayMs: 15_000,
  },
  // The gateway's documented tolerance for x-acs-date.
  clockSkewToleranceMs: 15 * 60 * 1000,
  random: Math.random,
  devices: [],
  instances: [],
  cas: [],
  maxRecordedCalls: 1_000_000,
});

/** Thrown for an option value that makes no sense; the message names the option. */
export class EmulatorOptionsError extends Error {
  override name = 'EmulatorOptionsError';
}

function checkNumber(name: string, value: unknown, min: number, max: number, integer: boolean): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    const kind = integer ? 'an integer' : 'a number';
    throw new EmulatorOptionsError(`${name} must be ${kind} from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Checks and completes a latency setting on top of `base`. */
export function resolveLatency(partial: Partial<LatencyOptions> | undefined, base: LatencyOptions): LatencyOptions {
  const latency = { ...base, ...partial };
  checkNumber('latency.medianMs', latency.medianMs, 0, 600_000, false);
  checkNumber('latency.p99Ms', latency.p99Ms, 0, 600_000, false);
  if (latency.p99Ms < latency.medianMs) {
    throw new EmulatorOptionsError(`latency.p99Ms (${latency.p99Ms}) must be at least latency.medianMs (${latency.medianMs})`);
  }
  return latency;
}

/** The fault rates that are probabilities (everything but timeoutDelayMs). */
export const FAULT_RATE_NAMES = [
  'serviceUnavailableRate',
  'internalErrorRate',
  'dropConnectionRate',
  'timeoutRate',
  'nonJsonRate',
] as const;

/** Checks and completes a fault setting on top of `base`. */
export function resolveFaults(partial: Partial<FaultOptions> | undefined, base: FaultOptions): FaultOptions {
  const faults = { ...base, ...partial };
  let sum = 0;
  for (const name of FAULT_RATE_NAMES) sum += checkNumber(`faults.${name}`, faults[name], 0, 1, false);
  // A little slack for rates like 0.1 + 0.2 that do not add up exactly in binary.
  if (sum > 1 + 1e-9) throw new EmulatorOptionsError(`the fault rates add up to ${sum}, more than 1`);
  checkNumber('faults.timeoutDelayMs', faults.timeoutDelayMs, 0, 3_600_000, false);
  return faults;
}

/** Checks a rate limit. */
export function resolveRatePerSecond(value: unknown): number {
  return checkNumber('ratePerSecond', value, 1, 1_000_000, true);
}

/** Checks and completes the per source IP limit on top of `base`. */
export function resolveIpLimit(partial: Partial<IpLimitOptions> | undefined, base: IpLimitOptions): IpLimitOptions {
  const limit: IpLimitOptions = {
    ipLimitPerSecond: partial?.ipLimitPerSecond === undefined ? base.ipLimitPerSecond : partial.ipLimitPerSecond,
    ipBlockSeconds: partial?.ipBlockSeconds ?? base.ipBlockSeconds,
    ipBlockStatus: partial?.ipBlockStatus ?? base.ipBlockStatus,
    ipBlockCode: partial?.ipBlockCode ?? base.ipBlockCode,
    ipBlockBody: partial?.ipBlockBody === undefined ? base.ipBlockBody : partial.ipBlockBody,
  };
  if (limit.ipLimitPerSecond !== null) checkNumber('ipLimitPerSecond', limit.ipLimitPerSecond, 1, 1_000_000, true);
  checkNumber('ipBlockSeconds', limit.ipBlockSeconds, 0, 86_400, false);
  // 2xx is allowed on purpose: some gateways answer a block with 200 and an error body.
  checkNumber('ipBlockStatus', limit.ipBlockStatus, 200, 599, true);
  if (typeof limit.ipBlockCode !== 'string' || limit.ipBlockCode === '') {
    throw new EmulatorOptionsError(`ipBlockCode must be a non-empty string, got ${JSON.stringify(limit.ipBlockCode)}`);
  }
  if (limit.ipBlockBody !== null) {
    try {
      if (typeof limit.ipBlockBody !== 'string') throw new TypeError('not a string');
      JSON.parse(limit.ipBlockBody);
    } catch {
      throw new EmulatorOptionsError(`ipBlockBody must be JSON, got ${JSON.stringify(limit.ipBlockBody)}`);
    }
  }
  return limit;
}

/** Fills in defaults and checks every value; throws `EmulatorOptionsError` naming the bad one. */
export function resolveEmulatorOptions(partial: Partial<EmulatorOptions> = {}): EmulatorOptions {
  const options: EmulatorOptions = {
    ...DEFAULT_EMULATOR_OPTIONS,
    ...partial,
    latency: resolveLatency(partial.latency, DEFAULT_EMULATOR_OPTIONS.latency),
    faults: resolveFaults(partial.faults, DEFAULT_EMULATOR_OPTIONS.faults),
    ...resolveIpLimit(partial, DEFAULT_IP_LIMIT_OPTIONS),
    accounts: (partial.accounts ?? DEFAULT_EMULATOR_OPTIONS.accounts).map((a) => ({ ...a })),
    devices: partial.devices ?? [],
    instances: partial.instances ?? [],
    cas: partial.cas ?? [],
  };
  checkNumber('port', options.port, 0, 65_535, true);
  resolveRatePerSecond(options.ratePerSecond);
  checkNumber('clockSkewToleranceMs', options.clockSkewToleranceMs, 0, Number.MAX_SAFE_INTEGER, false);
  checkNumber('maxRecordedCalls', options.maxRecordedCalls, 0, Number.MAX_SAFE_INTEGER, true);
  if (typeof options.random !== 'function') throw new EmulatorOptionsError('random must be a function returning [0, 1)');
  for (const [i, account] of options.accounts.entries()) {
    if (!account.accessKeyId || !account.accessKeySecret) {
      throw new EmulatorOptionsError(`accounts[${i}] needs a non-empty accessKeyId and accessKeySecret`);
    }
    if (account.accountId !== undefined && (typeof account.accountId !== 'string' || account.accountId === '')) {
      throw new EmulatorOptionsError(`accounts[${i}].accountId must be a non-empty string when given`);
    }
  }
  return options;
}
