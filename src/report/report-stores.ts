/**
 * The report's own stores over a context's Redis: a batch's input order and its audit facts.
 * (They would live on `Context` once the lead moves them there; built here in one place until then.)
 */
import { InputOrder } from '../results/input-order.js';
import type { Context } from '../runtime/context.js';
import { BatchAuditStore } from './batch-audit.js';

/** Input order and audit facts of batches, for this context's Redis and prefix. */
export interface ReportStores {
  order: InputOrder;
  audit: BatchAuditStore;
}

/** Builds the stores (cheap: no connection of their own). */
export function reportStores(context: Pick<Context, 'redis' | 'keys' | 'config'>): ReportStores {
  return {
    order: new InputOrder(context.redis, context.keys),
    audit: new BatchAuditStore(context.redis, context.keys, context.config.retentionDays),
  };
}
