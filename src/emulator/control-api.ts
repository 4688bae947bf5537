/**
 * The emulator's own HTTP routes under `/_emulator/`, for driving it from another process
 * (benchmarks, docker-compose demos). They need no signature: the emulator only ever listens
 * on a test machine.
 *
 * GET  /_emulator/health                          {ok: true}
 * GET  /_emulator/stats                           EmulatorStats
 * POST /_emulator/reset                           forget calls and statistics
 * POST /_emulator/config   {ratePerSecond?, faults?, latency?, ipLimit?}   → the settings now in force
 * POST /_emulator/devices  {devices: [{mqttInstanceId, caSn, deviceSn, status?}]}   (registers or re-registers)
 * GET  /_emulator/devices?mqttInstanceId=&caSn=    {total, devices: [...]}
 * POST /_emulator/cas      {cas: [{mqttInstanceId, caSn, status?}]}
 * GET  /_emulator/cas?mqttInstanceId=              {total, cas: [{mqttInstanceId, caSn, status, devices}]}
 * POST /_emulator/script   {deviceSn, steps: [...]}   (see EmulatorHandle.script)
 * POST /_emulator/ip-blocks/clear  {ip?}           lift source IP blocks → {cleared}
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EmulatorHandle } from './emulator-server.js';
import {
  EmulatorOptionsError,
  type EmulatorCaSeed,
  type EmulatorDeviceSeed,
  type FaultOptions,
  type IpLimitOptions,
  type LatencyOptions,
} from './emulator-options.js';
import { invalidScriptStep, type ScriptStep } from './faults.js';
import { parseQueryPairs } from './signature-verifier.js';

class BadControlRequest extends Error {}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const payload = Buffer.from(JSON.stringify(body), 'utf8');
  res.writeHead(status, { 'content-type': 'application/json;charset=utf-8', 'content-length': payload.length });
  res.end(payload);
}

function parseJsonObject(body: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new BadControlRequest(`the body is not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new BadControlRequest('the body must be a JSON object');
  return parsed as Record<string, unknown>;
}

function optionalObject<T>(value: unknown, name: string): Partial<T> | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new BadControlRequest(`${name} must be an object`);
  return value;
}

function nonEmptyString(value: unknown, name: string): string {
  if (typeof value !== 'string' || value === '') throw new BadControlRequest(`${name} must be a non-empty string`);
  return value;
}

function optionalStatus(value: unknown, name: string): { status?: '0' | '1' } {
  if (value === undefined) return {};
  if (value !== '0' && value !== '1') throw new BadControlRequest(`${name} must be "0" or "1"`);
  return { status: value };
}

function caSeeds(value: unknown): EmulatorCaSeed[] {
  if (!Array.isArray(value)) throw new BadControlRequest('cas must be an array');
  return value.map((item: unknown, i) => {
    if (item === null || typeof item !== 'object') throw new BadControlRequest(`cas[${i}] must be an object`);
    const { mqttInstanceId, caSn, status } = item as Record<string, unknown>;
    return {
      mqttInstanceId: nonEmptyString(mqttInstanceId, `cas[${i}].mqttInstanceId`),
      caSn: nonEmptyString(caSn, `cas[${i}].caSn`),
      ...optionalStatus(status, `cas[${i}].status`),
    };
  });
}

function deviceSeeds(value: unknown): EmulatorDeviceSeed[] {
  if (!Array.isArray(value)) throw new BadControlRequest('devices must be an array');
  return value.map((item: unknown, i) => {
    if (item === null || typeof item !== 'object') throw new BadControlRequest(`devices[${i}] must be an object`);
    const { mqttInstanceId, caSn, deviceSn, status } = item as Record<string, unknown>;
    return {
      mqttInstanceId: nonEmptyString(mqttInstanceId, `devices[${i}].mqttInstanceId`),
      caSn: nonEmptyString(caSn, `devices[${i}].caSn`),
      deviceSn: nonEmptyString(deviceSn, `devices[${i}].deviceSn`),
      ...optionalStatus(status, `devices[${i}].status`),
    };
  });
}

function route(handle: EmulatorHandle, method: string, pathname: string, rawQuery: string, body: Buffer): [number, unknown] {
  const key = `${method} ${pathname}`;
  switch (key) {
    case 'GET /_emulator/health':
      return [200, { ok: true }];
    case 'GET /_emulator/stats':
      return [200, handle.stats()];
    case 'POST /_emulator/reset':
      handle.resetStats();
      return [200, { ok: true }];
    case 'POST /_emulator/config': {
      const input = parseJsonObject(body);
      // Check everything before changing anything, so a bad request changes nothing.
      const faults = optionalObject<FaultOptions>(input.faults, 'faults');
      const latency = optionalObject<LatencyOptions>(input.latency, 'latency');
      const ipLimit = optionalObject<IpLimitOptions>(input.ipLimit, 'ipLimit');
      const before = handle.settings();
      try {
        if (input.ratePerSecond !== undefined) handle.setRatePerSecond(input.ratePerSecond as number);
        if (faults) handle.setFaults(faults);
        if (latency) handle.setLatency(latency);
        if (ipLimit) handle.setIpLimit(ipLimit);
      } catch (error) {
        handle.setRatePerSecond(before.ratePerSecond);
        handle.setFaults(before.faults);
        handle.setLatency(before.latency);
        handle.setIpLimit(before.ipLimit);
        throw error;
      }
      return [200, handle.settings()];
    }
    case 'POST /_emulator/devices': {
      const seeds = deviceSeeds(parseJsonObject(body).devices);
      for (const seed of seeds) handle.registry.addDevice(seed);
      return [200, { added: seeds.length, total: handle.registry.count() }];
    }
    case 'GET /_emulator/devices': {
      const query = new Map(parseQueryPairs(rawQuery));
      const instanceId = query.get('mqttInstanceId') || undefined;
      const caSn = query.get('caSn') || undefined;
      const devices = [...handle.registry.devices(instanceId, caSn)].map((d) => ({
        mqttInstanceId: d.mqttInstanceId,
        caSn: d.caSn,
        deviceSn: d.deviceSn,
        status: d.status,
      }));
      return [200, { total: devices.length, devices }];
    }
    case 'POST /_emulator/cas': {
      const seeds = caSeeds(parseJsonObject(body).cas);
      for (const seed of seeds) handle.registry.addCa(seed.mqttInstanceId, seed.caSn, seed.status);
      return [200, { added: seeds.length, total: [...handle.registry.cas()].length }];
    }
    case 'GET /_emulator/cas': {
      const instanceId = new Map(parseQueryPairs(rawQuery)).get('mqttInstanceId') || undefined;
      const cas = [...handle.registry.cas(instanceId)].map((ca) => ({ mqttInstanceId: ca.mqttInstanceId, caSn: ca.caSn, status: ca.status, devices: ca.devices.size }));
      return [200, { total: cas.length, cas }];
    }
    case 'POST /_emulator/ip-blocks/clear': {
      const { ip } = parseJsonObject(body);
      return [200, { cleared: handle.clearIpBlocks(ip === undefined ? undefined : nonEmptyString(ip, 'ip')) }];
    }
    case 'POST /_emulator/script': {
      const input = parseJsonObject(body);
      const deviceSn = nonEmptyString(input.deviceSn, 'deviceSn');
      if (!Array.isArray(input.steps)) throw new BadControlRequest('steps must be an array');
      input.steps.forEach((step: unknown, i) => {
        const problem = invalidScriptStep(step);
        if (problem) throw new BadControlRequest(`steps[${i}]: ${problem}`);
      });
      handle.script(deviceSn, input.steps as ScriptStep[]);
      return [200, { ok: true }];
    }
    default:
      return [404, { error: `no emulator route ${key}` }];
  }
}

/** Answers one request under `/_emulator/`. */
export function handleControlRequest(
  handle: EmulatorHandle,
  req: IncomingMessage,
  res: ServerResponse,
  pathname: string,
  rawQuery: string,
  body: Buffer,
): void {
  try {
    const [status, payload] = route(handle, req.method ?? 'GET', pathname, rawQuery, body);
    reply(res, status, payload);
  } catch (error) {
    if (error instanceof BadControlRequest || error instanceof EmulatorOptionsError) reply(res, 400, { error: error.message });
    else reply(res, 500, { error: error instanceof Error ? error.message : String(error) });
  }
}
