/**
 * The console's server-sent events. Every page that shows live figures holds one `EventSource`
 * on a topic (`overview`, `batch:<id>`, `draft:<id>`). After each sample (once a second) the hub
 * renders each watched topic once and writes to its viewers only the events whose content changed
 * for them, plus a `tick` with the time that tells the page the connection is alive.
 *
 * The cost is one rendering per topic per second, whatever the number of viewers; a viewer that
 * cannot keep up (its socket buffer is full) is skipped until it drains, and then gets the latest
 * state (every event carries a whole fragment, never a delta).
 */
import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** Events of one topic at one moment: name → data (HTML of a fragment, or JSON). */
export type TopicEvents = Record<string, string>;

/** Renders a topic's events; `first`: for a viewer that just connected (it may want history). */
export type TopicRenderer = (topic: string, first: boolean) => Promise<TopicEvents | null>;

interface Viewer {
  raw: ServerResponse;
  topic: string;
  sent: Map<string, string>;
  blocked: boolean;
}

/** Options of `LiveHub`. */
export interface LiveHubOptions {
  /** Most streams open at once (each holds a socket); more are answered 503. */
  maxViewers: number;
  /** What the page's EventSource waits before reconnecting (the `retry:` field). */
  retryMs: number;
}

/** Defaults of `LiveHubOptions`. */
export const LIVE_HUB_DEFAULTS: LiveHubOptions = { maxViewers: 200, retryMs: 1_000 };

/** One SSE event as text: `event:` line, one `data:` line per line of data, blank line. */
export function sseEvent(name: string, data: string): string {
  return `event: ${name}\n${data
    .split(/\r\n|\r|\n/)
    .map((line) => `data: ${line}`)
    .join('\n')}\n\n`;
}

/** The viewers and their topics. */
export class LiveHub {
  private readonly options: LiveHubOptions;
  private readonly viewers = new Set<Viewer>();
  private broadcasting = false;

  constructor(
    private readonly render: TopicRenderer,
    private readonly onError: (error: unknown) => void,
    options: Partial<LiveHubOptions> = {},
  ) {
    this.options = { ...LIVE_HUB_DEFAULTS, ...options };
  }

  /** How many streams are open. */
  get size(): number {
    return this.viewers.size;
  }

  /** Topics someone watches. */
  topics(): Set<string> {
    return new Set([...this.viewers].map((viewer) => viewer.topic));
  }

  /** Opens a stream on `topic` for this request (the reply is taken over). */
  async open(request: FastifyRequest, reply: FastifyReply, topic: string): Promise<void> {
    if (this.viewers.size >= this.options.maxViewers) {
      await reply.code(503).header('retry-after', '5').type('application/json; charset=utf-8').send({ error: { code: 'too_many_streams', message: `${this.viewers.size} live views are open on this server; try again shortly` } });
      return;
    }
    const first = await this.render(topic, true);
    if (first === null) {
      await reply.code(404).type('application/json; charset=utf-8').send({ error: { code: 'not_found', message: 'nothing to follow here' } });
      return;
    }
    reply.hijack();
    const raw = reply.raw;
    // The security headers the console's onSend hook adds do not run on a hijacked reply: set them here.
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      'x-content-type-options': 'nosniff',
      connection: 'keep-alive',
    });
    const viewer: Viewer = { raw, topic, sent: new Map(), blocked: false };
    this.viewers.add(viewer);
    const drop = (): void => {
      this.viewers.delete(viewer);
    };
    request.raw.on('close', drop);
    raw.on('close', drop);
    raw.on('error', drop);
    raw.on('drain', () => {
      viewer.blocked = false;
    });
    raw.write(`retry: ${this.options.retryMs}\n\n`);
    this.deliver(viewer, first);
  }

  /** Renders every watched topic once and writes what changed to each of its viewers. */
  async broadcast(): Promise<void> {
    if (this.broadcasting || this.viewers.size === 0) return;
    this.broadcasting = true;
    try {
      const byTopic = new Map<string, Viewer[]>();
      for (const viewer of this.viewers) byTopic.set(viewer.topic, [...(byTopic.get(viewer.topic) ?? []), viewer]);
      for (const [topic, viewers] of byTopic) {
        let events: TopicEvents | null;
        try {
          events = await this.render(topic, false);
        } catch (error) {
          this.onError(error);
          continue;
        }
        for (const viewer of viewers) {
          if (events === null) {
            // The thing watched is gone (an expired batch, a discarded draft): tell the page, end.
            viewer.raw.end(sseEvent('gone', 'gone'));
            this.viewers.delete(viewer);
          } else this.deliver(viewer, events);
        }
      }
    } finally {
      this.broadcasting = false;
    }
  }

  private deliver(viewer: Viewer, events: TopicEvents): void {
    if (viewer.blocked || viewer.raw.writableEnded) return;
    let text = '';
    const changed: [string, string][] = [];
    for (const [name, data] of Object.entries(events)) {
      if (viewer.sent.get(name) === data) continue;
      text += sseEvent(name, data);
      changed.push([name, data]);
    }
    text += sseEvent('tick', String(Date.now()));
    for (const [name, data] of changed) viewer.sent.set(name, data);
    if (!viewer.raw.write(text)) viewer.blocked = true;
  }

  /** Ends every stream (the server is stopping, or a test cuts the connection). */
  closeAll(): void {
    for (const viewer of this.viewers) viewer.raw.end();
    this.viewers.clear();
  }
}
