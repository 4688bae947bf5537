/**
 * `--verify`: after a revocation, the worker reads the certificate back with
 * GetDeviceCertificate (on the read budget, behind revocations) and the record keeps what the
 * read saw, its time and RequestId: proof per device that an auditor can check against the API's
 * own logs. A read that keeps failing says `unreadable` rather than guess.
 */
import { describeApiFailure } from '../cloud/api-failure.js';
import type { DeviceRef, RevocationAction } from '../cloud/certificate-api.js';
import { classifyFailure } from '../cloud/classify.js';
import type { RateGate } from '../limiter/rate-gate.js';
import type { ReadBack, Verification } from '../results/result-record.js';
import { backoffMs, type BackoffOptions } from './backoff.js';
import type { Revoker } from './revocation-worker.js';

/** The certificate's status in a GetDeviceCertificate answer ('' when absent). */
export function statusOf(body: Record<string, unknown>): string {
  const raw = (body.Data as { Status?: unknown } | undefined)?.Status;
  return typeof raw === 'string' || typeof raw === 'number' ? String(raw) : '';
}

/** What a read of a registered certificate shows, for this action. */
function registeredVerdict(action: RevocationAction, status: string): Verification {
  if (action === 'inactivate') return status === '0' ? 'inactive' : 'active';
  return 'registered';
}

/** One GetDeviceCertificate's verdict: registered (with its status), absent, or unreadable. */
export type DeviceRead =
  | { kind: 'registered'; status: string; requestId: string | null }
  | { kind: 'absent' | 'unreadable'; requestId: string | null; code: string; httpStatus: number | null; message: string };

/** Reads one device; at most `tries` reads (transient failures back off), each on the read budget. */
export async function readDevice(api: Pick<Revoker, 'getDevice'>, gate: RateGate, device: DeviceRef, options: { tries: number; retry: BackoffOptions }): Promise<DeviceRead> {
  for (let attempt = 1; ; attempt += 1) {
    await (await gate.acquire('GetDeviceCertificate')).confirm();
    try {
      const read = await api.getDevice(device);
      return { kind: 'registered', status: statusOf(read.body), requestId: read.requestId };
    } catch (error) {
      const failure = describeApiFailure(error);
      const verdict = classifyFailure(failure);
      const facts = { requestId: failure.requestId, code: failure.code, httpStatus: failure.httpStatus, message: failure.message };
      if (verdict.action === 'not_found') return { kind: 'absent', ...facts };
      const transient = verdict.action === 'retry' || verdict.action === 'throttle';
      if (!transient || attempt >= options.tries) return { kind: 'unreadable', ...facts };
      await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt, options.retry)));
    }
  }
}

/** Reads one device back after its revocation (see the module comment). */
export async function readBack(
  api: Pick<Revoker, 'getDevice'>,
  gate: RateGate,
  device: DeviceRef,
  action: RevocationAction,
  options: { tries: number; retry: BackoffOptions },
): Promise<ReadBack> {
  const read = await readDevice(api, gate, device, options);
  const verification = read.kind === 'registered' ? registeredVerdict(action, read.status) : read.kind;
  return { verification, verifiedAt: new Date().toISOString(), verifyRequestId: read.requestId };
}
