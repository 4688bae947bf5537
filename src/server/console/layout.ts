/**
 * The page shell of the console: head (stylesheets and the one script, all from this server),
 * the header with navigation and who is signed in, the live-connection notice, and `main`.
 * No inline script or style anywhere: the CSP allows only this origin's files.
 */
import type { AdminIdentity } from '../admin-tokens.js';
import { html, type SafeHtml } from './html.js';

/** Where the console's own files and the vendored libraries are served. */
export const ASSETS_PATH = '/console/assets';

/**
 * The console's Content-Security-Policy: scripts, styles, and connections (the event stream) from
 * this origin only; no inline script, no inline style, no framing, forms only to this origin.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** What the shell needs. */
export interface PageOptions {
  title: string;
  /** Null on the sign-in page. */
  identity: AdminIdentity | null;
  /** Which navigation entry is the current page. */
  current: 'overview' | 'new' | 'batch' | 'login' | 'other';
  /** The event stream the page follows (absent: a static page). */
  stream?: string;
}

function navLink(href: string, label: string, active: boolean): SafeHtml {
  return active ? html`<a href="${href}" aria-current="page">${label}</a>` : html`<a href="${href}">${label}</a>`;
}

/** A whole page. */
export function renderPage(options: PageOptions, main: SafeHtml): string {
  const { identity } = options;
  const header =
    identity === null
      ? html`<header class="top"><span class="brand">revoker</span></header>`
      : html`<header class="top">
<a class="brand" href="/console">revoker</a>
<nav aria-label="Console">
${navLink('/console', 'Overview', options.current === 'overview')}
${identity.role === 'operate' ? navLink('/console/new', 'Start a revocation', options.current === 'new') : null}
<a href="/admin/queues">Queues</a>
</nav>
<div class="who">
${options.stream !== undefined ? html`<span id="live" class="live" data-state="connecting">connecting…</span>` : null}
<span>Signed in as <strong>${identity.name}</strong> (${identity.role})</span>
<form method="post" action="/console/logout" class="inline"><button type="submit" class="link">Sign out</button></form>
</div>
</header>`;
  return `<!DOCTYPE html>
${html`<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><meta name="referrer" content="no-referrer"><link rel="icon" href="data:,">
<title>${options.title} — revoker console</title>
<link rel="stylesheet" href="${ASSETS_PATH}/vendor/uPlot.min.css">
<link rel="stylesheet" href="${ASSETS_PATH}/console.css">
<script type="module" src="${ASSETS_PATH}/console.js"></script>
</head>
<body${options.stream !== undefined ? html` data-stream="${options.stream}"` : null}>
<a class="skip" href="#main">Skip to content</a>
${header}
<div id="connection-lost" class="banner banner-warn" role="alert" hidden>Connection lost, reconnecting… The figures below are from before the connection dropped.</div>
<main id="main" tabindex="-1">
${main}
</main>
<dialog id="confirm-dialog" aria-labelledby="confirm-title"></dialog>
</body></html>`.value}
`;
}
