/**
 * Free text people and systems give revoker (a batch `name`, a `reason`): it ends up in records
 * and on operators' terminals, so it may hold no control character. A webhook `name` holding
 * `ESC[2K\r…` once rewrote the line `revoker status` printed. Refused at every entrance (webhook,
 * admin API, CLI options); what is already stored is escaped when printed (`cli/terminal-text`).
 */

/**
 * Characters refused in free text: C0 and C1 controls and DEL (`\p{Cc}`, which covers ESC, CR,
 * LF and TAB), the line and paragraph separators, and the bidirectional overrides and isolates
 * that make a terminal or an editor show text in another order than it is stored.
 */
export const CONTROL_CHARACTER = /[\p{Cc}\u2028\u2029\u202A-\u202E\u2066-\u2069]/u;

/** `U+001B`. */
export function codePointName(char: string): string {
  return `U+${(char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Why `value` cannot be used as free text, naming `field`; null when it is fine. */
export function controlCharacterProblem(field: string, value: string): string | null {
  const match = CONTROL_CHARACTER.exec(value);
  if (match === null) return null;
  return `${field} contains a control character (${codePointName(match[0])}) at position ${match.index}`;
}
