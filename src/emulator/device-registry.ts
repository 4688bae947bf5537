/**
 * The emulator's in-memory state: MQTT instances, the CA certificates registered on them, and
 * the device certificates registered under each CA.
 */
import { createHash } from 'node:crypto';
import { OrderedIndex } from './ordered-index.js';
import type { EmulatorDeviceSeed } from './emulator-options.js';

/** A registered device certificate. */
export interface DeviceRecord {
  mqttInstanceId: string;
  caSn: string;
  deviceSn: string;
  /** "1" active, "0" inactive (the API's encoding). */
  status: '0' | '1';
  /** Unix time in ms, as a decimal string like the API returns it. */
  validBegin: string;
  validEnd: string;
}

/** A registered CA certificate. */
export interface CaRecord {
  mqttInstanceId: string;
  caSn: string;
  /** "1" active, "0" inactive (InactivateCaCertificate / ActiveCaCertificate). */
  status: '0' | '1';
  devices: OrderedIndex<DeviceRecord>;
}

// Fixed validity so that responses are reproducible: 2022-06-02 .. 2032-05-30, the range the
// API documentation's examples use.
const VALID_BEGIN_MS = '1654137303000';
const VALID_END_MS = '1969497303000';

function fakePem(label: string, seed: string): string {
  // Looks like a PEM block; the content is a digest, not a certificate.
  const body = createHash('sha512').update(seed).digest('base64');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----`;
}

/** Display name the emulator gives a device certificate. */
export function deviceNameOf(deviceSn: string): string {
  return `device-${deviceSn.slice(0, 12)}`;
}

/** PEM-looking content of a device certificate, derived from its serial (computed on demand). */
export function deviceContentOf(device: DeviceRecord): string {
  return fakePem('CERTIFICATE', `${device.caSn}/${device.deviceSn}`);
}

/** Fields of a CA as GetCaCertificate returns them. */
export function caDetailsOf(ca: CaRecord): {
  Sn: string;
  CaName: string;
  CaContent: string;
  Status: '0' | '1';
  ValidBegin: string;
  ValidEnd: string;
  RegistrationCode: string;
  VerificationContent: string;
} {
  const code = createHash('sha256').update(`${ca.mqttInstanceId}/${ca.caSn}`).digest('hex');
  return {
    Sn: ca.caSn,
    CaName: `ca-${ca.caSn.slice(0, 12)}`,
    CaContent: fakePem('CERTIFICATE', `ca/${ca.caSn}`),
    Status: ca.status,
    ValidBegin: VALID_BEGIN_MS,
    ValidEnd: VALID_END_MS,
    RegistrationCode: `${code.slice(0, 8)}-${code.slice(8, 12)}-${code.slice(12, 16)}-${code.slice(16, 20)}-${code.slice(20, 44)}`,
    VerificationContent: fakePem('CERTIFICATE', `verification/${ca.caSn}`),
  };
}

/** In-memory instances → CAs → device certificates (insertion-ordered). */
export class DeviceRegistry {
  private readonly instances = new Map<string, Map<string, CaRecord>>();
  private deviceCount = 0;

  /** Registers an instance (no-op if it exists). */
  addInstance(mqttInstanceId: string): void {
    if (!this.instances.has(mqttInstanceId)) this.instances.set(mqttInstanceId, new Map());
  }

  /**
   * Registers a CA under an instance, creating the instance if needed. A new CA is active unless
   * `status` says otherwise; for one that exists, `status` (when given) replaces its status.
   */
  addCa(mqttInstanceId: string, caSn: string, status?: '0' | '1'): CaRecord {
    this.addInstance(mqttInstanceId);
    const cas = this.instances.get(mqttInstanceId) as Map<string, CaRecord>;
    let ca = cas.get(caSn);
    if (!ca) {
      ca = { mqttInstanceId, caSn, status: status ?? '1', devices: new OrderedIndex<DeviceRecord>() };
      cas.set(caSn, ca);
    } else if (status !== undefined) {
      ca.status = status;
    }
    return ca;
  }

  /** Sets a CA's status; returns the record, or undefined if it is not registered. */
  setCaStatus(mqttInstanceId: string, caSn: string, status: '0' | '1'): CaRecord | undefined {
    const ca = this.getCa(mqttInstanceId, caSn);
    if (ca) ca.status = status;
    return ca;
  }

  /**
   * Removes a CA and every device certificate registered under it, as DeleteCaCertificate does.
   * O(1) whatever the number of devices: the CA's index is dropped whole. Returns how many
   * devices went with it, or undefined if the CA is not registered.
   */
  deleteCa(mqttInstanceId: string, caSn: string): number | undefined {
    const ca = this.getCa(mqttInstanceId, caSn);
    if (!ca) return undefined;
    this.instances.get(mqttInstanceId)?.delete(caSn);
    this.deviceCount -= ca.devices.size;
    return ca.devices.size;
  }

  /** CAs in registration order, optionally those of one instance. */
  *cas(mqttInstanceId?: string): IterableIterator<CaRecord> {
    for (const [instanceId, cas] of this.instances) {
      if (mqttInstanceId === undefined || instanceId === mqttInstanceId) yield* cas.values();
    }
  }

  /**
   * Registers a device certificate (creating its instance and CA). Registering one that exists
   * updates its status and keeps its position.
   */
  addDevice(seed: EmulatorDeviceSeed): DeviceRecord {
    const ca = this.addCa(seed.mqttInstanceId, seed.caSn);
    const record: DeviceRecord = {
      mqttInstanceId: seed.mqttInstanceId,
      caSn: seed.caSn,
      deviceSn: seed.deviceSn,
      status: seed.status ?? '1',
      validBegin: VALID_BEGIN_MS,
      validEnd: VALID_END_MS,
    };
    if (!ca.devices.has(seed.deviceSn)) this.deviceCount += 1;
    ca.devices.set(seed.deviceSn, record);
    return record;
  }

  /** Registers many devices; returns how many there are now. */
  addDevices(seeds: Iterable<EmulatorDeviceSeed>): number {
    for (const seed of seeds) this.addDevice(seed);
    return this.deviceCount;
  }

  hasInstance(mqttInstanceId: string): boolean {
    return this.instances.has(mqttInstanceId);
  }

  getCa(mqttInstanceId: string, caSn: string): CaRecord | undefined {
    return this.instances.get(mqttInstanceId)?.get(caSn);
  }

  get(mqttInstanceId: string, caSn: string, deviceSn: string): DeviceRecord | undefined {
    return this.getCa(mqttInstanceId, caSn)?.devices.get(deviceSn);
  }

  has(mqttInstanceId: string, caSn: string, deviceSn: string): boolean {
    return this.get(mqttInstanceId, caSn, deviceSn) !== undefined;
  }

  /** Removes a device certificate; returns whether it was registered. */
  delete(mqttInstanceId: string, caSn: string, deviceSn: string): boolean {
    const removed = this.getCa(mqttInstanceId, caSn)?.devices.delete(deviceSn) ?? false;
    if (removed) this.deviceCount -= 1;
    return removed;
  }

  /** Sets a device's status; returns the record, or undefined if it is not registered. */
  setStatus(mqttInstanceId: string, caSn: string, deviceSn: string, status: '0' | '1'): DeviceRecord | undefined {
    const device = this.get(mqttInstanceId, caSn, deviceSn);
    if (device) device.status = status;
    return device;
  }

  /** Device certificates registered now: all, under one instance, or under one instance's CA. */
  count(mqttInstanceId?: string, caSn?: string): number {
    if (mqttInstanceId === undefined) return this.deviceCount;
    const cas = this.instances.get(mqttInstanceId);
    if (!cas) return 0;
    if (caSn !== undefined) return cas.get(caSn)?.devices.size ?? 0;
    let total = 0;
    for (const ca of cas.values()) total += ca.devices.size;
    return total;
  }

  /** Devices in insertion order, optionally filtered by instance and CA. */
  *devices(mqttInstanceId?: string, caSn?: string): IterableIterator<DeviceRecord> {
    for (const [instanceId, cas] of this.instances) {
      if (mqttInstanceId !== undefined && instanceId !== mqttInstanceId) continue;
      for (const [sn, ca] of cas) {
        if (caSn !== undefined && sn !== caSn) continue;
        yield* ca.devices.values();
      }
    }
  }
}
