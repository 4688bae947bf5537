/**
 * Lists every device certificate under a CA into a file (one JSON object per line), page by
 * page through the rate budgets. The file keeps memory flat for a million devices, and nothing
 * is changed until the listing is complete: revoking while paging would shift later pages and
 * skip devices.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { CertificateApi } from '../cloud/certificate-api.js';
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
    for (let pageNo = 1; ; pageNo += 1) {
      const page = await caller.call('ListDeviceCertificateByCaSn', `ListDeviceCertificateByCaSn page ${pageNo}`, () => api.listDevices(target.mqttInstanceId, target.caSn, pageNo, target.pageSize));
      pages = pageNo;
      for (const device of page.devices) {
        const line: ListedLine = { deviceSn: device.deviceSn, caSn: device.caSn || target.caSn, status: device.status };
        if (!out.write(`${JSON.stringify(line)}\n`)) await once(out, 'drain');
      }
      listed += page.devices.length;
      await snapshot?.addPage(page.devices.map((device) => device.deviceSn));
      onPage?.(listed, pageNo);
      // The documented stop rule: the first page with fewer than PageSize items (Total is ambiguous).
      if (page.devices.length < target.pageSize) break;
    }
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
