// Pure validation of the identifiers a revocation needs. Each validator returns null when the
// value is acceptable, else a short sentence naming the field and the problem.

/** `DeleteDeviceCertificate` documents serial numbers as strings of at most 128 bytes. */
export const MAX_SERIAL_BYTES = 128;
/** Instance ids are short (`mqtt-cn-0pp1ldu0a01`); 64 leaves ample room and bounds the echo. */
export const MAX_INSTANCE_ID_CHARS = 64;
/** Longest slice of a user value echoed back in a reason, so a huge cell never floods a report. */
export const MAX_ECHO_CHARS = 64;

// Shape of every ApsaraMQ for MQTT instance id seen: `mqtt-cn-…`, `post-cn-…`, `mqtt-sg-…`.
const INSTANCE_ID_PATTERN = /^[a-z][a-z0-9]*(-[a-z0-9]+)+$/;

/**
 * Removes surrounding whitespace (spaces, tabs, NBSP, a stray BOM, line breaks), which spreadsheet
 * exports leave behind and which is never part of an identifier. Validators apply it themselves;
 * callers use it to get the value to send.
 */
export function normaliseIdentifier(raw: string): string {
  return raw.trim();
}

/** Cuts a value for echoing in a message (to `maxChars` code points), never splitting a surrogate pair. */
export function truncateForEcho(value: string, maxChars = MAX_ECHO_CHARS): string {
  if (value.length <= maxChars) return value;
  // A code point is at most 2 UTF-16 units, so this head holds more than maxChars code points
  // whenever the value does, and never makes us copy a huge cell.
  const head = Array.from(value.slice(0, maxChars * 2 + 1));
  if (head.length <= maxChars && value.length <= maxChars * 2) return value;
  return `${head.slice(0, maxChars).join('')}…`;
}

function describeChar(char: string): string {
  return `U+${(char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Serial-number rules shared by DeviceSn and CaSn: non-empty, at most 128 bytes of UTF-8, and
 * printable ASCII without whitespace. The API only says "string of at most 128 bytes", but real
 * serials are hex-like: anything else is a spreadsheet or encoding accident, better refused with a
 * reason than sent. Characters such as `= + - @` are accepted: escaping them is the report's job.
 */
function validateSerial(field: string, raw: string): string | null {
  const value = normaliseIdentifier(raw);
  if (value.length === 0) return `${field} is empty`;
  // Length first: it is cheap, it is the documented limit, and it bounds the scans below.
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > MAX_SERIAL_BYTES) return `${field} is longer than ${MAX_SERIAL_BYTES} bytes (${bytes})`;
  let position = 0;
  for (const char of value) {
    position += 1;
    const code = char.codePointAt(0) ?? 0;
    if (code <= 0x1f || (code >= 0x7f && code <= 0x9f)) {
      return `${field} contains a control character (${describeChar(char)}) at position ${position}`;
    }
    if (/\s/u.test(char)) {
      return `${field} contains whitespace (${describeChar(char)}) at position ${position}`;
    }
    if (code > 0x7e) {
      return `${field} contains a non-ASCII character (${describeChar(char)}) at position ${position}`;
    }
  }
  return null;
}

/** Validates a device serial number (the `DeviceSn` parameter). Null when valid. */
export function validateDeviceSn(raw: string): string | null {
  return validateSerial('DeviceSn', raw);
}

/** Validates a CA certificate serial number (the `CaSn` parameter). Null when valid. */
export function validateCaSn(raw: string): string | null {
  return validateSerial('CaSn', raw);
}

/**
 * Validates an ApsaraMQ for MQTT instance id (the `MqttInstanceId` parameter): lower-case letters,
 * digits and '-' groups such as `mqtt-cn-0pp1ldu0a01`, at most 64 characters. Null when valid.
 */
export function validateInstanceId(raw: string): string | null {
  const value = normaliseIdentifier(raw);
  if (value.length === 0) return 'MqttInstanceId is empty';
  if (value.length > MAX_INSTANCE_ID_CHARS) {
    return `MqttInstanceId is longer than ${MAX_INSTANCE_ID_CHARS} characters (${value.length})`;
  }
  if (!INSTANCE_ID_PATTERN.test(value)) {
    return `MqttInstanceId ${JSON.stringify(truncateForEcho(value))} is not an instance id like mqtt-cn-0pp1ldu0a01 (lower-case letters, digits and '-')`;
  }
  return null;
}
