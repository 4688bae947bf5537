/**
 * The REGISTER script's request and answer (lua/register.lua): what one chunk of a batch's input
 * sends — its devices with their input lines, its rejected rows — and what comes back, kept apart
 * from `ResultStore` so that the store stays a list of ledger operations.
 *
 * One round trip per chunk does everything the intake writes for it: pending records, ledger
 * subscriptions, counters, the input order, the rejected rows and the producer heartbeat; the
 * answer also carries the batch's state (a cancelled batch stops its producer) and the queue's
 * waiting count (flow control without a round trip of its own).
 */
import type { Keys } from '../queue/keys.js';
import { inputOrderKey } from './input-order.js';

/** What the producer does with a device after registering it. */
export type RegisterFlag =
  /** Already in this batch: count it, queue nothing. */
  | 'duplicate'
  /** New revocation job: add it (its id is given). */
  | 'queue'
  /** Another batch's job for the same revocation is open: this batch subscribed to it. */
  | 'following'
  /** As `following`, and that job is parked (its batches are paused): wake it, this batch runs. */
  | 'following_parked'
  /** A record outside the ledger (no job): accepted. */
  | 'recorded';

/** The flags of the ledger scripts' answers (register, redrive, open-job), by number. */
export const REGISTER_FLAGS: Record<number, RegisterFlag> = { 0: 'duplicate', 1: 'queue', 2: 'following', 3: 'following_parked' };

/** One device's answer from `registerRevocations`. */
export interface RegisterAnswer {
  flag: RegisterFlag;
  /** The job to add (`queue`) or that this batch now follows; '' for duplicates. */
  jobId: string;
}

/** A device to register: its field (revocation id), placeholder and instance. */
export interface RegisterEntry {
  field: string;
  placeholder: string;
  /** Counted per batch, to tell the batch's usual instance from a row's override. */
  instance?: string;
  /** Its input line: recorded (first line wins) in the batch's input order, which reports follow. */
  line?: number;
}

/** A rejected input row, as the batch's report lists it. */
export interface RejectedEntry {
  line: number;
  reason: string;
  deviceSn?: string;
}

/** One chunk of a batch's input. */
export interface RegisterChunk {
  devices: readonly RegisterEntry[];
  rejected?: readonly RejectedEntry[];
}

/** What REGISTER answered for a chunk. */
export interface RegisterChunkAnswer {
  /** The batch's state when the chunk arrived ('' when the batch does not exist). */
  state: string;
  /** Jobs waiting in the queue then (prioritized and wait), for flow control. */
  waiting: number;
  /** One per device; empty when the batch was cancelled (nothing was registered). */
  answers: RegisterAnswer[];
  /** The request had been answered before (a resend): this is that answer, and nothing was written. */
  cached: boolean;
}

/** Ledger mode subscribes devices to revocation jobs; records mode only accepts them. */
export type RegisterMode = 'ledger' | 'records';

/** The script's keys for a chunk (see lua/register.lua). */
export function registerKeys(keys: Keys, mode: RegisterMode, batchId: string, requestId: string, devices: readonly RegisterEntry[]): string[] {
  const list = [
    keys.batch(batchId),
    keys.results(batchId),
    keys.registerRequest(requestId),
    keys.instances(batchId),
    keys.producer(batchId),
    inputOrderKey(keys, batchId),
    keys.rejected(batchId),
    keys.prioritized(),
    keys.waitList(),
  ];
  if (mode === 'ledger') for (const device of devices) list.push(keys.revocation(device.field));
  return list;
}

/** The script's arguments for a chunk (see lua/register.lua). */
export function registerArgs(prefix: string, mode: RegisterMode, batchId: string, chunk: RegisterChunk, heartbeatMs: number, nowMs: number): (string | number)[] {
  const rejected = chunk.rejected ?? [];
  const args: (string | number)[] = [prefix, batchId, mode, heartbeatMs, nowMs, chunk.devices.length, rejected.length];
  for (const device of chunk.devices) args.push(device.field, device.placeholder, device.instance ?? '', device.line ?? '');
  for (const row of rejected) args.push(JSON.stringify(row));
  return args;
}

/** Reads the script's answer: per device a flag and a generation (or a whole job id). */
export function parseRegisterAnswer(flat: readonly (string | number)[], mode: RegisterMode, devices: readonly RegisterEntry[]): RegisterChunkAnswer {
  const state = String(flat[0] ?? '');
  const waiting = Number(flat[1] ?? 0);
  const answers: RegisterAnswer[] = [];
  for (let i = 2; i + 1 < flat.length; i += 2) {
    const code = Number(flat[i]);
    const device = devices[(i - 2) / 2];
    if (mode === 'records') {
      answers.push({ flag: code === 0 ? 'duplicate' : 'recorded', jobId: '' });
      continue;
    }
    const flag = REGISTER_FLAGS[code] ?? 'duplicate';
    const gen = flat[i + 1];
    const jobId = flag === 'duplicate' ? '' : typeof gen === 'number' ? `${device?.field ?? ''}-${gen}` : String(gen ?? '');
    answers.push({ flag, jobId });
  }
  // The script appends one element, 'cached', to an answer it had given before.
  return { state, waiting, answers, cached: flat.length % 2 === 1 };
}
