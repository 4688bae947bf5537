// The incident console's one script (served from this origin; the CSP allows nothing inline).
//
// - Follows the page's event stream (body[data-stream]) and replaces each live fragment
//   ([data-live=NAME]) with the server's HTML for event NAME. Idiomorph morphs it in place, so
//   a link or button that has the keyboard focus keeps it while the figures change.
// - Shows "Connection lost, reconnecting" when the stream drops or goes quiet for 5 s, and
//   reconnects by itself (EventSource retries; a closed source is reopened with backoff).
// - Draws one uPlot chart per rate budget from the `history` and `rates` events.
// - Opens steering confirmations (links [data-confirm], forms [data-confirm-form]) in a modal
//   <dialog>; without this script they are plain pages, which work the same.
import { Idiomorph } from './vendor/idiomorph.esm.js';
import uPlot from './vendor/uPlot.esm.js';

const QUIET_MS = 5000;
const WINDOW_SECONDS = 600;

const liveIndicator = document.getElementById('live');
const lostBanner = document.getElementById('connection-lost');
const dialog = document.getElementById('confirm-dialog');

function setLive(state) {
  if (liveIndicator) {
    liveIndicator.dataset.state = state;
    liveIndicator.textContent = state === 'live' ? 'live' : state === 'lost' ? 'reconnecting…' : state === 'ended' ? 'signed out' : 'connecting…';
  }
  if (lostBanner) lostBanner.hidden = state !== 'lost';
}

// What the reader opened stays open: the server's HTML never carries a <details open>.
const keepOpen = {
  beforeAttributeUpdated: (attribute, node, mutation) => !(attribute === 'open' && mutation === 'remove' && node.tagName === 'DETAILS'),
};

function swap(name, html) {
  for (const element of document.querySelectorAll(`[data-live="${name}"]`)) {
    // ignoreActiveValue: a field being typed in (none is live today) keeps what was typed.
    Idiomorph.morph(element, html, { morphStyle: 'innerHTML', ignoreActiveValue: true, callbacks: keepOpen });
  }
}

// ---- Charts -----------------------------------------------------------------------------------

const chartsContainer = document.querySelector('[data-charts]');

function budgetTitle(name) {
  if (name.startsWith('egress:')) return `egress group ${name.slice('egress:'.length)}`;
  return `account · ${name.slice(name.lastIndexOf(':') + 1)}`;
}

class Charts {
  constructor(container) {
    this.container = container;
    this.times = [];
    this.series = new Map(); // name -> { calls, limit, adaptive, throttled, refused }
    this.plots = new Map();
    this.shown = '';
    window.addEventListener('resize', () => this.resize());
  }

  reset(history) {
    this.times = [];
    this.series.clear();
    for (const sample of history) this.add(sample);
    this.render(true);
  }

  push(sample) {
    this.add(sample);
    if (this.times.length > WINDOW_SECONDS) {
      this.times.shift();
      for (const data of this.series.values()) for (const key of Object.keys(data)) data[key].shift();
    }
    this.render(false);
  }

  add(sample) {
    const index = this.times.length;
    this.times.push(sample.t / 1000);
    for (const [name, calls, limit, adaptive, throttled, refused] of sample.b) {
      let data = this.series.get(name);
      if (!data) {
        data = { calls: [], limit: [], adaptive: [], throttled: [], refused: [] };
        for (let i = 0; i < index; i += 1) for (const key of Object.keys(data)) data[key].push(null);
        this.series.set(name, data);
      }
      data.calls.push(calls);
      data.limit.push(limit);
      data.adaptive.push(adaptive);
      data.throttled.push(throttled ? calls : null);
      data.refused.push(refused ? limit : null);
    }
    for (const data of this.series.values()) for (const key of Object.keys(data)) if (data[key].length < this.times.length) data[key].push(null);
  }

  // Budgets worth a chart: every egress group, and account operations that made calls in the window.
  visible() {
    const names = [];
    for (const [name, data] of this.series) {
      if (name.startsWith('egress:') || data.calls.some((value) => value > 0)) names.push(name);
    }
    return names.sort((a, b) => (a.startsWith('egress:') === b.startsWith('egress:') ? a.localeCompare(b) : a.startsWith('egress:') ? 1 : -1));
  }

  width() {
    const available = this.container.clientWidth || 600;
    const columns = available > 900 ? 2 : 1;
    return Math.floor(available / columns) - 24;
  }

  render(rebuild) {
    const names = this.visible();
    const key = names.join('\n');
    if (rebuild || key !== this.shown) {
      for (const plot of this.plots.values()) plot.destroy();
      this.plots.clear();
      this.container.replaceChildren();
      if (names.length === 0) {
        const note = document.createElement('p');
        note.className = 'muted';
        note.textContent = this.times.length === 0 ? 'Waiting for the first samples…' : 'No calls in the last 10 minutes.';
        this.container.append(note);
      }
      for (const name of names) this.plots.set(name, this.create(name));
      this.shown = key;
      return;
    }
    for (const [name, plot] of this.plots) plot.setData(this.dataOf(name));
  }

  dataOf(name) {
    const data = this.series.get(name);
    return [this.times, data.calls, data.limit, data.adaptive, data.throttled, data.refused];
  }

  create(name) {
    const figure = document.createElement('figure');
    figure.className = 'chart';
    const caption = document.createElement('figcaption');
    caption.textContent = budgetTitle(name);
    figure.append(caption);
    this.container.append(figure);
    const options = {
      width: this.width(),
      height: 180,
      scales: {
        x: { time: true, range: (_u, _min, max) => [max - WINDOW_SECONDS, max] },
        y: { range: (_u, _min, max) => [0, Math.max(10, max * 1.1)] },
      },
      axes: [{}, { label: 'calls/s', size: 56 }],
      legend: { live: false },
      cursor: { show: false },
      series: [
        {},
        { label: 'calls/s', stroke: '#1f6feb', width: 1.5, points: { show: false } },
        { label: 'budget', stroke: '#57606a', width: 1, dash: [6, 4], points: { show: false } },
        { label: 'adaptive rate', stroke: '#9a6700', width: 1.5, dash: [2, 3], points: { show: false } },
        { label: 'throttled', stroke: '#cf222e', paths: () => null, points: { show: true, size: 6, fill: '#cf222e', stroke: '#cf222e' } },
        { label: 'paused (refused)', stroke: 'rgba(0,0,0,0)', fill: 'rgba(110,119,129,0.25)', paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } },
      ],
    };
    const plot = new uPlot(options, this.dataOf(name), figure);
    plot.root.setAttribute('aria-hidden', 'true');
    caption.id = `chart-${name.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    figure.setAttribute('aria-labelledby', caption.id);
    return plot;
  }

  resize() {
    const width = this.width();
    for (const plot of this.plots.values()) plot.setSize({ width, height: 180 });
  }
}

const charts = chartsContainer ? new Charts(chartsContainer) : null;

// ---- The event stream -------------------------------------------------------------------------

const streamUrl = document.body.dataset.stream;
let source = null;
let lastMessageAt = 0;
let retryMs = 1000;
let reconnectTimer = null;
let leaving = false;

function liveNames() {
  return [...new Set([...document.querySelectorAll('[data-live]')].map((element) => element.dataset.live))];
}

function heard() {
  lastMessageAt = Date.now();
  retryMs = 1000;
  setLive('live');
}

async function scheduleReconnect() {
  if (leaving || reconnectTimer !== null) return;
  setLive('lost');
  // A session that ended (expired, signed out elsewhere) would retry for ever: ask once.
  try {
    const probe = await fetch(streamUrl, { method: 'GET', redirect: 'manual', headers: { accept: 'application/json' }, cache: 'no-store' });
    if (probe.status === 401) {
      setLive('ended');
      if (lostBanner) {
        lostBanner.hidden = false;
        lostBanner.textContent = 'Your session has ended. Sign in again to see live figures.';
        const link = document.createElement('a');
        link.href = '/console/login';
        link.textContent = ' Sign in';
        lostBanner.append(link);
      }
      return;
    }
    await probe.body?.cancel();
  } catch {
    // The server is not answering at all: keep trying.
  }
  reconnectTimer = setTimeout(() => {
    reconnectTimer = null;
    connect();
  }, retryMs);
  retryMs = Math.min(retryMs * 2, 15000);
}

function connect() {
  if (!streamUrl || leaving) return;
  if (source) source.close();
  source = new EventSource(streamUrl);
  source.addEventListener('open', heard);
  source.addEventListener('tick', heard);
  source.addEventListener('error', () => {
    if (leaving) return;
    setLive('lost');
    // CONNECTING: the browser retries by itself (after the server's `retry:`); CLOSED: we do.
    if (source.readyState === EventSource.CLOSED) void scheduleReconnect();
  });
  for (const name of liveNames()) source.addEventListener(name, (event) => swap(name, event.data));
  source.addEventListener('history', (event) => charts?.reset(JSON.parse(event.data)));
  source.addEventListener('rates', (event) => charts?.push(JSON.parse(event.data)));
  source.addEventListener('gone', () => {
    source.close();
    if (lostBanner) {
      lostBanner.hidden = false;
      lostBanner.textContent = 'This no longer exists on the server (expired or discarded).';
    }
  });
}

if (streamUrl) {
  connect();
  // A stream that is open but silent (a proxy holding it, a stalled server) is as good as lost.
  setInterval(() => {
    if (leaving || !source || source.readyState !== EventSource.OPEN) return;
    if (Date.now() - lastMessageAt > QUIET_MS) {
      source.close();
      void scheduleReconnect();
    }
  }, 1000);
  window.addEventListener('pagehide', () => {
    leaving = true;
    source?.close();
  });
}

// ---- Confirmation dialogs ---------------------------------------------------------------------

let opener = null;

async function openConfirmation(url) {
  let response;
  try {
    response = await fetch(url, { headers: { 'x-console-fragment': '1' }, credentials: 'same-origin', cache: 'no-store' });
  } catch {
    window.location.assign(url);
    return;
  }
  if (!response.ok) {
    window.location.assign(url);
    return;
  }
  const text = await response.text();
  const template = document.createElement('template');
  template.innerHTML = text;
  dialog.replaceChildren(template.content);
  dialog.showModal();
  const first = dialog.querySelector('[autofocus]') ?? dialog.querySelector('a, button, input, select');
  first?.focus();
}

if (dialog) {
  document.addEventListener('click', (event) => {
    if (!(event.target instanceof Element)) return;
    const close = event.target.closest('[data-dialog-close]');
    if (close && dialog.contains(close)) {
      event.preventDefault();
      dialog.close();
      return;
    }
    const link = event.target.closest('a[data-confirm]');
    if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    opener = link.id;
    void openConfirmation(link.href);
  });
  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute('data-confirm-form')) return;
    event.preventDefault();
    opener = event.submitter?.id ?? null;
    const url = new URL(form.action);
    for (const [name, value] of new FormData(form)) url.searchParams.set(name, String(value));
    void openConfirmation(url.toString());
  });
  dialog.addEventListener('close', () => {
    dialog.replaceChildren();
    // Back to the control that opened it (it may have been re-rendered: found by id).
    const target = opener ? document.getElementById(opener) : null;
    (target ?? document.getElementById('main'))?.focus();
  });
}
