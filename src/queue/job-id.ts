/**
 * Job ids: one per (instance, CA, device, action), so a device asked for twice while its first
 * job is known is not called twice. BullMQ ids may not contain ':' nor be all digits, and serials
 * may contain anything printable: hash them.
 */
import { createHash } from 'node:crypto';
import type { DeviceRef, RevocationAction } from '../cloud/certificate-api.js';

/** The job id of a device revocation: `r-` + 32 hex characters of SHA-256. */
export function revocationJobId(device: DeviceRef, action: RevocationAction): string {
  const digest = createHash('sha256')
    // NUL cannot occur inside validated identifiers, so the fields cannot run into each other.
    .update(`${device.mqttInstanceId}\u0000${device.caSn}\u0000${device.deviceSn}\u0000${action}`)
    .digest('hex');
  return `r-${digest.slice(0, 32)}`;
}

/** The dead-letter job id of a device within a batch (one dead letter per device per batch). */
export function deadLetterJobId(batchId: string, jobId: string): string {
  return `dl-${batchId}-${jobId}`;
}
