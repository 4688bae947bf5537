/**
 * The API operations revoker calls. The API's per-account cap is per operation (shared
 * DESIGN.md §1, "Rate limits"), so each one has its own account budget.
 */

/** Every onsmqtt operation revoker may call. */
export const API_ACTIONS = [
  'DeleteDeviceCertificate',
  'InactivateDeviceCertificate',
  'GetDeviceCertificate',
  'ListDeviceCertificateByCaSn',
  'GetCaCertificate',
  'InactivateCaCertificate',
  'ActiveCaCertificate',
  'DeleteCaCertificate',
] as const;

/** One onsmqtt operation. */
export type ApiAction = (typeof API_ACTIONS)[number];

/** Operations that only read: they wait behind revocations in a process (see `BudgetGate`). */
export const READ_ACTIONS: ReadonlySet<ApiAction> = new Set(['GetDeviceCertificate', 'ListDeviceCertificateByCaSn', 'GetCaCertificate']);

/** The operation that performs a revocation action. */
export function revocationApiAction(action: 'delete' | 'inactivate'): ApiAction {
  return action === 'delete' ? 'DeleteDeviceCertificate' : 'InactivateDeviceCertificate';
}
