/**
 * The soak's emulator process: `revoker emulator` with the same flags, plus its call log on a
 * second port (`GET /calls[?devices=SN,SN]`, one JSON `CallRecord` per line), which `revoker emulator` does not
 * serve. The soak's invariants need every call: which device each delete removed, by which
 * request id, and which answers carried a fault. A process of its own, like the real API: its
 * clock and event loop are not the soak's.
 *
 *   node --import tsx scripts/bench/soak-emulator.ts emulator --port 0 [revoker emulator flags]
 *
 * Prints `{"callLog":"http://127.0.0.1:PORT"}` once both listen; SIGTERM stops both.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Command } from 'commander';
import { registerEmulatorCommand, runEmulatorCommand, type EmulatorCommandFlags } from '../../src/emulator/emulator-command.js';

const program = new Command('soak-emulator');
// The flags are `revoker emulator`'s; only the action differs: it also serves the call log.
registerEmulatorCommand(program).action(async (flags: EmulatorCommandFlags) => {
  const handle = await runEmulatorCommand(flags);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://soak');
    if (req.method !== 'GET' || url.pathname !== '/calls') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    // `?devices=SN,SN`: only the calls naming those devices.
    const only = url.searchParams.get('devices');
    const wanted = only === null ? null : new Set(only.split(','));
    const calls = wanted === null ? handle.calls() : handle.calls().filter((call) => wanted.has(call.deviceSn));
    // In slices, so that a long log does not build one huge string.
    for (let start = 0; start < calls.length; start += 1_000) {
      res.write(calls.slice(start, start + 1_000).map((call) => `${JSON.stringify(call)}\n`).join(''));
    }
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ callLog: `http://127.0.0.1:${port}` })}\n`);
  const stop = (): void => {
    server.close();
    server.closeAllConnections();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
});

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`soak-emulator: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
