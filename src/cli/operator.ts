/**
 * Who is running a command and how, for batch records and report headers; and the `--reason` /
 * `--reason-code` flags every command that starts a batch takes.
 */
import { hostname, userInfo } from 'node:os';
import { parseReasonCode, REASON_CODES, shellQuote, type ReasonCode } from '../report/batch-audit.js';
import { CliError } from './cli-context.js';

/** `user@host` of this process (the host alone when the user has no name). */
export function operatorName(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return hostname();
  }
}

/** The command as typed: `revoker` and its arguments, quoted where a shell would need it. */
export function commandLine(argv: readonly string[] = process.argv): string {
  return ['revoker', ...argv.slice(2).map(shellQuote)].join(' ');
}

/** Most characters of a `--reason`: a sentence, not a document. */
const MAX_REASON_CHARS = 500;

/** The validated `--reason` and `--reason-code`. */
export interface ReasonFlags {
  reason: string | null;
  reasonCode: ReasonCode | null;
}

/** Validates `--reason TEXT` and `--reason-code CODE`. */
export function reasonFlags(flags: { reason?: string; reasonCode?: string }): ReasonFlags {
  let reason: string | null = null;
  if (flags.reason !== undefined) {
    reason = flags.reason.trim();
    // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
    if (reason === '' || reason.length > MAX_REASON_CHARS || /[\u0000-\u001f\u007f]/.test(reason)) {
      throw new CliError(`--reason must be 1-${MAX_REASON_CHARS} characters without control characters`);
    }
  }
  let reasonCode: ReasonCode | null = null;
  if (flags.reasonCode !== undefined) {
    reasonCode = parseReasonCode(flags.reasonCode);
    if (reasonCode === null) throw new CliError(`--reason-code must be one of ${Object.keys(REASON_CODES).join(', ')} (RFC 5280), got '${flags.reasonCode.slice(0, 60)}'`);
  }
  return { reason, reasonCode };
}

/** Help text of `--reason-code`. */
export const REASON_CODE_HELP = `RFC 5280 reason: ${Object.keys(REASON_CODES).join(', ')}`;
