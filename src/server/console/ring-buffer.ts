/**
 * A fixed-capacity ring of the most recent values: the console keeps ten minutes of one-second
 * samples in the server process (600 entries), whatever the uptime.
 */
export class RingBuffer<T> {
  private readonly items: (T | undefined)[];
  private next = 0;
  private size = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`ring capacity must be a positive integer, got ${String(capacity)}`);
    this.items = new Array<T | undefined>(capacity);
  }

  /** Adds a value, dropping the oldest when full. */
  push(value: T): void {
    this.items[this.next] = value;
    this.next = (this.next + 1) % this.capacity;
    this.size = Math.min(this.capacity, this.size + 1);
  }

  /** How many values it holds. */
  get length(): number {
    return this.size;
  }

  /** The values, oldest first. */
  toArray(): T[] {
    const out: T[] = [];
    const start = (this.next - this.size + this.capacity) % this.capacity;
    for (let index = 0; index < this.size; index += 1) out.push(this.items[(start + index) % this.capacity] as T);
    return out;
  }

  /** The newest value, or undefined. */
  last(): T | undefined {
    return this.size === 0 ? undefined : this.items[(this.next - 1 + this.capacity) % this.capacity];
  }

  /** The value `back` samples before the newest (0 = newest), or undefined. */
  at(back: number): T | undefined {
    if (back < 0 || back >= this.size) return undefined;
    return this.items[(this.next - 1 - back + this.capacity * 2) % this.capacity];
  }
}
