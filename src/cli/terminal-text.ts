/**
 * Printing stored text on a terminal without letting it drive the terminal. Batch names, reasons,
 * rejected serials and API messages come from other systems; an escape sequence among them could
 * rewrite the line `revoker status` prints or write to the clipboard (OSC 52). Every CLI print
 * of stored text goes through these; input is refused at the entrances as well (`free-text`).
 */

// The characters `free-text` refuses, escaped on output (global, for replace).
const UNSAFE = /[\p{Cc}\u2028\u2029\u202A-\u202E\u2066-\u2069]/gu;

function escapeChar(char: string): string {
  const code = char.codePointAt(0) ?? 0;
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * `text` with every control character but tab, LF and CR shown as `\xHH` (or `\uHHHH`): for cells
 * of a CSV file, where those three are data that RFC 4180 quoting keeps (on a terminal the whole
 * line is escaped again).
 */
export function escapeControlInCell(text: string): string {
  return text.replace(UNSAFE, (char) => (char === '\t' || char === '\n' || char === '\r' ? char : escapeChar(char)));
}

/** `text` with every control character shown as `\xHH` (or `\uHHHH`): one visible line, inert. */
export function escapeControl(text: string): string {
  return text.replace(UNSAFE, escapeChar);
}

/**
 * A line of output ending in `\n`, escaped except for that final newline. Report lines (CSV,
 * NDJSON) go through this when they are printed on standard output.
 */
export function terminalLine(line: string): string {
  return line.endsWith('\n') ? `${escapeControl(line.slice(0, -1))}\n` : escapeControl(line);
}

/**
 * JSON for standard output. `JSON.stringify` escapes U+0000–U+001F but writes DEL, the C1 controls
 * (U+009B is a CSI on some terminals) and the bidi overrides raw; they can only occur inside
 * strings, where `\uHHHH` is the same value, so the output stays valid JSON.
 */
export function jsonForTerminal(value: unknown): string {
  return JSON.stringify(value).replace(UNSAFE, (char) => `\\u${(char.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
}
