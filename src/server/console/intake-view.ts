/**
 * Starting a revocation: the two forms (upload a CSV file, or name a CA), the plan of a draft
 * (devices, rejected rows with their lines, budgets, duration) with its Apply button, and the
 * sign-in page.
 */
import { effectiveRate, formatDuration } from '../../cli/plan.js';
import { REASON_CODES } from '../../report/batch-audit.js';
import type { Draft } from './drafts.js';
import { count, html, type SafeHtml } from './html.js';

/** The fields both forms share: name, action, priority, reason, reason code. */
function commonFields(prefix: string): SafeHtml {
  return html`<div class="field"><label for="${prefix}-name">Batch name <span class="muted">(optional)</span></label><input id="${prefix}-name" name="name" maxlength="200" size="40"></div>
<div class="field"><label for="${prefix}-action">Action</label><select id="${prefix}-action" name="action"><option value="delete">delete the certificates</option><option value="inactivate">inactivate them (reversible)</option></select></div>
<div class="field"><label for="${prefix}-priority">Priority</label><select id="${prefix}-priority" name="priority"><option value="urgent">urgent</option><option value="normal" selected>normal</option><option value="bulk">bulk</option></select></div>
<div class="field"><label for="${prefix}-reason">Reason <span class="muted">(shown in the report: an incident id)</span></label><input id="${prefix}-reason" name="reason" maxlength="500" size="40"></div>
<div class="field"><label for="${prefix}-reason-code">RFC 5280 reason code</label><select id="${prefix}-reason-code" name="reasonCode"><option value="">none</option>${Object.keys(REASON_CODES).map((code) => html`<option value="${code}">${code}</option>`)}</select></div>`;
}

/** The page with both ways to start. */
export function renderNewRevocation(maxUploadBytes: number, problem: string | null): SafeHtml {
  return html`<h1>Start a revocation</h1>
<p>Nothing is revoked until you have seen the plan and applied it.</p>
${problem !== null ? html`<p class="banner banner-warn" role="alert">${problem}</p>` : null}
<div class="two-columns">
<section aria-labelledby="csv-h" class="panel">
<h2 id="csv-h">From a CSV file</h2>
<p class="help">A header row with <code>DeviceSn</code> (required), <code>CaSn</code> and <code>MqttInstanceId</code>; the fields below fill columns a file does not have. At most ${count(Math.floor(maxUploadBytes / (1024 * 1024)))} MiB. Bad rows are listed with their line numbers; the rest can go ahead.</p>
<form method="post" action="/console/new/csv" enctype="multipart/form-data" class="stacked">
<div class="field"><label for="csv-instance">Instance id for rows without one</label><input id="csv-instance" name="instance" placeholder="mqtt-cn-…" size="30" spellcheck="false"></div>
<div class="field"><label for="csv-ca">CA serial for rows without one</label><input id="csv-ca" name="caSn" size="30" spellcheck="false"></div>
${commonFields('csv')}
<div class="field"><label for="csv-file">CSV file</label><input id="csv-file" name="file" type="file" accept=".csv,text/csv,text/plain" required></div>
<button type="submit" class="primary">Check the file and show the plan</button>
</form>
</section>
<section aria-labelledby="ca-h" class="panel">
<h2 id="ca-h">Everything under a CA</h2>
<p class="help">Every device certificate registered under the CA is listed first (through the listing budget, about one call per 100 devices); nothing is revoked until the listing is complete and you apply the plan.</p>
<form method="post" action="/console/new/ca" class="stacked">
<div class="field"><label for="ca-instance">Instance id</label><input id="ca-instance" name="instance" placeholder="mqtt-cn-…" size="30" required spellcheck="false"></div>
<div class="field"><label for="ca-ca">CA serial</label><input id="ca-ca" name="caSn" size="30" required spellcheck="false"></div>
${commonFields('ca')}
<button type="submit" class="primary">List the CA's devices and show the plan</button>
</form>
</section>
</div>`;
}

/** The draft's status and plan (the `draft` fragment of its page). */
export function renderDraft(draft: Draft, owner: boolean): SafeHtml {
  const state = draft.state;
  if (state.status === 'planning') {
    const progress = state.progress;
    return html`<p class="banner banner-info" role="status">${draft.input.kind === 'ca' ? `Listing the devices under CA ${draft.input.caSn}: ${count(progress?.listed ?? 0)} so far (${count(progress?.pages ?? 0)} pages).` : 'Reading the file…'} The plan appears here when it is ready.</p>`;
  }
  if (state.status === 'failed') {
    return html`<p class="banner banner-danger" role="alert">${state.message}</p><p><a href="/console/new">Start again</a></p>`;
  }
  if (state.status === 'applied') {
    return html`<p class="banner banner-ok" role="status">Applied: <a href="/console/batches/${state.batchId}">batch ${state.batchId}</a>.</p>`;
  }
  const { plan, rejectedShown } = state.plan;
  const budgets = plan.budgets;
  const groups = budgets.egressGroups.length > 0 ? budgets.egressGroups.map((group) => `${group.egressId} ${group.perSecond}/s`).join(', ') : `${budgets.egressId} ${budgets.egressPerSecond}/s (this server's setting: no worker has announced its group yet)`;
  const verb = plan.action === 'delete' ? 'Delete' : 'Inactivate';
  return html`<h2>Plan</h2>
<p class="plan-title">${plan.title}</p>
<dl class="facts plan">
<div><dt>Devices</dt><dd><strong>${count(plan.devices)}</strong></dd></div>
<div><dt>Rejected rows</dt><dd>${count(plan.rejected)}${plan.rejected > 0 ? ' (listed below, and in the report)' : ''}</dd></div>
<div><dt>Duplicates</dt><dd>${count(plan.duplicates)}${plan.duplicates > 0 ? ' (done once)' : ''}</dd></div>
<div><dt>Instances</dt><dd>${plan.instances.slice(0, 10).join(', ') || '—'}${plan.instances.length > 10 ? ` and ${plan.instances.length - 10} more` : ''}</dd></div>
<div><dt>CAs</dt><dd>${plan.cas.slice(0, 10).join(', ') || '—'}${plan.cas.length > 10 ? ` and ${plan.cas.length - 10} more` : ''}</dd></div>
<div><dt>Action · priority</dt><dd>${plan.action} · ${draft.options.priority}</dd></div>
<div><dt>Budgets</dt><dd>account ${budgets.accountPerSecond}/s per API operation${budgets.adaptivePerSecond !== null ? ` (lowered to ${budgets.adaptivePerSecond}/s by throttling)` : ''}; egress ${groups}</dd></div>
<div><dt>Estimated duration</dt><dd>about ${formatDuration(plan.estimatedSeconds)} at ${Math.round(effectiveRate(budgets))}/s (${count(plan.calls)} calls), if nothing else runs</dd></div>
${plan.notes.map((note) => html`<div><dt>Note</dt><dd class="mono">${note}</dd></div>`)}
${draft.options.reason !== null ? html`<div><dt>Reason</dt><dd>${draft.options.reason}${draft.options.reasonCode !== null ? ` (${draft.options.reasonCode})` : ''}</dd></div>` : null}
</dl>
${rejectedShown.length > 0
  ? html`<h3>Rejected rows</h3>
<table class="rejected"><caption>${plan.rejected > rejectedShown.length ? `The first ${rejectedShown.length} of ${count(plan.rejected)} rejected rows` : plan.rejected === 1 ? 'One rejected row' : `${count(plan.rejected)} rejected rows`}</caption>
<thead><tr><th scope="col">Line</th><th scope="col">Device</th><th scope="col">Why</th></tr></thead>
<tbody>${rejectedShown.map((row) => html`<tr><td class="num">${row.line}</td><td class="mono">${row.deviceSn ?? '—'}</td><td>${row.reason}</td></tr>`)}</tbody></table>`
  : null}
${owner
  ? plan.devices === 0
    ? html`<p class="banner banner-warn">There is no device to revoke. <a href="/console/new">Start again</a></p>`
    : html`<form method="post" action="/console/drafts/${draft.id}/apply" class="confirm-buttons">
<button type="submit" id="apply" class="${plan.action === 'delete' ? 'danger' : 'primary'}">${verb} ${count(plan.devices)} device certificates now</button>
</form>
<form method="post" action="/console/drafts/${draft.id}/discard" class="inline"><button type="submit" class="link">Discard this plan</button></form>`
  : html`<p class="muted">Only ${draft.owner}, who made this plan, can apply it.</p>`}`;
}

/** The draft page's main content. */
export function renderDraftPage(draft: Draft, owner: boolean): SafeHtml {
  const what = draft.input.kind === 'csv' ? html`the file <code>${draft.input.fileName}</code> (${count(draft.input.bytes)} bytes, SHA-256 <span class="mono">${draft.input.sha256}</span>)` : html`every device under CA <code>${draft.input.caSn}</code> on <code>${draft.input.mqttInstanceId}</code>`;
  return html`<nav class="crumbs" aria-label="Breadcrumb"><a href="/console">Overview</a> › <a href="/console/new">Start a revocation</a> › <span aria-current="page">Plan</span></nav>
<h1>${draft.options.name}</h1>
<p>From ${what}.</p>
<div id="draft" data-live="draft">${renderDraft(draft, owner)}</div>`;
}

/** The sign-in page (posts to /console/login: the token never goes in a URL). */
export function renderLogin(problem: string | null): SafeHtml {
  return html`<div class="login panel">
<h1>Sign in to the incident console</h1>
${problem !== null ? html`<p class="banner banner-danger" role="alert">${problem}</p>` : null}
<form method="post" action="/console/login" class="stacked">
<div class="field"><label for="token">Admin token</label><input id="token" name="token" type="password" autocomplete="current-password" required autofocus></div>
<button type="submit" class="primary">Sign in</button>
</form>
<p class="help">A <code>read</code> token shows everything; an <code>operate</code> token can also pause, resume, cancel, reprioritize, redrive and start revocations. The session lasts 12 hours and also opens the queue dashboard.</p>
</div>`;
}
