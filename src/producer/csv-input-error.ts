// The error that refuses a whole CSV file before anything from it has been produced.

/** Why a whole CSV file was refused. Stable strings: the CLI and the server print and match them. */
export type CsvInputErrorCode =
  /** Nothing but blank lines (or nothing at all). */
  | 'EMPTY_FILE'
  /** Binary content, UTF-16, invalid UTF-8 or broken quoting in the header: not a CSV text file. */
  | 'NOT_CSV'
  /** The header has no column that maps to DeviceSn. */
  | 'NO_DEVICE_SN_COLUMN'
  /** CaSn or MqttInstanceId has no column and no default was given. */
  | 'MISSING_COLUMN'
  /** Two header cells map to the same column (e.g. `DeviceSn` and `device_sn`): ambiguous. */
  | 'DUPLICATE_COLUMN'
  /** A default given in the options (`--ca-sn`, `--instance`) is itself invalid. */
  | 'INVALID_OPTION'
  /** The input stream failed before the header could be read. */
  | 'READ_FAILED';

/** Thrown by `readDeviceCsv` only before it has yielded anything: the file as a whole is refused. */
export class CsvInputError extends Error {
  override readonly name = 'CsvInputError';

  constructor(
    readonly code: CsvInputErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
