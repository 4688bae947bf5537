/** Deterministic, realistic-looking device certificate serials for seeding the emulator. */
import { createHash } from 'node:crypto';
import type { EmulatorDeviceSeed } from './emulator-options.js';

/** What `generateDevices` needs. */
export interface GenerateDevicesOptions {
  mqttInstanceId: string;
  caSn: string;
  count: number;
  /** Mixed into every serial so that two generated sets do not collide; default "dev". */
  prefix?: string;
}

/**
 * Returns `count` device seeds whose serials are 32 lower-case hex characters derived from the
 * prefix and the index (so the same input gives the same serials, and they are not all digits,
 * which would make them look like numbers to careless code).
 */
export function generateDevices(options: GenerateDevicesOptions): EmulatorDeviceSeed[] {
  const { mqttInstanceId, caSn, count } = options;
  const prefix = options.prefix ?? 'dev';
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${count}`);
  const devices: EmulatorDeviceSeed[] = new Array<EmulatorDeviceSeed>(count);
  for (let i = 0; i < count; i += 1) {
    // A letter (so no serial is all digits), 23 hex characters of a digest (spread out like
    // real serials), then 8 of the index (which makes them unique).
    const digest = createHash('sha1').update(`${prefix}:${caSn}:${i}`).digest('hex');
    const letter = 'abcdef'.charAt(parseInt(digest.charAt(0), 16) % 6);
    devices[i] = { mqttInstanceId, caSn, deviceSn: `${letter}${digest.slice(1, 24)}${i.toString(16).padStart(8, '0')}` };
  }
  return devices;
}
