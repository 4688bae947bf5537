/**
 * Reading a report back: splitting a text stream into records (a CSV record may span lines
 * inside quotes) with the physical line each starts on, and a CSV record into its cells.
 * Written here rather than with csv-parse because the verifier needs each record's exact bytes,
 * which the chain was computed over.
 */

/** One record of a report file. */
export interface RawRecord {
  /** The record's text, without its line ending. */
  text: string;
  /** 1-based physical line it starts on (what an editor shows). */
  line: number;
  /** True when it ended with CR LF (the file was re-saved with Windows line endings). */
  crlf: boolean;
}

/**
 * Splits chunks of text into records. In `csv` mode a newline inside double quotes belongs to
 * the record (RFC 4180: a quote inside a quoted field is doubled, so quote parity is enough);
 * in `lines` mode (NDJSON, whose strings escape newlines) every newline ends a record.
 */
export async function* splitRecords(chunks: AsyncIterable<Buffer | string>, mode: 'csv' | 'lines'): AsyncGenerator<RawRecord> {
  const decoder = new TextDecoder('utf-8');
  let pending = '';
  let inQuotes = false;
  // Where the scan of `pending` resumes: everything before it is known to hold no record end.
  let scanFrom = 0;
  let line = 1;
  let startLine = 1;
  const take = (end: number): RawRecord => {
    let text = pending.slice(0, end);
    const crlf = text.endsWith('\r');
    if (crlf) text = text.slice(0, -1);
    pending = pending.slice(end + 1);
    scanFrom = 0;
    const record = { text, line: startLine, crlf };
    startLine = line;
    return record;
  };
  const drain = function* (): Generator<RawRecord> {
    for (let index = scanFrom; index < pending.length; index += 1) {
      const char = pending.charCodeAt(index);
      if (mode === 'csv' && char === 0x22) inQuotes = !inQuotes;
      else if (char === 0x0a) {
        line += 1;
        if (!inQuotes) {
          yield take(index);
          index = -1;
        }
      }
    }
    scanFrom = pending.length;
  };
  for await (const chunk of chunks) {
    pending += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    yield* drain();
  }
  pending += decoder.decode();
  yield* drain();
  if (pending !== '') {
    const crlf = pending.endsWith('\r');
    yield { text: crlf ? pending.slice(0, -1) : pending, line: startLine, crlf };
  }
}

/** The cells of one CSV record (RFC 4180 quoting; the report's `'` formula guard is kept). */
export function parseCsvRecord(text: string): string[] {
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index];
    if (quoted) {
      if (char === '"') {
        if (text[index + 1] === '"') {
          cell += '"';
          index += 1;
        } else quoted = false;
      } else cell += char;
    } else if (char === '"') quoted = true;
    else if (char === ',') {
      cells.push(cell);
      cell = '';
    } else cell += char;
  }
  cells.push(cell);
  return cells;
}
