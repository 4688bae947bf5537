/**
 * Lists every device certificate under a CA into a file (one JSON object per line), page by
 * page through the rate budgets. The file keeps memory flat for a million devices, and nothing
 * is changed until the listing is complete: revoking while paging would shift later pages and
 * skip devices.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { CertificateApi, ListedDevice } from '../cloud/certificate-api.js';
import type { ApiCaller } from './api-caller.js';
import type { SnapshotWriter } from '../results/existence-snapshot.js';

/** One listed device (a line of the listing file). */
export interface ListedLine {
  deviceSn: string;
  caSn: string;
  /** "1" active, "0" inactive. */
  status: string;
}

/** What a listing found. */
export interface ListingSummary {
  devices: number;
  pages: number;
}

/**
 * Pages of one listing fetched at once. A listing is a chain of reads waiting behind the
 * revocations queued at the same egress budget (first come, first served across processes): with
 * one page at a time it got about 4 % of the egress while deletes ran; three keep it above the
 * tenth that issue 12 asks for reads, and the deletes keep the rest.
 */
export const LISTING_PAGES_IN_FLIGHT = 3;

/**
 * Pages through a CA's devices in order, up to `maxPages` (default: all), with up to
 * LISTING_PAGES_IN_FLIGHT pages in flight; `onPage` sees each page in page order. The documented
 * stop rule: the first page with fewer than PageSize items (Total is ambiguous); the pages already
 * asked for beyond it (at most LISTING_PAGES_IN_FLIGHT - 1 calls) are dropped unread. Returns
 * whether the listing reached its end.
 */
export async function listPages(
  caller: ApiCaller,
  api: Pick<CertificateApi, 'listDevices'>,
  target: { mqttInstanceId: string; caSn: string; pageSize: number },
  onPage: (devices: ListedDevice[], pageNo: number) => Promise<void>,
  maxPages: number = Number.POSITIVE_INFINITY,
): Promise<{ pages: number; complete: boolean }> {
  const fetch = (pageNo: number) => caller.call('ListDeviceCertificateByCaSn', `ListDeviceCertificateByCaSn ${target.caSn} page ${pageNo}`, () => api.listDevices(target.mqttInstanceId, target.caSn, pageNo, target.pageSize));
  const inFlight = new Map<number, Promise<{ devices: ListedDevice[] }>>();
  let requested = 0;
  // One page first: a CA that fits in one page costs one call; after a full page, several at once.
  let window = 1;
  const fill = () => {
    while (inFlight.size < window && requested < maxPages) {
      requested += 1;
      const pending = fetch(requested);
      // Pages past the end are dropped; their failures must not surface as unhandled.
      pending.catch(() => undefined);
      inFlight.set(requested, pending);
    }
  };
  try {
    for (let pageNo = 1; pageNo <= maxPages; pageNo += 1) {
      fill();
      const page = await (inFlight.get(pageNo) as Promise<{ devices: ListedDevice[] }>);
      inFlight.delete(pageNo);
      await onPage(page.devices, pageNo);
      if (page.devices.length < target.pageSize) return { pages: pageNo, complete: true };
      window = LISTING_PAGES_IN_FLIGHT;
    }
    return { pages: maxPages, complete: false };
  } finally {
    await Promise.allSettled(inFlight.values());
  }
}

/**
 * Lists the CA's devices into `file`; `onPage` is told the running count. With `snapshot`, every
 * page also goes into that existence snapshot, which is marked complete when the listing is.
 */
export async function listCaDevices(
  caller: ApiCaller,
  api: Pick<CertificateApi, 'listDevices'>,
  target: { mqttInstanceId: string; caSn: string; pageSize: number },
  file: string,
  onPage?: (listed: number, pageNo: number) => void,
  snapshot?: SnapshotWriter,
): Promise<ListingSummary> {
  const out = createWriteStream(file);
  let listed = 0;
  let pages: number;
  try {
    ({ pages } = await listPages(caller, api, target, async (devices, pageNo) => {
      for (const device of devices) {
        const line: ListedLine = { deviceSn: device.deviceSn, caSn: device.caSn || target.caSn, status: device.status };
        if (!out.write(`${JSON.stringify(line)}\n`)) await once(out, 'drain');
      }
      listed += devices.length;
      await snapshot?.addPage(devices.map((device) => device.deviceSn));
      onPage?.(listed, pageNo);
    }));
    await snapshot?.complete();
  } finally {
    out.end();
    await once(out, 'close');
  }
  return { devices: listed, pages };
}

/** Reads a listing file back, with each device's 1-based position. */
export async function* readListing(file: string): AsyncGenerator<ListedLine & { position: number }> {
  let position = 0;
  for await (const text of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    if (text === '') continue;
    position += 1;
    yield { ...(JSON.parse(text) as ListedLine), position };
  }
}
