/**
 * The batch page: summary (live), who started it and why, the device table (paged, searchable,
 * filterable), dead letters with their history, the audit trail, the report, the completion
 * events; and the confirmation of a steering action.
 */
import type { Batch } from '../../batches/batch.js';
import { formatDuration } from '../../cli/plan.js';
import { OUTCOMES } from '../../results/result-record.js';
import type { AdminIdentity } from '../admin-tokens.js';
import type { BatchDetails } from './batch-details.js';
import { DEVICE_FILTERS, type DeviceFilter, type DevicePage, type DeviceRow } from './batch-devices.js';
import type { BatchProgress } from './console-sampler.js';
import { count, html, percent, type SafeHtml, when } from './html.js';
import { OUTCOME_LABELS, progressBar, rateText, stateBadge } from './overview-view.js';
import { availableActions, type Confirmation } from './steering.js';

const ACTION_LABELS: Record<string, string> = { pause: 'Pause…', resume: 'Resume…', cancel: 'Cancel…', priority: 'Change priority…', redrive: 'Redrive dead letters…' };

function batchPath(batch: Batch): string {
  return `/console/batches/${batch.id}`;
}

/** The steering controls: links to confirmations (opened as dialogs by console.js). */
function controls(batch: Batch, identity: AdminIdentity): SafeHtml | null {
  if (identity.role !== 'operate') return null;
  const actions = availableActions(batch);
  if (actions.length === 0) return html`<p class="muted">Nothing to steer: the batch is ${batch.state}.</p>`;
  return html`<div class="controls" role="group" aria-label="Steer this batch">
${actions.map((action) => {
  if (action === 'priority') {
    return html`<form method="get" action="${batchPath(batch)}/confirm/priority" class="inline" data-confirm-form>
<label for="priority-choice">Priority</label>
<select id="priority-choice" name="priority">${(['urgent', 'normal', 'bulk'] as const).map((priority) => html`<option value="${priority}"${priority === batch.priority ? html` selected` : null}>${priority}</option>`)}</select>
<button type="submit" id="steer-priority">Change priority…</button></form>`;
  }
  return html`<a class="button${action === 'cancel' ? ' danger' : ''}" id="steer-${action}" href="${batchPath(batch)}/confirm/${action}" data-confirm>${ACTION_LABELS[action]}</a>`;
})}
</div>`;
}

/** The live summary of a batch page (the `summary` fragment). */
export function renderSummary(batch: Batch, progress: BatchProgress | null, identity: AdminIdentity, evidence: Record<string, Record<string, number>> | null): SafeHtml {
  const remaining = Math.max(0, batch.accepted - batch.done);
  const rate = progress?.ratePerSecond ?? null;
  const eta = batch.state === 'running' && progress?.etaSeconds != null ? `about ${formatDuration(progress.etaSeconds)}` : batch.state === 'paused' ? 'paused' : batch.finishedAt !== null ? `finished ${when(batch.finishedAt)}` : remaining > 0 ? 'measuring…' : '—';
  return html`<div class="summary">
<p class="status-line">${stateBadge(batch)} <span class="priority priority-${batch.priority}">${batch.priority}</span> ${batch.enqueued ? null : html`<span class="muted">still reading its input</span>`}</p>
${batch.reason !== null && batch.state !== 'completed' ? html`<p class="banner ${batch.state === 'paused' ? 'banner-warn' : 'banner-info'}"><strong>${batch.state === 'paused' ? 'Paused' : batch.state === 'cancelled' ? 'Cancelled' : 'Note'}:</strong> ${batch.reason}</p>` : null}
${batch.inputNote !== null ? html`<p class="banner banner-warn">${batch.inputNote}</p>` : null}
<div class="progress-line">${progressBar(batch, true)}<span class="big-number">${percent(batch.done, batch.accepted)}</span></div>
<p>${count(batch.done)} of ${count(batch.accepted)} devices finished · <strong>${count(remaining)} not yet revoked</strong></p>
<dl class="stats">
<div><dt>Rate</dt><dd>${rateText(rate)}</dd></div>
<div><dt>ETA</dt><dd>${eta}</dd></div>
<div><dt>Rejected rows</dt><dd>${count(batch.rejected)}</dd></div>
<div><dt>Duplicates</dt><dd>${count(batch.duplicates)}</dd></div>
${batch.eventsFailed > 0 ? html`<div><dt>Events undelivered</dt><dd class="danger-text">${count(batch.eventsFailed)}</dd></div>` : null}
</dl>
<table class="outcomes">
<caption>Devices by outcome${evidence === null ? (batch.finishedAt === null ? ' (evidence is counted once the batch has finished)' : ' (counting evidence…)') : ' and evidence'}</caption>
<thead><tr><th scope="col">Outcome</th><th scope="col">Devices</th><th scope="col">Evidence</th></tr></thead>
<tbody>
${OUTCOMES.map(
  (outcome) => html`<tr class="${batch.counts[outcome] === 0 ? 'zero' : ''}"><th scope="row"><span class="count count-${outcome}">${OUTCOME_LABELS[outcome]}</span></th><td class="num">${count(batch.counts[outcome])}</td><td>${evidence?.[outcome] === undefined ? '—' : Object.entries(evidence[outcome]).map(([name, n]) => `${name} ${count(n)}`).join(', ')}</td></tr>`,
)}
<tr><th scope="row"><span class="count count-pending">not finished</span></th><td class="num">${count(remaining)}</td><td>—</td></tr>
</tbody></table>
${controls(batch, identity)}
</div>`;
}

function recordCells(row: DeviceRow): SafeHtml {
  const record = row.record;
  if (record.outcome === 'pending') {
    return html`<td><span class="count count-pending">not finished</span></td><td>—</td><td class="num">—</td><td>—</td><td>—</td>`;
  }
  return html`<td><span class="count count-${record.outcome}">${OUTCOME_LABELS[record.outcome] ?? record.outcome}</span></td><td>${record.evidence ?? '—'}</td><td class="num">${record.attempts}</td><td>${record.errorCode ?? (record.outcome === 'deleted' || record.outcome === 'inactivated' ? 'OK' : '—')}${record.httpStatus !== null ? ` (${record.httpStatus})` : ''}${record.requestId !== null ? html`<div class="sub">${record.requestId}</div>` : null}</td><td>${when(record.finishedAt)}</td>`;
}

/** The query of a device-table view (what the links carry). */
export interface DeviceQuery {
  serial: string | null;
  ca: string | null;
  outcome: DeviceFilter | null;
  /** Unfiltered: rank of the first row. Filtered: where the walk continues. */
  from: string | null;
}

function tableLink(batch: Batch, query: Partial<Record<'serial' | 'ca' | 'outcome' | 'from' | 'cursor', string>>): string {
  const params = new URLSearchParams(Object.entries(query).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ''));
  const text = params.toString();
  return `${batchPath(batch)}${text === '' ? '' : `?${text}`}#devices`;
}

/** The device table section. */
export function renderDevices(batch: Batch, query: DeviceQuery, page: DevicePage | null, searched: DeviceRow[] | null, expected: number | null, problem: string | null, pageSize: number): SafeHtml {
  const rows = searched ?? page?.rows ?? [];
  let pager: SafeHtml | null = null;
  let caption: string;
  if (searched !== null) {
    caption = searched.length === 0 ? `No device ${query.serial ?? ''} in this batch` : `Device ${query.serial ?? ''}`;
  } else if (page !== null && query.outcome !== null) {
    caption = `Devices ${OUTCOME_LABELS[query.outcome] ?? query.outcome}: ${count(expected ?? 0)} in the batch; this page shows ${count(rows.length)}${page.examined > 0 ? ` (${count(page.examined)} devices looked at for it)` : ''}`;
    pager = html`<nav class="pager" aria-label="Pages of devices">
${query.from !== null ? html`<a href="${tableLink(batch, { outcome: query.outcome })}">First page</a>` : null}
${page.next !== null ? html`<a id="devices-next" href="${tableLink(batch, { outcome: query.outcome, from: page.next })}">Next page</a>` : html`<span class="muted">End of the batch</span>`}
</nav>`;
  } else if (page !== null && page.mode === 'order') {
    const from = page.from ?? 0;
    caption = page.ordered === 0 ? 'No devices yet' : `Devices ${count(from + 1)}–${count(from + rows.length)} of ${count(page.ordered)}, in input order`;
    const last = Math.max(0, Math.floor((page.ordered - 1) / pageSize) * pageSize);
    pager = html`<nav class="pager" aria-label="Pages of devices">
${from > 0 ? html`<a href="${tableLink(batch, {})}">First</a> <a href="${tableLink(batch, { from: String(Math.max(0, from - pageSize)) })}">Previous</a>` : null}
${page.next !== null ? html`<a id="devices-next" href="${tableLink(batch, { from: page.next })}">Next</a> <a href="${tableLink(batch, { from: String(last) })}">Last</a>` : null}
</nav>`;
  } else {
    caption = `Devices (this batch has no recorded input order: shown in storage order)`;
    pager = page?.next !== null && page?.next !== undefined ? html`<nav class="pager" aria-label="Pages of devices"><a href="${tableLink(batch, {})}">First</a> <a id="devices-next" href="${tableLink(batch, { cursor: page.next })}">Next</a></nav>` : null;
  }
  return html`<section id="devices" aria-labelledby="devices-h" class="panel">
<h2 id="devices-h">Devices</h2>
<div class="table-tools">
<form method="get" action="${batchPath(batch)}#devices" role="search" class="inline" aria-label="Search a device by serial">
<label for="serial">Serial</label><input id="serial" name="serial" value="${query.serial ?? ''}" autocomplete="off" spellcheck="false" size="28">
<label for="ca">CA <span class="muted">(if the batch spans several)</span></label><input id="ca" name="ca" value="${query.ca ?? ''}" autocomplete="off" spellcheck="false" size="18">
<button type="submit">Search</button>
</form>
<form method="get" action="${batchPath(batch)}#devices" class="inline" aria-label="Filter devices by outcome">
<label for="outcome">Outcome</label>
<select id="outcome" name="outcome"><option value="">all devices</option>${DEVICE_FILTERS.map((filter) => html`<option value="${filter}"${filter === query.outcome ? html` selected` : null}>${OUTCOME_LABELS[filter]}</option>`)}</select>
<button type="submit">Show</button>
</form>
${query.serial !== null || query.outcome !== null ? html`<a href="${tableLink(batch, {})}">All devices</a>` : null}
</div>
${problem !== null ? html`<p class="banner banner-warn" role="alert">${problem}</p>` : null}
<table class="devices">
<caption>${caption}</caption>
<thead><tr><th scope="col">Line</th><th scope="col">Device</th><th scope="col">CA · instance</th><th scope="col">Outcome</th><th scope="col">Evidence</th><th scope="col">Attempts</th><th scope="col">Answer · RequestId</th><th scope="col">Finished</th></tr></thead>
<tbody>
${rows.map((row) => html`<tr><td class="num">${row.line ?? '—'}</td><th scope="row" class="mono">${row.record.deviceSn}</th><td class="mono">${row.record.caSn}<div class="sub">${row.record.mqttInstanceId}</div></td>${recordCells(row)}</tr>`)}
</tbody></table>
${pager}
</section>`;
}

/** The non-live sections: who and why, dead letters, audit, report, events (the `details` fragment). */
export function renderDetails(batch: Batch, details: BatchDetails, signing: { configured: boolean }): SafeHtml {
  const facts = details.facts;
  const input = batch.source === 'webhook' ? html`webhook from <code>${batch.createdBy.replace(/^webhook:/, '')}</code>` : batch.source === 'ca_listing' ? 'a listing of a CA' : 'a CSV file';
  const finished = batch.finishedAt !== null;
  const signedNote = !signing.configured ? 'unsigned: this server has no REPORT_SIGNING_KEY_FILE' : finished ? 'signed with the server\'s Ed25519 key' : 'signed once the batch has finished; until then unsigned';
  return html`<section aria-labelledby="who-h" class="panel">
<h2 id="who-h">Who started it, and why</h2>
<dl class="facts">
<div><dt>Started by</dt><dd>${batch.createdBy}</dd></div>
<div><dt>Started</dt><dd>${when(batch.createdAt)}</dd></div>
<div><dt>Finished</dt><dd>${when(batch.finishedAt)}</dd></div>
<div><dt>Action</dt><dd>${batch.action}</dd></div>
<div><dt>Input</dt><dd>${input}${facts.inputFile !== null ? html` <code>${facts.inputFile}</code>` : null}</dd></div>
<div><dt>Input SHA-256</dt><dd class="mono">${facts.inputSha256 ?? '—'}</dd></div>
<div><dt>Reason</dt><dd>${facts.reason ?? '—'}${facts.reasonCode !== null ? html` <span class="muted">(${facts.reasonCode})</span>` : null}</dd></div>
<div><dt>Command</dt><dd class="mono">${facts.command ?? '—'}</dd></div>
${facts.linkedBatchId !== null ? html`<div><dt>Follows up</dt><dd><a href="/console/batches/${facts.linkedBatchId}">${facts.linkedBatchId}</a></dd></div>` : null}
</dl>
</section>
<section aria-labelledby="report-h" class="panel">
<h2 id="report-h">Report</h2>
<p>One line per device and per rejected input row, in input order, hash-chained and sealed (${signedNote}). Check it with <code>revoker verify-report</code>.</p>
<ul class="downloads">
<li><a id="report-csv" href="${batchPath(batch)}/report?format=csv" download>Sealed report, CSV</a></li>
<li><a href="${batchPath(batch)}/report?format=ndjson" download>Sealed report, NDJSON</a></li>
<li><a href="${batchPath(batch)}/report?format=csv&amp;plain=1" download>Plain table, CSV</a> <span class="muted">(no header, chain or seal: not verifiable)</span></li>
</ul>
</section>
<section aria-labelledby="dlq-h" class="panel">
<h2 id="dlq-h">Dead letters</h2>
${details.deadLetters.length === 0
  ? html`<p class="empty">None.</p>`
  : html`<p>${count(batch.counts.failed)} devices ended failed${batch.counts.failed > details.deadLetters.length ? `; the first ${details.deadLetters.length} are shown` : ''}. Each lists every call made for it.</p>
<ul class="dead-letters">${details.deadLetters.map(
      (entry) => html`<li><details><summary><span class="mono">${entry.deviceSn}</span> — ${entry.reason} <span class="muted">(${entry.history.filter((attempt) => attempt.counted).length} counted attempts, ${when(entry.deadLetteredAt)})</span></summary>
<table class="history"><caption class="visually-hidden">Calls made for ${entry.deviceSn}</caption><thead><tr><th scope="col">When</th><th scope="col">Code</th><th scope="col">HTTP</th><th scope="col">RequestId</th><th scope="col">Counted</th><th scope="col">Message</th></tr></thead>
<tbody>${entry.history.map((attempt) => html`<tr><td>${when(attempt.at)}</td><td>${attempt.code}${attempt.uncertain ? html` <span class="muted">(answer lost)</span>` : null}</td><td class="num">${attempt.httpStatus ?? '—'}</td><td class="mono">${attempt.requestId ?? '—'}</td><td>${attempt.counted ? 'yes' : 'no'}</td><td>${attempt.message}</td></tr>`)}</tbody></table>
</details></li>`,
    )}</ul>`}
</section>
<section aria-labelledby="audit-h" class="panel">
<h2 id="audit-h">Audit trail</h2>
${details.audit.length === 0
  ? html`<p class="empty">Nothing recorded.</p>`
  : html`<table class="audit"><caption class="visually-hidden">Who did what to this batch</caption><thead><tr><th scope="col">When</th><th scope="col">Action</th><th scope="col">By</th><th scope="col">From</th><th scope="col">Details</th><th scope="col">Took effect</th></tr></thead>
<tbody>${details.audit.map((entry) => html`<tr><td>${when(entry.at)}</td><td>${entry.action}</td><td>${entry.actor}</td><td>${entry.from}</td><td class="args">${Object.entries(entry.args).filter(([, value]) => value !== null).map(([name, value]) => `${name}=${String(value)}`).join(' · ')}</td><td>${entry.ok ? 'yes' : 'no'}</td></tr>`)}</tbody></table>`}
</section>
<section aria-labelledby="events-h" class="panel">
<h2 id="events-h">Completion events</h2>
<p>${details.eventsDestination === null ? 'This batch has no callback URL and the server no EVENTS_URL: events are recorded but not sent.' : html`Sent to <code>${details.eventsDestination}</code>, signed, retried with backoff.`}</p>
${details.events.length === 0
  ? html`<p class="empty">No event yet (one is written when the batch completes, is paused or is cancelled).</p>`
  : html`<table class="events"><caption class="visually-hidden">Completion events and their delivery</caption><thead><tr><th scope="col">Event</th><th scope="col">Type</th><th scope="col">When</th><th scope="col">Delivery</th><th scope="col">Attempts</th><th scope="col">Last error</th></tr></thead>
<tbody>${details.events.map((event) => html`<tr><td class="mono">${event.id}</td><td>${event.type}</td><td>${when(event.at)}</td><td><span class="delivery delivery-${event.delivery.replace(/\s+/g, '-')}">${event.delivery}</span></td><td class="num">${event.attempts}</td><td>${event.lastError ?? '—'}</td></tr>`)}</tbody></table>`}
</section>`;
}

/** The batch page's main content. */
export function renderBatchPage(batch: Batch, parts: { summary: SafeHtml; devices: SafeHtml; details: SafeHtml; notice: string | null; noticeOk: boolean }): SafeHtml {
  return html`<nav class="crumbs" aria-label="Breadcrumb"><a href="/console">Overview</a> › <span aria-current="page">${batch.name === '' ? batch.id : batch.name}</span></nav>
<h1>${batch.name === '' ? batch.id : batch.name}</h1>
<p class="sub mono">${batch.id}</p>
${parts.notice !== null ? html`<p class="banner ${parts.noticeOk ? 'banner-ok' : 'banner-warn'}" role="status">${parts.notice}</p>` : null}
<section aria-labelledby="summary-h" class="panel">
<h2 id="summary-h" class="visually-hidden">Progress</h2>
<div id="summary" data-live="summary">${parts.summary}</div>
</section>
${parts.devices}
<div id="details" data-live="details">${parts.details}</div>`;
}

/** A confirmation: what the action will do, with the numbers; its form posts the action. */
export function renderConfirmation(batch: Batch, confirmation: Confirmation): SafeHtml {
  const back = batchPath(batch);
  return html`<div class="confirm">
<h1 id="confirm-title">${confirmation.title}</h1>
${confirmation.details.map((detail) => html`<p>${detail}</p>`)}
${confirmation.unavailable !== null
  ? html`<p class="banner banner-warn" role="alert">${confirmation.unavailable}</p><p><a class="button" href="${back}" data-dialog-close autofocus>Back to the batch</a></p>`
  : html`<form method="post" action="${back}/${confirmation.action}">
${confirmation.priority !== null ? html`<input type="hidden" name="priority" value="${confirmation.priority}">` : null}
${confirmation.asksReason ? html`<p><label for="confirm-reason">Reason <span class="muted">(optional, shown in the batch and the audit trail)</span></label><input id="confirm-reason" name="reason" maxlength="1000" size="50"></p>` : null}
<div class="confirm-buttons">
<a class="button" href="${back}" data-dialog-close autofocus>Back, change nothing</a>
<button type="submit" id="confirm-go" class="${confirmation.action === 'cancel' ? 'danger' : 'primary'}">${confirmation.button}</button>
</div>
</form>`}
</div>`;
}
