/**
 * A one-line progress display redrawn in place on a TTY (no dependency: a single `\r` line is
 * all an operator needs, and it degrades to nothing when output is piped).
 */

/** Redraws one status line on a TTY stream; does nothing elsewhere. */
export class ProgressLine {
  private lastDrawMs = 0;
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    /** Redraws at most this often. */
    private readonly everyMs = 100,
  ) {}

  /** True when the stream is a terminal. */
  get enabled(): boolean {
    return this.stream.isTTY === true;
  }

  /** Shows `text`, throttled unless `force`. */
  update(text: string, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.lastDrawMs < this.everyMs) return;
    this.lastDrawMs = now;
    const width = this.stream.columns ?? 120;
    this.stream.write(`\r\u001b[2K${text.slice(0, width - 1)}`);
    this.drawn = true;
  }

  /** Ends the line so that what follows starts on a fresh one. */
  done(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}
