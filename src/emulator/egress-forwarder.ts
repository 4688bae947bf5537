/**
 * A TCP forwarder that gives the connections through it another source address: it listens on
 * `host:port` and opens each outgoing connection to the target from `localAddress`. On one
 * machine, every address of 127.0.0.0/8 is local, so forwarders from 127.0.0.2, 127.0.0.3, …
 * let benchmarks and tests put worker groups behind different "egress IPs", which the
 * emulator's per source IP limit counts apart, without touching the workers' code.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

/** What `EgressForwarder` needs. */
export interface EgressForwarderOptions {
  /** Interface to listen on. */
  host: string;
  /** Port to listen on; 0 picks a free one. */
  port: number;
  /** Where every connection goes (the emulator's host). */
  targetHost: string;
  targetPort: number;
  /** Source address of the outgoing connections, e.g. "127.0.0.2". */
  localAddress: string;
}

/** Defaults of the options that have one. */
export const DEFAULT_EGRESS_FORWARDER_OPTIONS: Readonly<Pick<EgressForwarderOptions, 'host' | 'port'>> = Object.freeze({
  host: '127.0.0.1',
  port: 0,
});

/** Passes a reset on as a reset, so a client sees the emulator's dropped connection as one. */
function resetIfOpen(socket: Socket): void {
  if (!socket.destroyed) socket.resetAndDestroy();
}

/** A running forwarder; `start` it, use `endpoint`, then `close` it. */
export class EgressForwarder {
  private readonly options: EgressForwarderOptions;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private boundPort = 0;
  private closing: Promise<void> | undefined;

  constructor(options: Partial<EgressForwarderOptions> & Pick<EgressForwarderOptions, 'targetHost' | 'targetPort' | 'localAddress'>) {
    this.options = { ...DEFAULT_EGRESS_FORWARDER_OPTIONS, ...options };
    this.server = createServer((inbound) => this.forward(inbound));
  }

  /** Creates a forwarder and resolves once it listens. */
  static async start(options: ConstructorParameters<typeof EgressForwarder>[0]): Promise<EgressForwarder> {
    const forwarder = new EgressForwarder(options);
    await forwarder.listen();
    return forwarder;
  }

  /** Starts listening; resolves once it does (rejects with the listen error, e.g. EADDRINUSE). */
  async listen(): Promise<void> {
    this.server.listen(this.options.port, this.options.host);
    await Promise.race([
      once(this.server, 'listening'),
      once(this.server, 'error').then(([error]) => {
        throw error instanceof Error ? error : new Error(String(error));
      }),
    ]);
    const address = this.server.address();
    this.boundPort = address !== null && typeof address === 'object' ? address.port : this.options.port;
  }

  /** The port it listens on (known once listening). */
  get port(): number {
    return this.boundPort;
  }

  /** `host:port` to point a client at (what the SDK's `endpoint` option takes). */
  get endpoint(): string {
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `${host}:${this.boundPort}`;
  }

  /** The source address of its outgoing connections. */
  get localAddress(): string {
    return this.options.localAddress;
  }

  /** Connections open now, counting both sides of each. */
  get openSockets(): number {
    return this.sockets.size;
  }

  /** Stops listening and destroys every open connection; idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (!this.server.listening) return;
    const closed = once(this.server, 'close');
    this.server.close();
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private forward(inbound: Socket): void {
    const { targetHost, targetPort, localAddress } = this.options;
    // Writes before the outgoing connection is up are buffered by the socket itself.
    const outbound = connect({ host: targetHost, port: targetPort, localAddress });
    this.track(inbound);
    this.track(outbound);
    // Ends travel through the pipes (a FIN becomes a FIN once what was written is flushed).
    inbound.pipe(outbound);
    outbound.pipe(inbound);
    inbound.on('error', () => resetIfOpen(outbound));
    outbound.on('error', () => resetIfOpen(inbound));
    // A side closed without an end (destroyed) must not leave the other open forever.
    inbound.once('close', () => {
      if (!outbound.writableEnded) resetIfOpen(outbound);
    });
    outbound.once('close', () => {
      if (!inbound.writableEnded) resetIfOpen(inbound);
    });
  }
}
