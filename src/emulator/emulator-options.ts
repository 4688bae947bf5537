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

/** Everything `startEmulator` accepts. */
export interface EmulatorOptions {
  /** TCP port on 127.0.0.1 (or `host`); 0 picks a free one. */
  port: number;
  /** Interface to listen on. */
  host: string;
  /** AccessKeys that may call the API. */
  accounts: EmulatorAccount[];
  /**
   * Per AccessKey id: a call arriving when this many calls were admitted in the preceding
   * 1000 ms (sliding window) is refused with HTTP 400 `Throttling.User` and does nothing.
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

/** Defaults for every option. */
export const DEFAULT_EMULATOR_OPTIONS: Readonly<EmulatorOptions> = Object.freeze({
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

/** Fills in defaults and checks every value; throws `EmulatorOptionsError` naming the bad one. */
export function resolveEmulatorOptions(partial: Partial<EmulatorOptions> = {}): EmulatorOptions {
  const options: EmulatorOptions = {
    ...DEFAULT_EMULATOR_OPTIONS,
    ...partial,
    latency: resolveLatency(partial.latency, DEFAULT_EMULATOR_OPTIONS.latency),
    faults: resolveFaults(partial.faults, DEFAULT_EMULATOR_OPTIONS.faults),
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
  }
  return options;
}
