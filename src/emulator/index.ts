/** The local onsmqtt API emulator: public API. */
export { startEmulator, type EmulatorHandle, type EmulatorSettings } from './emulator-server.js';
export {
  API_IP_LIMIT_PER_SECOND,
  DEFAULT_EMULATOR_OPTIONS,
  DEFAULT_IP_LIMIT_OPTIONS,
  DEMO_ACCOUNT,
  EmulatorOptionsError,
  resolveEmulatorOptions,
  type EmulatorAccount,
  type EmulatorCaSeed,
  type EmulatorDeviceSeed,
  type EmulatorOptions,
  type FaultOptions,
  type IpLimitOptions,
  type LatencyOptions,
} from './emulator-options.js';
export type { FaultKind, ScriptStep, ScriptedError } from './faults.js';
export type { CallRecord } from './call-log.js';
export type { AccountActionStats, EmulatorStats, SourceIpStats } from './call-stats.js';
export { normaliseSourceIp, type SourceIpVerdict } from './source-ip-guard.js';
export { EgressForwarder, DEFAULT_EGRESS_FORWARDER_OPTIONS, type EgressForwarderOptions } from './egress-forwarder.js';
export type { AccountState } from './request-authenticator.js';
export { DeviceRegistry, type CaRecord, type DeviceRecord } from './device-registry.js';
export { generateDevices, type GenerateDevicesOptions } from './device-generator.js';
export { API_VERSION, ACTION_NAMES, type ActionName } from './api-actions.js';
export { signRequest, acsPercentEncode, canonicalQueryString, canonicalHeaders, parseQueryPairs, type RequestToSign } from './signature-verifier.js';
export {
  registerEmulatorCommand,
  runEmulatorCommand,
  emulatorOptionsFromFlags,
  readSeedCsv,
  DEFAULT_EMULATOR_INSTANCE,
  DEFAULT_EMULATOR_CA_SN,
  type EmulatorCommandFlags,
} from './emulator-command.js';
