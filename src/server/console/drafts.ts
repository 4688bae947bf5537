/**
 * Revocations being planned in the console: an uploaded CSV file (or a CA's listing) kept in a
 * private temporary directory with its plan, until its owner applies or discards it, or it
 * expires. They live in the server process: behind several servers, the plan and its apply must
 * reach the same one (sticky sessions), which docs/CONSOLE.md says.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RevocationAction } from '../../cloud/certificate-api.js';
import type { BatchPriority } from '../../queue/priority.js';
import type { ReasonCode } from '../../report/batch-audit.js';
import type { CsvDefaults, IntakePlan, ListingProgress } from './revocation-intake.js';

/** How the batch will be named and run. */
export interface DraftOptions {
  name: string;
  action: RevocationAction;
  priority: BatchPriority;
  reason: string | null;
  reasonCode: ReasonCode | null;
}

/** Where a draft's devices come from. */
export type DraftInput = { kind: 'csv'; file: string; fileName: string; sha256: string; bytes: number; defaults: CsvDefaults } | { kind: 'ca'; file: string; mqttInstanceId: string; caSn: string };

/** Where a draft stands. */
export type DraftState =
  | { status: 'planning'; progress: ListingProgress | null }
  | { status: 'ready'; plan: IntakePlan }
  | { status: 'failed'; message: string }
  | { status: 'applied'; batchId: string };

/** A revocation being planned. */
export interface Draft {
  /** Random, unguessable: it is in the page's URL (it is not a secret, only an id). */
  id: string;
  /** Token name of who made it: only they can apply it. */
  owner: string;
  createdAtMs: number;
  dir: string;
  input: DraftInput;
  options: DraftOptions;
  state: DraftState;
}

/** Options of `Drafts`. */
export interface DraftsOptions {
  /** Drafts kept at once (each holds a file on disk). */
  maxDrafts: number;
  /** A draft not applied within this long is removed with its file. */
  ttlMs: number;
  /** Where the private directories are made. */
  tmpRoot: string;
}

/** Defaults of `DraftsOptions`. */
export const DRAFTS_DEFAULTS: DraftsOptions = { maxDrafts: 20, ttlMs: 30 * 60_000, tmpRoot: tmpdir() };

/** Too many drafts at once. */
export class TooManyDrafts extends Error {
  override readonly name = 'TooManyDrafts';
}

/** The drafts of this server process. */
export class Drafts {
  private readonly options: DraftsOptions;
  private readonly drafts = new Map<string, Draft>();
  private readonly timer: NodeJS.Timeout;

  constructor(options: Partial<DraftsOptions> = {}) {
    this.options = { ...DRAFTS_DEFAULTS, ...options };
    this.timer = setInterval(() => void this.sweep(), 60_000);
    this.timer.unref();
  }

  /** A private directory for a new draft's file; throws `TooManyDrafts` when full. */
  async reserveDir(): Promise<string> {
    await this.sweep();
    if (this.drafts.size >= this.options.maxDrafts) throw new TooManyDrafts(`${this.drafts.size} revocations are being planned on this server; apply or discard one first (they expire after ${Math.round(this.options.ttlMs / 60_000)} minutes)`);
    return mkdtemp(join(this.options.tmpRoot, 'revoker-console-'));
  }

  /** Keeps a new draft. */
  add(owner: string, dir: string, input: DraftInput, options: DraftOptions): Draft {
    const draft: Draft = { id: `d-${randomBytes(12).toString('hex')}`, owner, createdAtMs: Date.now(), dir, input, options, state: { status: 'planning', progress: null } };
    this.drafts.set(draft.id, draft);
    return draft;
  }

  /** The draft, or undefined (unknown, expired). */
  get(id: string): Draft | undefined {
    return this.drafts.get(id);
  }

  /** Removes a draft and its file. */
  async discard(id: string): Promise<void> {
    const draft = this.drafts.get(id);
    this.drafts.delete(id);
    if (draft !== undefined) await rm(draft.dir, { recursive: true, force: true });
  }

  /** Forgets a draft without removing its directory (an apply now owns the file). */
  release(id: string): void {
    this.drafts.delete(id);
  }

  /** Removes expired drafts. */
  async sweep(now: number = Date.now()): Promise<void> {
    for (const draft of [...this.drafts.values()]) {
      if (now - draft.createdAtMs > this.options.ttlMs && draft.state.status !== 'planning') await this.discard(draft.id);
    }
  }

  /** Removes every draft (the server stops). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    for (const id of [...this.drafts.keys()]) await this.discard(id);
  }
}
