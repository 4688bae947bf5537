/**
 * `--snapshot auto|always|never`: before a CSV batch's first call, list the CAs it names into
 * existence snapshots (src/results/existence-snapshot.ts), so that a call whose answer is lost
 * can still get an exact outcome. `auto` lists a CA only while that costs at most a tenth of the
 * batch's calls for it: it stops at that many pages, and the pages listed by then still count
 * (a device seen registered is evidence; only a complete listing can say a device was absent).
 */
import type { CertificateApi } from '../cloud/certificate-api.js';
import type { ExistenceSnapshots } from '../results/existence-snapshot.js';
import type { ApiCaller } from './api-caller.js';
import { listPages } from './ca-listing.js';
import { CliError } from './cli-context.js';
import { formatDuration } from './plan.js';

/** The `--snapshot` modes. */
export type SnapshotMode = 'auto' | 'always' | 'never';

/**
 * Timeout of one snapshot page: a page of 100 takes well under a second, and a snapshot holds back
 * the batch's first call (with EVIDENCE_RETRY's three tries an unreachable API costs seconds).
 */
export const SNAPSHOT_CALL_TIMEOUT_MS = 5_000;

/** Devices per snapshot page (the listing's PageSize). */
export const SNAPSHOT_PAGE_SIZE = 100;

/** Share of a CA's revocation calls that `auto` spends on listing it. */
export const AUTO_SNAPSHOT_SHARE = 0.1;

/** Parses `--snapshot`. */
export function snapshotModeFlag(value: string): SnapshotMode {
  if (value === 'auto' || value === 'always' || value === 'never') return value;
  throw new CliError(`--snapshot must be auto, always or never, got '${value}'`);
}

/** What was listed for one (instance, CA). */
export interface SnapshotTaken {
  mqttInstanceId: string;
  caSn: string;
  /** Devices of the batch under this CA. */
  batchDevices: number;
  pages: number;
  listed: number;
  /** True when every page was listed (the snapshot can then also say "absent"). */
  complete: boolean;
}

/** Most pages `mode` spends on a CA with `batchDevices` devices in the batch (Infinity: all). */
export function pageAllowance(mode: SnapshotMode, batchDevices: number): number {
  if (mode === 'never') return 0;
  if (mode === 'always') return Number.POSITIVE_INFINITY;
  return Math.floor(batchDevices * AUTO_SNAPSHOT_SHARE);
}

/**
 * The plan's line about the snapshot: how many listing pages may come before the batch's first
 * call, and how long they take at `ratePerSecond` (null when none: `never`, or CAs too small).
 * `auto` is bounded by the allowance; `always` by the CA's size, which the plan does not know.
 */
export function snapshotPlanNote(mode: SnapshotMode, perCa: ReadonlyMap<string, number>, ratePerSecond: number): string | null {
  const listed = [...perCa.values()].filter((devices) => pageAllowance(mode, devices) >= 1);
  if (listed.length === 0) return null;
  const cas = `${listed.length} CA${listed.length === 1 ? '' : 's'}`;
  if (mode === 'always') return `existence snapshot first (--snapshot always): every page of ${cas} is listed before the first revocation; --snapshot never skips it`;
  // At least the pages the batch's own devices fill (a CA holds them, and perhaps more); at most
  // the allowance.
  const most = listed.reduce((sum, devices) => sum + pageAllowance(mode, devices), 0);
  const least = listed.reduce((sum, devices) => sum + Math.min(pageAllowance(mode, devices), Math.ceil(devices / SNAPSHOT_PAGE_SIZE)), 0);
  const rate = Math.max(1, ratePerSecond);
  const pages = least === most ? `${most.toLocaleString('en-US')}` : `${least.toLocaleString('en-US')} to ${most.toLocaleString('en-US')}`;
  const time = least === most ? `about ${formatDuration(most / rate)}` : least / rate < 1 ? `up to ${formatDuration(most / rate)}` : `${formatDuration(least / rate)} to ${formatDuration(most / rate)}`;
  return `existence snapshot first (--snapshot auto): ${pages} listing pages of ${cas} (${time}, by the CA's size) before the first revocation, so that a call whose answer is lost still gets an exact outcome; --snapshot never skips it`;
}

/**
 * Lists each CA of `perCa` (key `instance/CA`, value: the batch's devices under it) within its
 * allowance; `onProgress` is told what is being listed.
 */
export async function takeSnapshots(
  caller: ApiCaller,
  api: Pick<CertificateApi, 'listDevices'>,
  snapshots: ExistenceSnapshots,
  perCa: ReadonlyMap<string, number>,
  options: { mode: SnapshotMode; pageSize: number; source: string; onProgress?: (text: string) => void },
): Promise<SnapshotTaken[]> {
  const taken: SnapshotTaken[] = [];
  for (const [target, batchDevices] of perCa) {
    const allowance = pageAllowance(options.mode, batchDevices);
    if (allowance < 1) continue;
    const slash = target.indexOf('/');
    const mqttInstanceId = target.slice(0, slash);
    const caSn = target.slice(slash + 1);
    const writer = snapshots.begin({ mqttInstanceId, caSn }, options.source);
    let listed = 0;
    const { pages, complete } = await listPages(
      caller,
      api,
      { mqttInstanceId, caSn, pageSize: options.pageSize },
      async (devices, pageNo) => {
        await writer.addPage(devices.map((device) => device.deviceSn));
        listed += devices.length;
        options.onProgress?.(`snapshot of ${caSn}: ${listed} devices (page ${pageNo})`);
      },
      allowance,
    );
    if (complete) await writer.complete();
    taken.push({ mqttInstanceId, caSn, batchDevices, pages, listed, complete });
  }
  // A snapshot counts for calls made at least its margin after it: the batch's first calls too.
  if (taken.length > 0) await new Promise((resolve) => setTimeout(resolve, 2 * snapshots.options.marginMs));
  return taken;
}
