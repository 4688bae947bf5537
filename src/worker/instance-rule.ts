/**
 * What an instance error (`MqttInstanceNotFound`, `MqttOwnerCheckError`: the API refuses the
 * whole instance) does to the batches that want the device. Pure.
 *
 * Normally it pauses them: every device of the instance would fail the same way, and the operator
 * fixes the instance or the credentials, then resumes. But a batch whose devices are mostly on
 * another instance, where only some rows name this one (a per-row override), would pause again on
 * every resume for as long as those rows exist: after the operator resumed it once, a second
 * error on the same instance ends that revocation instead (dead letter, with the reason).
 */
import type { InstanceView } from '../batches/batch-store.js';

/** The decision for one instance error. */
export type InstanceErrorStep =
  /** Pause these batches (and park the job in them). */
  | { kind: 'pause'; batchIds: string[] }
  /** Every batch was paused for this instance before and resumed: dead-letter the revocation. */
  | { kind: 'end'; usualInstances: string[] };

/** Decides an instance error on `instance` for the running subscribers described by `views`. */
export function decideInstanceError(views: readonly InstanceView[], instance: string): InstanceErrorStep {
  const pause: string[] = [];
  const usual = new Set<string>();
  for (const view of views) {
    if (view.state === null || view.state === 'cancelled' || view.state === 'completed') continue;
    const isOverride = view.usualInstance !== null && view.usualInstance !== instance;
    // Paused right now (by another device's error a moment ago): the operator has not resumed yet.
    if (view.state !== 'paused' && view.pausedBefore && isOverride) {
      if (view.usualInstance !== null) usual.add(view.usualInstance);
      continue;
    }
    pause.push(view.batchId);
  }
  return pause.length > 0 || usual.size === 0 ? { kind: 'pause', batchIds: pause } : { kind: 'end', usualInstances: [...usual] };
}
