/**
 * JSON bodies read as text and parsed here, so the webhook can verify its signature over the
 * exact bytes received and so no body can plant a prototype.
 */

/** The outcome of `parseJsonText`. */
export type JsonParseResult = { ok: true; value: unknown } | { ok: false; message: string };

/**
 * Deepest nesting of arrays and objects accepted. Every body the server takes is 3 levels deep at
 * most (object, `deviceSns` array, entry object); the limit leaves room and stops a body of
 * 100,000 `[` from sending the reviver below into a stack overflow, which used to surface as
 * "not valid JSON: Maximum call stack size exceeded".
 */
export const MAX_JSON_DEPTH = 32;

/** True when arrays and objects nest deeper than `maxDepth` (brackets inside strings do not count). One pass, no allocation. */
function nestsDeeperThan(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let index = 0; index < text.length; index += 1) {
    const code = text.charCodeAt(index);
    if (inString) {
      if (code === 0x5c) index += 1; // backslash: skip the escaped character
      else if (code === 0x22) inString = false;
    } else if (code === 0x22) {
      inString = true;
    } else if (code === 0x5b || code === 0x7b) {
      depth += 1;
      if (depth > maxDepth) return true;
    } else if (code === 0x5d || code === 0x7d) {
      depth -= 1;
    }
  }
  return false;
}

/**
 * Parses JSON text. `__proto__` keys are dropped: `JSON.parse` makes them own properties (no
 * pollution by itself), but any later spread or `Object.assign` of the value would turn one
 * into a prototype, so none survives parsing. An empty (or all-blank) text parses to `undefined`.
 * Nesting deeper than {@link MAX_JSON_DEPTH} is refused before parsing.
 */
export function parseJsonText(text: string): JsonParseResult {
  if (text.trim() === '') return { ok: true, value: undefined };
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
    return { ok: false, message: `the body nests arrays or objects deeper than ${MAX_JSON_DEPTH} levels` };
  }
  try {
    const value: unknown = JSON.parse(text, (key, nested: unknown) => (key === '__proto__' ? undefined : nested));
    return { ok: true, value };
  } catch (error) {
    // SyntaxError messages name a position and a few characters, nothing more of the body.
    return { ok: false, message: `the body is not valid JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
}
