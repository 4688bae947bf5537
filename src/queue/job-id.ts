/**
 * Revocation ids and job ids.
 *
 * A revocation id is one per (instance, CA, device, action): the key of the device's record in
 * every batch's results hash and of its entry in the revocation ledger (`Keys.revocation`). A
 * BullMQ job id is `<revocation id>-<generation>`: each time a revocation needs a new job (the
 * first batch asks, a later batch asks after the previous job ended, a redrive) the ledger opens a
 * new generation, so a lingering hash of an earlier job (a killed worker's finished job, a job in
 * BullMQ's failed set) can never swallow the add of a new one.
 *
 * BullMQ ids may not contain ':' nor be all digits, and serials may contain anything printable:
 * hash them.
 */
import { createHash } from 'node:crypto';
import type { DeviceRef, RevocationAction } from '../cloud/certificate-api.js';

/** The revocation id of a device revocation: `r-` + 32 hex characters of SHA-256. */
export function revocationJobId(device: DeviceRef, action: RevocationAction): string {
  const digest = createHash('sha256')
    // NUL cannot occur inside validated identifiers, so the fields cannot run into each other.
    .update(`${device.mqttInstanceId}\u0000${device.caSn}\u0000${device.deviceSn}\u0000${action}`)
    .digest('hex');
  return `r-${digest.slice(0, 32)}`;
}

/** The revocation id (another name for `revocationJobId`, which predates job generations). */
export const revocationId = revocationJobId;

/** The BullMQ job id of generation `gen` of a revocation (the ledger's Lua builds the same string). */
export function generationJobId(rid: string, gen: number): string {
  return `${rid}-${gen}`;
}

/** The revocation id a job id belongs to (job ids of before generations are revocation ids themselves). */
export function revocationIdOf(jobId: string): string {
  return /^r-[0-9a-f]{32}-\d+$/.test(jobId) ? jobId.slice(0, jobId.lastIndexOf('-')) : jobId;
}

/** The generation of a job id (0 for a job id of before generations). */
export function generationOf(jobId: string): number {
  const match = /^r-[0-9a-f]{32}-(\d+)$/.exec(jobId);
  return match?.[1] === undefined ? 0 : Number(match[1]);
}

/** The dead-letter job id of a revocation job (one dead letter per job, listing its subscribers). */
export function deadLetterJobId(jobId: string): string {
  return `dl-${jobId}`;
}
