/**
 * The onsmqtt certificate actions (device and CA), as pure-ish functions of the registry and
 * the request parameters (RPC style: everything is in the query).
 */
import { caDetailsOf, deviceContentOf, deviceNameOf, type DeviceRecord, type DeviceRegistry } from './device-registry.js';
import { apiError, type ApiError } from './api-error.js';

/** The API version the emulator serves. */
export const API_VERSION = '2020-04-20';

/** Names of the actions the emulator implements. */
export const ACTION_NAMES = [
  'DeleteDeviceCertificate',
  'InactivateDeviceCertificate',
  'GetDeviceCertificate',
  'ListDeviceCertificateByCaSn',
  'GetCaCertificate',
  'InactivateCaCertificate',
  'ActiveCaCertificate',
  'DeleteCaCertificate',
] as const;

/** One of the implemented actions. */
export type ActionName = (typeof ACTION_NAMES)[number];

/** True for an implemented action name. */
export function isActionName(name: string): name is ActionName {
  return (ACTION_NAMES as readonly string[]).includes(name);
}

/** What an action needs besides the registry. */
export interface ActionContext {
  registry: DeviceRegistry;
  params: ReadonlyMap<string, string>;
  /** Whether this caller may use this instance (the per-instance owner check). */
  mayUseInstance: (mqttInstanceId: string) => boolean;
}

/** A successful answer (HTTP 200): the body without RequestId, which the server adds. */
export interface ActionSuccess {
  ok: true;
  body: Record<string, unknown>;
}

/** The outcome of running an action. */
export type ActionOutcome = ActionSuccess | { ok: false; error: ApiError };

// Serial numbers and ids are at most 128 bytes (the API documentation).
const MAX_PARAM_BYTES = 128;
// ListDeviceCertificateByCaSn's documented page size range.
const MAX_PAGE_SIZE = 100;

class ParameterError extends Error {}

function requiredParam(params: ReadonlyMap<string, string>, name: string): string {
  const value = params.get(name);
  if (value === undefined || value === '') throw new ParameterError(`${name} is mandatory.`);
  if (Buffer.byteLength(value, 'utf8') > MAX_PARAM_BYTES) throw new ParameterError(`${name} is longer than ${MAX_PARAM_BYTES} bytes.`);
  return value;
}

function integerParam(params: ReadonlyMap<string, string>, name: string, min: number, max: number): number {
  const raw = requiredParam(params, name);
  const value = /^\d{1,9}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(value >= min && value <= max)) throw new ParameterError(`${name} must be an integer from ${min} to ${max}.`);
  return value;
}

function failure(code: string, detail?: string): ActionOutcome {
  return { ok: false, error: apiError(code, detail) };
}

function deviceSummary(device: DeviceRecord): Record<string, string> {
  return {
    DeviceSn: device.deviceSn,
    CaSn: device.caSn,
    Status: device.status,
    ValidBegin: device.validBegin,
    ValidEnd: device.validEnd,
    DeviceName: deviceNameOf(device.deviceSn),
  };
}

/** The actions on a CA, which name it `Sn` (with `MqttInstanceId`). */
const CA_ACTIONS = new Set<string>(['GetCaCertificate', 'InactivateCaCertificate', 'ActiveCaCertificate', 'DeleteCaCertificate']);

/** The instance/CA/device parameters of a call, for its record (the CA actions' `Sn` is the CA). */
export function callTarget(action: string, params: ReadonlyMap<string, string>): { mqttInstanceId: string; caSn: string; deviceSn: string } {
  return {
    mqttInstanceId: params.get('MqttInstanceId') ?? '',
    caSn: (CA_ACTIONS.has(action) ? params.get('Sn') : params.get('CaSn')) ?? '',
    deviceSn: params.get('DeviceSn') ?? '',
  };
}

function checkInstance(context: ActionContext, mqttInstanceId: string): ActionOutcome | undefined {
  if (!context.registry.hasInstance(mqttInstanceId)) return failure('MqttInstanceNotFound');
  if (!context.mayUseInstance(mqttInstanceId)) return failure('MqttOwnerCheckError');
  return undefined;
}

function runCaAction(action: ActionName, context: ActionContext): ActionOutcome {
  const { params, registry } = context;
  const mqttInstanceId = requiredParam(params, 'MqttInstanceId');
  const sn = requiredParam(params, 'Sn');
  const refused = checkInstance(context, mqttInstanceId);
  if (refused) return refused;
  const ca = registry.getCa(mqttInstanceId, sn);
  if (!ca) return failure('FindCaBySnError');
  switch (action) {
    case 'GetCaCertificate':
      return { ok: true, body: { Data: caDetailsOf(ca) } };
    case 'DeleteCaCertificate':
      // Documented: the CA's device certificates are deleted with it.
      registry.deleteCa(mqttInstanceId, sn);
      break;
    case 'InactivateCaCertificate':
    case 'ActiveCaCertificate':
      // Setting the status it already has succeeds too (an emulator choice: nothing documents an error).
      ca.status = action === 'ActiveCaCertificate' ? '1' : '0';
      break;
    default:
      throw new Error(`${action} is not a CA action`);
  }
  return { ok: true, body: { Sn: sn } };
}

function runUnchecked(action: ActionName, context: ActionContext): ActionOutcome {
  const { params, registry } = context;
  if (CA_ACTIONS.has(action)) return runCaAction(action, context);
  if (action === 'ListDeviceCertificateByCaSn') {
    const mqttInstanceId = requiredParam(params, 'MqttInstanceId');
    const caSn = requiredParam(params, 'CaSn');
    const pageNo = integerParam(params, 'PageNo', 1, 100_000_000);
    const pageSize = integerParam(params, 'PageSize', 1, MAX_PAGE_SIZE);
    const refused = checkInstance(context, mqttInstanceId);
    if (refused) return refused;
    const devices = registry.getCa(mqttInstanceId, caSn)?.devices;
    // An unknown CA lists as empty (an emulator choice: the documentation names no error).
    const page = devices ? devices.slice((pageNo - 1) * pageSize, pageSize) : [];
    return {
      ok: true,
      body: { Data: { Total: devices?.size ?? 0, PageNo: pageNo, PageSize: pageSize, DeviceCertificateVOS: page.map(deviceSummary) } },
    };
  }
  const mqttInstanceId = requiredParam(params, 'MqttInstanceId');
  const caSn = requiredParam(params, 'CaSn');
  const deviceSn = requiredParam(params, 'DeviceSn');
  const refused = checkInstance(context, mqttInstanceId);
  if (refused) return refused;
  const device = registry.get(mqttInstanceId, caSn, deviceSn);
  if (!device) return failure('FindDeviceBySnError');
  switch (action) {
    case 'DeleteDeviceCertificate':
      registry.delete(mqttInstanceId, caSn, deviceSn);
      return { ok: true, body: { DeviceSn: deviceSn } };
    case 'InactivateDeviceCertificate':
      device.status = '0';
      return { ok: true, body: { DeviceSn: deviceSn } };
    case 'GetDeviceCertificate':
      // The real API answers under `Data` (checked against its documentation's example).
      return { ok: true, body: { Data: { ...deviceSummary(device), DeviceContent: deviceContentOf(device) } } };
    default:
      throw new Error(`${action} is not a device action`);
  }
}

/**
 * Validates the parameters and runs the action against the registry (a delete or inactivate
 * is applied here). Parameter errors come first, then the instance and owner checks, then
 * the lookup (an emulator choice: the documentation does not say which one wins when a request
 * has several problems).
 */
export function runAction(action: ActionName, context: ActionContext): ActionOutcome {
  try {
    return runUnchecked(action, context);
  } catch (error) {
    if (error instanceof ParameterError) return failure('ParameterFieldCheckFailed', error.message);
    throw error;
  }
}
