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

/** Reads one device back; at most `tries` reads (transient failures back off). */
export async function readBack(
  api: Pick<Revoker, 'getDevice'>,
  gate: RateGate,
  device: DeviceRef,
  action: RevocationAction,
  options: { tries: number; retry: BackoffOptions },
): Promise<ReadBack> {
  for (let attempt = 1; ; attempt += 1) {
    await (await gate.acquire('GetDeviceCertificate')).confirm();
    try {
      const read = await api.getDevice(device);
      return { verification: registeredVerdict(action, statusOf(read.body)), verifiedAt: new Date().toISOString(), verifyRequestId: read.requestId };
    } catch (error) {
      const failure = describeApiFailure(error);
      const verdict = classifyFailure(failure);
      if (verdict.action === 'not_found') return { verification: 'absent', verifiedAt: new Date().toISOString(), verifyRequestId: failure.requestId };
      const transient = verdict.action === 'retry' || verdict.action === 'throttle';
      if (!transient || attempt >= options.tries) return { verification: 'unreadable', verifiedAt: new Date().toISOString(), verifyRequestId: failure.requestId };
      await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt, options.retry)));
    }
  }
}
