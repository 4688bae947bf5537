/**
 * The public face of a running emulator: what `startEmulator` returns and what the control
 * routes drive.
 */
import type { CallRecord } from './call-log.js';
import type { EmulatorStats } from './call-stats.js';
import type { DeviceRegistry } from './device-registry.js';
import type { EmulatorAccount, FaultOptions, IpLimitOptions, LatencyOptions } from './emulator-options.js';
import type { ScriptStep } from './faults.js';
import type { AccountState } from './request-authenticator.js';

/** The settings that can change while the emulator runs. */
export interface EmulatorSettings {
  ratePerSecond: number;
  faults: FaultOptions;
  latency: LatencyOptions;
  ipLimit: IpLimitOptions;
}

/** A running emulator. */
export interface EmulatorHandle {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** `127.0.0.1:PORT`, what the SDK's `endpoint` option takes. */
  readonly endpoint: string;
  readonly port: number;
  /**
   * The live registry: inspect or change it directly at any time (`registry.addDevice` registers
   * or re-registers a device, `registry.addCa` a CA; POST /_emulator/devices and /_emulator/cas
   * do the same from another process).
   */
  readonly registry: DeviceRegistry;
  /** Every call recorded so far (a copy), oldest first. */
  calls(): CallRecord[];
  /** Running statistics. */
  stats(): EmulatorStats;
  /** Forgets recorded calls and statistics (not the registry, scripts or settings). */
  resetStats(): void;
  /**
   * Scripts the next calls naming this DeviceSn: one step is consumed per call, then calls
   * behave normally again. Replaces any script left for the device.
   */
  script(deviceSn: string, steps: readonly ScriptStep[]): void;
  /** Changes the Throttling.User limit, per account and action (see `EmulatorOptions.ratePerSecond`). */
  setRatePerSecond(ratePerSecond: number): void;
  setFaults(faults: Partial<FaultOptions>): void;
  setLatency(latency: Partial<LatencyOptions>): void;
  /** Changes the per source IP limit (`ipLimitPerSecond: null` turns it off and lifts every block). */
  setIpLimit(ipLimit: Partial<IpLimitOptions>): void;
  /**
   * Lifts the block of one source IP address (every address when omitted) and forgets its
   * recent requests; returns how many blocks were in force.
   */
  clearIpBlocks(ip?: string): number;
  /** The settings in force now. */
  settings(): EmulatorSettings;
  /** Adds (or replaces) an account at run time. */
  addAccount(account: EmulatorAccount): void;
  /** Disables or re-enables an AccessKey: inactive keys get `InvalidAccessKeyId.Inactive`. */
  setAccountState(accessKeyId: string, state: AccountState): void;
  /** Pretends the server clock is off by this much (x-acs-date checks only). */
  setClockOffsetMs(offsetMs: number): void;
  /** Makes this key get `MqttOwnerCheckError` on this instance. */
  denyInstance(accessKeyId: string, mqttInstanceId: string): void;
  /** Undoes `denyInstance`. */
  allowInstance(accessKeyId: string, mqttInstanceId: string): void;
  /** Closes every socket (kept-alive and held ones too) and timer; resolves when closed. */
  stop(): Promise<void>;
}
