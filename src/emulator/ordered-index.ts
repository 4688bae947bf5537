/**
 * A keyed collection that keeps insertion order and answers "the items at positions
 * offset..offset+limit of the CURRENT list" in O(log n + limit), however many items were
 * deleted before them. Paging a CA with hundreds of thousands of devices while they are being
 * deleted is exactly what a revocation run does, so a linear skip per page would not do.
 *
 * Every insertion takes the next slot; a Fenwick (binary indexed) tree over the slots holds 1
 * for a live slot and 0 for a deleted one, so the k-th live item is found by binary lifting.
 */
export class OrderedIndex<T> {
  private slots: Array<T | undefined> = [];
  private readonly slotOf = new Map<string, number>();
  /** 1-based Fenwick tree; tree.length - 1 is the capacity. */
  private tree = new Int32Array(1024 + 1);

  /** Number of live items. */
  get size(): number {
    return this.slotOf.size;
  }

  has(key: string): boolean {
    return this.slotOf.has(key);
  }

  get(key: string): T | undefined {
    const slot = this.slotOf.get(key);
    return slot === undefined ? undefined : this.slots[slot];
  }

  /** Adds at the end, or replaces the value in place (keeping its position) if the key exists. */
  set(key: string, value: T): void {
    const existing = this.slotOf.get(key);
    if (existing !== undefined) {
      this.slots[existing] = value;
      return;
    }
    // Growing compacts deleted slots away, so the new slot is only known after it.
    if (this.slots.length + 1 >= this.tree.length) this.grow();
    const slot = this.slots.length;
    this.slots.push(value);
    this.slotOf.set(key, slot);
    this.update(slot + 1, 1);
  }

  /** Removes the key; returns whether it was there. */
  delete(key: string): boolean {
    const slot = this.slotOf.get(key);
    if (slot === undefined) return false;
    this.slotOf.delete(key);
    this.slots[slot] = undefined;
    this.update(slot + 1, -1);
    return true;
  }

  /** Live items at positions [offset, offset + limit) of the current order. */
  slice(offset: number, limit: number): T[] {
    const out: T[] = [];
    if (offset >= this.size || limit <= 0) return out;
    let slot = this.findSlotOfRank(offset + 1);
    while (slot < this.slots.length && out.length < limit) {
      const value = this.slots[slot];
      if (value !== undefined) out.push(value);
      slot += 1;
    }
    return out;
  }

  /** Live items in insertion order. */
  *values(): IterableIterator<T> {
    for (const value of this.slots) if (value !== undefined) yield value;
  }

  private update(position: number, delta: number): void {
    for (let i = position; i < this.tree.length; i += i & -i) this.tree[i] = (this.tree[i] ?? 0) + delta;
  }

  /** 0-based slot of the rank-th (1-based) live item, by Fenwick binary lifting. */
  private findSlotOfRank(rank: number): number {
    let position = 0;
    let remaining = rank;
    let step = 1;
    while (step * 2 < this.tree.length) step *= 2;
    for (; step > 0; step >>= 1) {
      const next = position + step;
      const count = this.tree[next] ?? 0;
      if (next < this.tree.length && count < remaining) {
        position = next;
        remaining -= count;
      }
    }
    return position; // position + 1 is the 1-based slot, so this is the 0-based one
  }

  /** Doubles the capacity, compacting away deleted slots, and rebuilds the tree in O(n). */
  private grow(): void {
    // slotOf's iteration order is slot order: keys are only ever inserted with a new, larger
    // slot (a re-added key was deleted first), so no sort is needed.
    const live: Array<[string, T]> = [];
    for (const [key, slot] of this.slotOf) live.push([key, this.slots[slot] as T]);
    const capacity = Math.max(1024, live.length * 2 + 1);
    this.slots = live.map(([, value]) => value);
    this.slotOf.clear();
    live.forEach(([key], slot) => this.slotOf.set(key, slot));
    this.tree = new Int32Array(capacity + 1);
    // Linear build: every node passes its sum to its parent, including nodes past the live
    // items, which carry partial sums of the ones below them.
    for (let i = 1; i <= capacity; i += 1) {
      if (i <= this.slots.length) this.tree[i] = (this.tree[i] ?? 0) + 1;
      const parent = i + (i & -i);
      if (parent <= capacity) this.tree[parent] = (this.tree[parent] ?? 0) + (this.tree[i] ?? 0);
    }
  }
}
