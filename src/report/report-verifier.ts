/**
 * Checks a sealed report: the hash chain line by line (naming the first line that does not
 * follow from the one before it), the seal's final value and line count, the header's counts
 * against the lines, and the Ed25519 signature. Streams the file: memory stays flat.
 *
 * What it can and cannot tell: a changed, removed or inserted line breaks the chain at that line
 * and is named. Someone who rewrites every chain value after an edit makes a consistent chain,
 * but its final value no longer matches the signature, so a signed report still fails (without
 * naming the line: the original values are gone). An unsigned report proves nothing against such
 * a rewrite; only a signature checked with a public key obtained separately (`--public-key`) does.
 */
import type { KeyObject } from 'node:crypto';
import { parseCsvRecord, splitRecords, type RawRecord } from './csv-records.js';
import { CHAIN_SEED, chainNext, CSV_HEADER_MARK, CSV_SEAL_MARK, REPORT_FORMAT_ID, splitChain, type SealedFormat } from './report-chain.js';
import { ReportTally, sameCounts, type TallyCounts } from './report-header.js';
import { keyFingerprint, parsePublicKey, verifyReportSignature } from './report-signature.js';

/** The first line that broke the chain. */
export interface ChangedLine {
  /** Physical line number (1-based, as an editor shows it). */
  line: number;
  /** Position in the chain (1 = header). */
  chainIndex: number;
  /** What that line is: `header`, `columns`, `device <sn>`, `rejected row`, `seal`, or `unknown`. */
  what: string;
  /** Why it is named. */
  why: string;
}

/** Result of `verifyReport`. */
export interface ReportVerification {
  /** Chain intact, seal consistent, counts match, and (when required or present) the signature valid. */
  ok: boolean;
  format: SealedFormat | null;
  batchId: string | null;
  /** Lines the chain covers as read. */
  chainedLines: number;
  firstChanged: ChangedLine | null;
  /** Lines whose chain value did not follow from the line before (each edit breaks one). */
  brokenLines: number;
  seal: { lines: number; finalHash: string } | null;
  signature: {
    status: 'valid' | 'invalid' | 'absent';
    /** Which key it was checked with. */
    checkedWith: 'given' | 'embedded' | null;
    /** Fingerprint of the key in the report's seal. */
    embeddedFingerprint: string | null;
    /** Fingerprint of the key given to check with. */
    givenFingerprint: string | null;
  };
  /** Whether the header's counts equal the lines' (null when the header could not be read). */
  countsMatch: boolean | null;
  /** Every problem found, most important first, one sentence each. */
  problems: string[];
}

/** Options of `verifyReport`. */
export interface VerifyReportOptions {
  /** Verify the signature with this key; a report that is unsigned or signed by another key then fails. */
  publicKey?: KeyObject;
}

interface ParsedSeal {
  lines: number;
  finalHash: string;
  signature: { signature: string; publicKey: string; keyFingerprint: string } | null;
}

function parseSealJson(json: string): ParsedSeal | null {
  try {
    const value = JSON.parse(json) as Record<string, unknown>;
    if (value.type !== 'seal' || typeof value.lines !== 'number' || typeof value.finalHash !== 'string') return null;
    const signature = value.signature as Record<string, unknown> | null | undefined;
    const parsedSignature =
      signature !== null && typeof signature === 'object' && typeof signature.signature === 'string' && typeof signature.publicKey === 'string'
        ? { signature: signature.signature, publicKey: signature.publicKey, keyFingerprint: typeof signature.keyFingerprint === 'string' ? signature.keyFingerprint : '' }
        : null;
    return { lines: value.lines, finalHash: value.finalHash, signature: parsedSignature };
  } catch {
    return null;
  }
}

/** Recognises the seal line; null when `text` is not one. */
function readSeal(format: SealedFormat, text: string): ParsedSeal | null {
  if (format === 'csv') {
    if (!text.startsWith(`${CSV_SEAL_MARK},`)) return null;
    return parseSealJson(parseCsvRecord(text)[1] ?? '');
  }
  return text.startsWith('{"type":"seal"') ? parseSealJson(text) : null;
}

/** Reads the header's JSON from its content; null when unreadable. */
function readHeader(format: SealedFormat, content: string): { batchId: string | null; counts: TallyCounts | null } | null {
  try {
    const json = format === 'csv' ? (content.startsWith(`${CSV_HEADER_MARK},`) ? parseCsvRecord(content)[1] ?? '' : '') : content;
    const value = JSON.parse(json) as Record<string, unknown>;
    if (value.type !== 'header' || value.format !== REPORT_FORMAT_ID) return null;
    const counts =
      value.counts !== null && typeof value.counts === 'object' && value.evidence !== null && typeof value.evidence === 'object' && typeof value.lines === 'number'
        ? { outcomes: value.counts as Record<string, number>, evidence: value.evidence as Record<string, number>, lines: value.lines }
        : null;
    return { batchId: typeof value.batchId === 'string' ? value.batchId : null, counts };
  } catch {
    return null;
  }
}

/** Checks a sealed report read from `chunks`. */
export async function verifyReport(chunks: AsyncIterable<Buffer | string>, options: VerifyReportOptions = {}): Promise<ReportVerification> {
  const problems: string[] = [];
  const result: ReportVerification = {
    ok: false,
    format: null,
    batchId: null,
    chainedLines: 0,
    firstChanged: null,
    brokenLines: 0,
    seal: null,
    signature: { status: 'absent', checkedWith: null, embeddedFingerprint: null, givenFingerprint: options.publicKey ? keyFingerprint(options.publicKey) : null },
    countsMatch: null,
    problems,
  };

  // The format shows in the first bytes: '#header' (CSV) or '{' (NDJSON).
  const iterator = chunks[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done === true) {
    problems.push('the file is empty');
    return result;
  }
  const head = typeof first.value === 'string' ? first.value : first.value.subarray(0, 16).toString('utf8');
  const format: SealedFormat | null = head.replace(/^\uFEFF/, '').startsWith('#') ? 'csv' : head.replace(/^\uFEFF/, '').startsWith('{') ? 'ndjson' : null;
  if (format === null) {
    problems.push('line 1 is not a revoker report header (a sealed report starts with "#header," in CSV or {"type":"header" in NDJSON)');
    return result;
  }
  result.format = format;
  async function* replay(): AsyncGenerator<Buffer | string> {
    yield first.value as Buffer | string;
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) yield next.value;
  }

  let stored = CHAIN_SEED;
  let recomputed = CHAIN_SEED;
  let seal: ParsedSeal | null = null;
  let afterSeal: RawRecord | null = null;
  let headerCounts: TallyCounts | null = null;
  let headerRead = false;
  let sawCrlf = false;
  let outcomeIndex = -1;
  let evidenceIndex = -1;
  let deviceIndex = -1;
  const tally = new ReportTally();

  const describe = (index: number, content: string): string => {
    if (index === 1) return 'header';
    if (format === 'csv' && index === 2) return 'columns';
    try {
      const fields = format === 'csv' ? parseCsvRecord(content) : (JSON.parse(content) as Record<string, unknown>);
      const outcome = Array.isArray(fields) ? fields[outcomeIndex] : fields.outcome;
      const device = Array.isArray(fields) ? fields[deviceIndex] : fields.deviceSn;
      if (outcome === 'rejected') return 'rejected row';
      if (typeof device === 'string' && device !== '') return `device ${device}`;
    } catch {
      // Unreadable: fall through.
    }
    return 'unknown';
  };

  for await (const record of splitRecords(replay(), format === 'csv' ? 'csv' : 'lines')) {
    if (record.text === '' && seal !== null) continue;
    if (seal !== null) {
      afterSeal ??= record;
      continue;
    }
    if (record.crlf) sawCrlf = true;
    const text = result.chainedLines === 0 ? record.text.replace(/^\uFEFF/, '') : record.text;
    const split = splitChain(format, text);
    if (split === null) {
      const candidate = readSeal(format, text);
      if (candidate !== null) {
        seal = candidate;
        continue;
      }
      result.chainedLines += 1;
      result.brokenLines += 1;
      result.firstChanged ??= { line: record.line, chainIndex: result.chainedLines, what: 'unknown', why: 'it carries no chain value (changed, or inserted)' };
      recomputed = chainNext(recomputed, text);
      continue;
    }
    result.chainedLines += 1;
    const index = result.chainedLines;
    if (index === 1) {
      const header = readHeader(format, split.content);
      headerRead = header !== null;
      if (header !== null) {
        result.batchId = header.batchId;
        headerCounts = header.counts;
      }
    } else if (format === 'csv' && index === 2) {
      const columns = parseCsvRecord(split.content);
      outcomeIndex = columns.indexOf('outcome');
      evidenceIndex = columns.indexOf('evidence');
      deviceIndex = columns.indexOf('deviceSn');
    } else if (format === 'csv') {
      const cells = parseCsvRecord(split.content);
      tally.add(cells[outcomeIndex] ?? '', cells[evidenceIndex] ?? '');
    } else {
      try {
        const fields = JSON.parse(split.content) as Record<string, unknown>;
        tally.add(typeof fields.outcome === 'string' ? fields.outcome : '', typeof fields.evidence === 'string' ? fields.evidence : '');
      } catch {
        tally.add('', '');
      }
    }
    // Locate edits against the stored values (each edit breaks the line it is on); prove the
    // whole file against the recomputed chain.
    const expected = chainNext(stored, split.content);
    recomputed = chainNext(recomputed, split.content);
    if (expected !== split.chain) {
      result.brokenLines += 1;
      result.firstChanged ??= {
        line: record.line,
        chainIndex: index,
        what: describe(index, split.content),
        why: 'its content does not lead to its chain value: this line was changed, or a line before it was removed or inserted',
      };
    }
    stored = split.chain;
  }

  if (result.firstChanged !== null) {
    const changed = result.firstChanged;
    problems.push(`line ${changed.line} (${changed.what}) was changed: ${changed.why}${result.brokenLines > 1 ? `; ${result.brokenLines - 1} more line(s) after it break the chain too` : ''}`);
    if (sawCrlf) problems.push('lines end with CR LF: the file was re-saved with Windows line endings, which changes every line');
  }
  if (!headerRead) problems.push('line 1 is not a readable revoker report header');

  if (seal === null) {
    problems.push('the seal line (the last line, with the final hash and the signature) is missing: the report was cut short');
  } else {
    result.seal = { lines: seal.lines, finalHash: seal.finalHash };
    if (afterSeal !== null) problems.push(`line ${afterSeal.line} comes after the seal: lines were appended`);
    if (seal.lines !== result.chainedLines) problems.push(`the seal covers ${seal.lines} lines but the file has ${result.chainedLines}: lines were removed or added`);
    if (seal.finalHash !== recomputed) {
      if (result.firstChanged === null) problems.push('the final hash in the seal does not match the lines: the seal was changed');
    }
    const sig = seal.signature;
    if (sig !== null) {
      let embedded: KeyObject | null = null;
      try {
        embedded = parsePublicKey(sig.publicKey, 'the key in the seal');
        result.signature.embeddedFingerprint = keyFingerprint(embedded);
      } catch {
        result.signature.embeddedFingerprint = sig.keyFingerprint || null;
      }
      const key = options.publicKey ?? embedded;
      result.signature.checkedWith = options.publicKey ? 'given' : embedded ? 'embedded' : null;
      // Checked against the recomputed chain: a seal whose hash was edited to match cannot pass.
      const valid = key !== null && verifyReportSignature(key, result.chainedLines, recomputed, sig.signature);
      result.signature.status = valid ? 'valid' : 'invalid';
      if (!valid) {
        if (options.publicKey && result.signature.embeddedFingerprint !== null && result.signature.embeddedFingerprint !== result.signature.givenFingerprint) {
          problems.push(`the signature is not from the given public key (${result.signature.givenFingerprint ?? '?'}); the seal names key ${result.signature.embeddedFingerprint}`);
        } else if (result.firstChanged === null) {
          problems.push('the signature does not match: the report was changed after signing (every chain value rewritten), or the seal was edited');
        } else {
          problems.push('the signature does not match the lines (see the changed line above)');
        }
      }
    } else if (options.publicKey) {
      problems.push('the report is not signed, but a public key was given to check its signature with');
    }
  }

  if (headerRead) {
    result.countsMatch = headerCounts !== null && sameCounts(headerCounts, tally.counts());
    if (!result.countsMatch) problems.push("the header's counts by outcome and evidence do not match the lines");
  }
  result.ok = problems.length === 0;
  return result;
}
