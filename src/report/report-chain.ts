/**
 * The hash chain of a sealed report (format `revoker-report/1`). Pure functions.
 *
 * Every line of a sealed report except the last (the seal) ends with a chain value:
 * `chain(i) = hex(SHA-256(chain(i-1) + "\n" + content(i)))`, where `content(i)` is the line's
 * text without its chain value (and without the newline), and `chain(0)` is the SHA-256 of the
 * format name. Editing, removing or inserting a line changes the chain from there on; the seal
 * carries the last value, which `revoker report --sign` signs. Because each line stores its own
 * value, a verifier can name the first line whose content no longer leads to it.
 *
 * The chain value sits where a reader's tools keep working: a last `chain` column in CSV, a last
 * `"chain"` member in NDJSON. Both are cut off textually, never by re-serialising, so the hashed
 * bytes are exactly the bytes in the file.
 */
import { createHash } from 'node:crypto';

/** Name and version of the sealed report format (also the chain's seed). */
export const REPORT_FORMAT_ID = 'revoker-report/1';

/** Formats a sealed report can be written in. */
export type SealedFormat = 'csv' | 'ndjson';

/** The chain value before the first line. */
export const CHAIN_SEED: string = createHash('sha256').update(REPORT_FORMAT_ID).digest('hex');

/** The chain value after a line with this content. */
export function chainNext(previous: string, content: string): string {
  return createHash('sha256').update(previous).update('\n').update(content, 'utf8').digest('hex');
}

const CSV_SUFFIX = /,([0-9a-f]{64})$/;
const NDJSON_SUFFIX = /,"chain":"([0-9a-f]{64})"\}$/;

/** A line's text with its chain value appended (no newline). */
export function appendChain(format: SealedFormat, content: string, chain: string): string {
  if (format === 'csv') return `${content},${chain}`;
  if (!content.startsWith('{') || !content.endsWith('}') || content === '{}') {
    throw new Error('an NDJSON report line must be a non-empty JSON object');
  }
  return `${content.slice(0, -1)},"chain":"${chain}"}`;
}

/** Splits a sealed line into its content and chain value; null when it carries none. */
export function splitChain(format: SealedFormat, line: string): { content: string; chain: string } | null {
  if (format === 'csv') {
    const match = CSV_SUFFIX.exec(line);
    return match?.[1] === undefined ? null : { content: line.slice(0, match.index), chain: match[1] };
  }
  const match = NDJSON_SUFFIX.exec(line);
  return match?.[1] === undefined ? null : { content: `${line.slice(0, match.index)}}`, chain: match[1] };
}

/** First cell of the CSV header line, and of the CSV seal line. */
export const CSV_HEADER_MARK = '#header';
export const CSV_SEAL_MARK = '#seal';
