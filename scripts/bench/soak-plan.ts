/**
 * What the soak asks for: which devices are registered and which never were, which batch asks for
 * which (overlapping), which devices are scripted to fail and how; and the producer that enqueues a
 * batch, noting when it registered each device.
 */
import { generateDevices } from '../../src/emulator/index.js';
import { Enqueuer } from '../../src/producer/enqueuer.js';
import type { Context } from '../../src/runtime/context.js';
import { registrationWindows, type RegisterMark, type RegistrationWindow } from './soak-invariants.js';

/** A device certificate as the soak names it. */
export type Device = { mqttInstanceId: string; caSn: string; deviceSn: string };

/** Devices scripted to behave one way (`POST /_emulator/script` steps), and what that stands for. */
export interface ScriptedGroup {
  devices: Device[];
  steps: unknown[];
  what: string;
}

/** Everything the soak asks for, before it starts. */
export interface SoakPlan {
  registered: Device[];
  never: Device[];
  /** C's own devices (registered, in no other batch). */
  onlyC: Device[];
  /** The devices A and B both start with. */
  shared: Device[];
  devicesA: Device[];
  devicesB: Device[];
  devicesC: Device[];
  scripted: ScriptedGroup[];
}

/** `extra` spread evenly through `list` (never-registered devices among registered ones). */
export function mix(list: readonly Device[], extra: readonly Device[]): Device[] {
  if (extra.length === 0) return [...list];
  const every = Math.max(1, Math.floor(list.length / extra.length));
  const out: Device[] = [];
  let next = 0;
  list.forEach((device, index) => {
    out.push(device);
    if ((index + 1) % every === 0 && next < extra.length) out.push(extra[next++] as Device);
  });
  return [...out, ...extra.slice(next)];
}

/**
 * One producer (an Enqueuer) and when it registered each device. Its progress reports say how many
 * devices REGISTER has answered for (`accepted + duplicates`; the soak's input has no bad rows):
 * REGISTERs run in input order, so when a report says n, devices 0..n-1 are registered. (`read`
 * would not do: a pipelining producer reads chunks ahead of their REGISTER.)
 */
export class Producer {
  readonly marks: RegisterMark[] = [];
  readonly done: Promise<void>;
  endedAtMs: number | null = null;
  error: string | null = null;
  /** What the producer reported at its end: devices accepted, and whether it stopped early (cancelled). */
  summary: { accepted: number; stoppedEarly: boolean } | null = null;

  constructor(
    context: Context,
    readonly batchId: string,
    readonly name: string,
    readonly devices: readonly Device[],
  ) {
    this.marks.push({ registered: 0, atMs: Date.now() });
    const items = devices.map((device, index) => ({ kind: 'device' as const, request: { ...device, line: index + 2 } }));
    this.done = new Enqueuer(context.queue, context.batches, context.results)
      .enqueue(batchId, 'delete', items, (progress) => this.marks.push({ registered: progress.accepted + progress.duplicates, atMs: Date.now() }))
      .then(
        (summary) => {
          this.summary = { accepted: summary.accepted, stoppedEarly: summary.stoppedEarly };
        },
        (error: unknown) => {
          this.error = String(error);
          process.stdout.write(`soak: enqueue of ${name} failed: ${this.error}\n`);
        },
      )
      .finally(() => (this.endedAtMs = Date.now()));
  }

  get startedAtMs(): number {
    return this.marks[0]?.atMs ?? 0;
  }

  windows(): Map<string, RegistrationWindow> {
    return registrationWindows(
      this.devices.map((device) => device.deviceSn),
      this.marks,
      this.endedAtMs,
    );
  }
}

/**
 * The soak's devices and batches for `devices` registered devices: 3 % more never registered (a
 * third of them in the part A and B share); A asks for 60 %, B for the other 60 %, both starting
 * with the 20 % they share; C for devices of its own, then 30 % overlapping both.
 */
export function soakPlan(devices: number, maxAttempts: number, mqttInstanceId: string, caSn: string): SoakPlan {
  // The devices: registered ones, and 3 % never registered (a third shared by A and B).
  const registered = generateDevices({ mqttInstanceId, caSn, count: devices, prefix: 'soak' });
  const never = generateDevices({ mqttInstanceId, caSn, count: Math.ceil(devices * 0.03), prefix: 'soak-never' });
  const at = (fraction: number): number => Math.floor(devices * fraction);
  const third = Math.ceil(never.length / 3);
  const [neverShared, neverA, neverB] = [never.slice(0, third), never.slice(third, 2 * third), never.slice(2 * third)];
  // A and B start with the same devices in the same order: their producers register them at the same moment.
  const shared = mix(registered.slice(at(0.4), at(0.6)), neverShared);
  const devicesA = [...shared, ...mix(registered.slice(0, at(0.4)), neverA)];
  const devicesB = [...shared, ...mix(registered.slice(at(0.6)), neverB)];
  // Dead letters: devices whose calls are refused (certainly, or after a lost answer) maxAttempts times.
  const perKind = Math.max(2, Math.round(devices / 2_500));
  // C's own devices, first in its list: their calls hang until the client gives up, so they are
  // still retrying (their result unknown) when C is cancelled (once each had a call): then one read
  // decides.
  const onlyC = generateDevices({ mqttInstanceId, caSn, count: 2 * perKind, prefix: 'soak-only-c' });
  // C follows A's waiting jobs (raising them to urgent), and finds some shared devices done already.
  const devicesC = [...onlyC, ...mix(registered.slice(at(0.2), at(0.5)), neverA.slice(0, Math.ceil(neverA.length / 2)))];
  const refused = Array.from({ length: maxAttempts }, () => ({ code: 'SignatureNonceUsed', httpStatus: 400 }));
  // Held calls: never applied, no answer until the client's timeout (uncertain); reads use them up too.
  const held = Array.from({ length: maxAttempts - 1 }, () => 'timeout_before_apply');
  const scripted: ScriptedGroup[] = [
    { devices: registered.slice(at(0.58), at(0.58) + perKind), steps: refused, what: 'shared by A and B, refused' },
    { devices: registered.slice(at(0.1), at(0.1) + perKind), steps: ['timeout', ...refused.slice(1)], what: 'A only, applied with its answer lost, then refused' },
    { devices: registered.slice(at(0.3), at(0.3) + perKind), steps: refused, what: 'A and C, refused' },
    { devices: neverShared.slice(-perKind), steps: refused, what: 'never registered, shared, refused' },
    { devices: neverB.slice(-perKind), steps: ['timeout', ...refused.slice(1)], what: 'never registered, B only, answer lost, then refused' },
    { devices: onlyC.slice(0, perKind), steps: ['timeout', ...held.slice(1)], what: 'C only, applied with its answer lost, then held; C cancelled meanwhile' },
    { devices: onlyC.slice(perKind), steps: held, what: 'C only, held (never applied); C cancelled meanwhile' },
  ];
  return { registered, never, onlyC, shared, devicesA, devicesB, devicesC, scripted };
}
