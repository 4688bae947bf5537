/**
 * One egress forwarder in a process of its own, for the benchmark's egress groups: a NAT gateway
 * does not share an event loop with the producer that fills the queue, and a forwarder in the
 * benchmark's own process stalled with it and bunched the calls it passed on.
 *
 *   node forwarder.js <targetHost:targetPort> <localAddress>
 *
 * Prints one JSON line, {"endpoint":"127.0.0.1:<port>"}, once it listens; stops on SIGTERM.
 */
import { EgressForwarder } from '../../src/emulator/index.js';

async function main(): Promise<void> {
  const [target = '', localAddress = ''] = process.argv.slice(2);
  const [targetHost = '', targetPort = ''] = target.split(':');
  if (targetHost === '' || !/^\d+$/.test(targetPort) || localAddress === '') throw new Error('usage: forwarder <targetHost:targetPort> <localAddress>');
  const forwarder = await EgressForwarder.start({ targetHost, targetPort: Number(targetPort), localAddress });
  process.stdout.write(`${JSON.stringify({ endpoint: forwarder.endpoint })}\n`);
  process.once('SIGTERM', () => {
    void forwarder.close().then(() => process.exit(0));
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`forwarder failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
