/**
 * Who runs a CLI command, for the audit trail: the OS user and host (`cli:alice@ops-1`). Not an
 * authentication (anyone with Redis access can write anything), but what an operator after an
 * incident needs to ask the right person.
 */
import { hostname, userInfo } from 'node:os';
import { AuditTrail, type AuditAction, type AuditEntry } from '../audit/audit-trail.js';
import type { Context } from '../runtime/context.js';

/** `cli:<user>@<host>`, or `cli:@<host>` when the user cannot be read (no passwd entry in a container). */
export function cliActor(): string {
  let user = '';
  try {
    user = userInfo().username;
  } catch {
    // Containers running as an arbitrary uid have no passwd entry.
  }
  return `cli:${user}@${hostname()}`;
}

/** Records a CLI action in the audit trail of `context`. */
export async function auditCli(context: Context, action: AuditAction, batchId: string | null, args: AuditEntry['args'], ok: boolean): Promise<void> {
  await new AuditTrail(context.redis, context.keys, context.config.retentionDays).record({ action, batchId, actor: cliActor(), from: hostname(), args, ok });
}
