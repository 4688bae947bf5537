/**
 * Loaded into the benchmark's revoker processes (`NODE_OPTIONS=--import=…`) when BENCH_SEND_TRACE
 * names a directory: records when each API request of the process was handed to the operating
 * system, and writes the times (ms since the epoch, one per line) to `<dir>/<pid>.txt` when the
 * process exits.
 *
 * The emulator counts the busiest second on arrival, after the forwarders and its own event loop,
 * which share this host's cores with the workers: a stall there bunches calls that left spaced.
 * With these times the benchmark also counts the busiest second at the senders, which is what the
 * budgets govern (docs/BENCHMARKS.md says which is which). Requests to the emulator's control
 * routes (`/_emulator/…`) are not API calls and are left out.
 */
import { subscribe } from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { join } from 'node:path';

const dir = process.env.BENCH_SEND_TRACE;
if (dir !== undefined && dir !== '') {
  const apiHost = (process.env.MQTT_API_ENDPOINT ?? '').split(':')[0] ?? '';
  const sent: number[] = [];
  subscribe('http.client.request.start', (message) => {
    const request = (message as { request: ClientRequest }).request;
    if ((apiHost !== '' && request.host !== apiHost) || request.path.startsWith('/_emulator/')) return;
    request.once('finish', () => sent.push(performance.timeOrigin + performance.now()));
  });
  process.on('exit', () => writeFileSync(join(dir, `${process.pid}.txt`), sent.map((at) => at.toFixed(2)).join('\n')));
}
