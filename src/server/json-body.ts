/**
 * JSON bodies read as text and parsed here, so the webhook can verify its signature over the
 * exact bytes received and so no body can plant a prototype.
 */

/** The outcome of `parseJsonText`. */
export type JsonParseResult = { ok: true; value: unknown } | { ok: false; message: string };

/**
 * Parses JSON text. `__proto__` keys are dropped: `JSON.parse` makes them own properties (no
 * pollution by itself), but any later spread or `Object.assign` of the value would turn one
 * into a prototype, so none survives parsing. An empty (or all-blank) text parses to `undefined`.
 */
export function parseJsonText(text: string): JsonParseResult {
  if (text.trim() === '') return { ok: true, value: undefined };
  try {
    const value: unknown = JSON.parse(text, (key, nested: unknown) => (key === '__proto__' ? undefined : nested));
    return { ok: true, value };
  } catch (error) {
    // SyntaxError messages name a position and a few characters, nothing more of the body.
    return { ok: false, message: `the body is not valid JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
}
