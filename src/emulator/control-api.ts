/**
 * The emulator's own HTTP routes under `/_emulator/`, for driving it from another process
 * (benchmarks, docker-compose demos). They need no signature: the emulator only ever listens
 * on a test machine.
 *
 * GET  /_emulator/health                          {ok: true}
 * GET  /_emulator/stats                           EmulatorStats
 * POST /_emulator/reset                           forget calls and statistics
 * POST /_emulator/config   {ratePerSecond?, faults?, latency?}   → the settings now in force
 * POST /_emulator/devices  {devices: [{mqttInstanceId, caSn, deviceSn, status?}]}
 * GET  /_emulator/devices?mqttInstanceId=&caSn=    {total, devices: [...]}
 * POST /_emulator/script   {deviceSn, steps: [...]}   (see EmulatorHandle.script)
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EmulatorHandle } from './emulator-server.js';
import { EmulatorOptionsError, type EmulatorDeviceSeed, type FaultOptions, type LatencyOptions } from './emulator-options.js';
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

function deviceSeeds(value: unknown): EmulatorDeviceSeed[] {
  if (!Array.isArray(value)) throw new BadControlRequest('devices must be an array');
  return value.map((item: unknown, i) => {
    if (item === null || typeof item !== 'object') throw new BadControlRequest(`devices[${i}] must be an object`);
    const { mqttInstanceId, caSn, deviceSn, status } = item as Record<string, unknown>;
    if (status !== undefined && status !== '0' && status !== '1') throw new BadControlRequest(`devices[${i}].status must be "0" or "1"`);
    return {
      mqttInstanceId: nonEmptyString(mqttInstanceId, `devices[${i}].mqttInstanceId`),
      caSn: nonEmptyString(caSn, `devices[${i}].caSn`),
      deviceSn: nonEmptyString(deviceSn, `devices[${i}].deviceSn`),
      ...(status === undefined ? {} : { status }),
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
      const before = handle.settings();
      try {
        if (input.ratePerSecond !== undefined) handle.setRatePerSecond(input.ratePerSecond as number);
        if (faults) handle.setFaults(faults);
        if (latency) handle.setLatency(latency);
      } catch (error) {
        handle.setRatePerSecond(before.ratePerSecond);
        handle.setFaults(before.faults);
        handle.setLatency(before.latency);
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
