/**
 * The overview page: what is at risk and for how long (open batches, devices not yet revoked,
 * the ETA), every open and recent batch with its progress, counts, rate and ETA, and the rate
 * budgets in force with their live charts. The live parts are fragments the event stream
 * replaces every second (`batches`, `budgets`, `totals`); the charts are drawn by console.js
 * from the `rates` events.
 */
import type { Batch } from '../../batches/batch.js';
import { formatDuration } from '../../cli/plan.js';
import { OUTCOMES } from '../../results/result-record.js';
import type { AdminIdentity } from '../admin-tokens.js';
import type { AccountState, BatchProgress, ConsoleSnapshot, RateSample } from './console-sampler.js';
import { count, html, percent, type SafeHtml, when } from './html.js';

/** Outcome labels as people read them. */
export const OUTCOME_LABELS: Record<string, string> = {
  deleted: 'deleted',
  inactivated: 'inactivated',
  not_found: 'not found',
  gone: 'gone',
  failed: 'failed',
  cancelled: 'cancelled',
  pending: 'not finished',
};

/** The state badge, with the reason of a pause or cancel. */
export function stateBadge(batch: Batch): SafeHtml {
  const label = batch.state === 'enqueuing' ? 'reading input' : batch.state;
  return html`<span class="state state-${batch.state}">${label}</span>`;
}

/** `<progress>` of a batch (a native element: no style attribute, announced by screen readers). */
export function progressBar(batch: Batch, big = false): SafeHtml {
  const max = Math.max(1, batch.accepted);
  return html`<progress id="progress-${batch.id}" class="${big ? 'progress big' : 'progress'}" max="${max}" value="${Math.min(batch.done, max)}" aria-label="${`${batch.name}: ${percent(batch.done, batch.accepted)} finished`}">${percent(batch.done, batch.accepted)}</progress>`;
}

/** `4,130 deleted · 30 not found`: the non-zero outcome counts. */
export function outcomeCounts(batch: Batch): SafeHtml {
  const parts = OUTCOMES.filter((outcome) => batch.counts[outcome] > 0).map((outcome) => html`<span class="count count-${outcome}">${count(batch.counts[outcome])} ${OUTCOME_LABELS[outcome]}</span>`);
  const remaining = Math.max(0, batch.accepted - batch.done);
  if (remaining > 0) parts.push(html`<span class="count count-pending">${count(remaining)} not finished</span>`);
  if (batch.rejected > 0) parts.push(html`<span class="count count-rejected">${count(batch.rejected)} rejected rows</span>`);
  return parts.length === 0 ? html`<span class="muted">no devices yet</span>` : html`${parts.map((part, index) => html`${index > 0 ? ' · ' : ''}${part}`)}`;
}

/** The evidence tally of a finished batch as `deleted: answer 990, snapshot 8`. */
export function evidenceLine(tally: Record<string, Record<string, number>> | null): SafeHtml | null {
  if (tally === null) return null;
  const parts = Object.entries(tally)
    .sort(([a], [b]) => OUTCOMES.indexOf(a as never) - OUTCOMES.indexOf(b as never))
    .map(([outcome, byEvidence]) => `${OUTCOME_LABELS[outcome] ?? outcome}: ${Object.entries(byEvidence).map(([evidence, n]) => `${evidence} ${count(n)}`).join(', ')}`);
  return parts.length === 0 ? null : html`<div class="evidence">evidence — ${parts.join('; ')}</div>`;
}

/** `271/s`, or a dash. */
export function rateText(rate: number | null): string {
  return rate === null ? '—' : `${rate >= 10 ? Math.round(rate) : Math.round(rate * 10) / 10}/s`;
}

/** The ETA cell. */
export function etaText(entry: BatchProgress): string {
  const { batch } = entry;
  if (batch.state === 'completed') return `finished ${when(batch.finishedAt)}`;
  if (batch.state === 'cancelled') return batch.finishedAt === null ? 'cancelling' : `cancelled ${when(batch.finishedAt)}`;
  if (batch.state === 'paused') return 'paused';
  if (entry.etaSeconds === null) return batch.accepted > batch.done ? 'measuring…' : '—';
  return `about ${formatDuration(entry.etaSeconds)}`;
}

/** The batches table (the `batches` fragment). */
export function renderBatchesTable(batches: readonly BatchProgress[], evidenceOf: (batch: Batch) => Record<string, Record<string, number>> | null): SafeHtml {
  if (batches.length === 0) return html`<p class="empty">No batches yet.</p>`;
  return html`<table class="batches">
<caption class="visually-hidden">Open and recent batches</caption>
<thead><tr><th scope="col">Batch</th><th scope="col">State</th><th scope="col">Priority</th><th scope="col">Progress</th><th scope="col">Outcomes</th><th scope="col">Rate</th><th scope="col">ETA</th></tr></thead>
<tbody>
${batches.map((entry) => {
  const { batch } = entry;
  return html`<tr id="row-${batch.id}">
<th scope="row"><a id="open-${batch.id}" href="/console/batches/${batch.id}">${batch.name === '' ? batch.id : batch.name}</a><div class="sub">${batch.id} · ${batch.createdBy}</div></th>
<td>${stateBadge(batch)}${batch.reason !== null && batch.state !== 'completed' ? html`<div class="reason">${batch.reason}</div>` : null}</td>
<td><span class="priority priority-${batch.priority}">${batch.priority}</span></td>
<td class="progress-cell">${progressBar(batch)}<div class="sub">${percent(batch.done, batch.accepted)} · ${count(batch.done)} of ${count(batch.accepted)}${batch.enqueued ? '' : ' (still reading)'}</div></td>
<td class="counts">${outcomeCounts(batch)}${evidenceLine(evidenceOf(batch))}</td>
<td class="num">${rateText(entry.ratePerSecond)}</td>
<td>${etaText(entry)}</td>
</tr>`;
})}
</tbody></table>`;
}

/** What is at risk, in one line a manager can read aloud (the `totals` fragment). */
export function renderTotals(batches: readonly BatchProgress[]): SafeHtml {
  const open = batches.filter((entry) => entry.batch.state === 'running' || entry.batch.state === 'enqueuing' || entry.batch.state === 'paused');
  const remaining = open.reduce((sum, entry) => sum + Math.max(0, entry.batch.accepted - entry.batch.done), 0);
  const paused = open.filter((entry) => entry.batch.state === 'paused').length;
  const rate = open.reduce((sum, entry) => sum + (entry.ratePerSecond ?? 0), 0);
  const eta = remaining > 0 && rate > 0 && paused < open.length ? formatDuration(remaining / rate) : null;
  return html`<dl class="totals">
<div><dt>Open batches</dt><dd>${count(open.length)}${paused > 0 ? html` <span class="state state-paused">${count(paused)} paused</span>` : null}</dd></div>
<div><dt>Devices not yet revoked</dt><dd>${count(remaining)}</dd></div>
<div><dt>Revoking at</dt><dd>${rateText(open.length > 0 ? rate : null)}</dd></div>
<div><dt>All open batches done in</dt><dd>${eta === null ? (remaining === 0 ? '—' : paused === open.length ? 'paused' : 'measuring…') : `about ${eta}`}</dd></div>
</dl>`;
}

function budgetLabel(kind: string, label: string): string {
  return kind === 'egress' ? `egress group ${label}` : label;
}

/** Account notices and the budgets table (the `budgets` fragment). */
export function renderBudgets(rates: RateSample | null, accounts: readonly AccountState[]): SafeHtml {
  const notices = accounts
    .filter((account) => account.pausedReason !== null || account.adaptivePerSecond !== null)
    .map((account) =>
      account.pausedReason !== null
        ? html`<p class="banner banner-danger" role="alert">Account <code>${account.key}</code> is paused: every call is held. ${account.pausedReason} When the cause is fixed: <code>revoker account resume</code>, or resume a paused batch.</p>`
        : null,
    );
  if (rates === null || rates.budgets.length === 0) return html`${notices}<p class="empty">No rate budget announced yet: budgets appear once a worker or a listing has started.</p>`;
  return html`${notices}<table class="budgets">
<caption>Calls in the last second against each budget</caption>
<thead><tr><th scope="col">Budget</th><th scope="col">Calls/s</th><th scope="col">Limit</th><th scope="col">Use</th><th scope="col">State</th></tr></thead>
<tbody>
${rates.budgets.map((budget) => {
  const limit = budget.adaptive ?? budget.limit;
  const state = budget.refused ? html`<span class="state state-paused">refused: account paused</span>` : budget.throttled ? html`<span class="state state-throttled">throttled</span>` : budget.adaptive !== null ? html`<span class="state state-throttled">slowed by throttling</span>` : html`<span class="muted">ok</span>`;
  return html`<tr>
<th scope="row">${budget.kind === 'account' ? html`<span class="kind">account</span> ` : html`<span class="kind">egress</span> `}${budgetLabel(budget.kind, budget.label)}</th>
<td class="num">${count(budget.calls)}</td>
<td class="num">${count(budget.limit)}/s${budget.adaptive !== null ? html`<div class="sub">adaptive ${count(budget.adaptive)}/s</div>` : null}</td>
<td><meter min="0" max="${budget.limit}" high="${Math.round(limit * 0.9)}" value="${Math.min(budget.calls, budget.limit)}" aria-label="${`${budgetLabel(budget.kind, budget.label)}: ${budget.calls} of ${budget.limit} calls per second`}">${budget.calls}</meter></td>
<td>${state}</td>
</tr>`;
})}
</tbody></table>`;
}

/** The overview's main content. */
export function renderOverview(identity: AdminIdentity, snapshot: ConsoleSnapshot | null, evidenceOf: (batch: Batch) => Record<string, Record<string, number>> | null): SafeHtml {
  const batches = snapshot?.batches ?? [];
  return html`<h1>Incident console</h1>
<section aria-labelledby="totals-h" class="panel">
<h2 id="totals-h" class="visually-hidden">At risk</h2>
<div id="totals" data-live="totals">${renderTotals(batches)}</div>
</section>
<section aria-labelledby="batches-h" class="panel">
<div class="panel-head"><h2 id="batches-h">Batches</h2>${identity.role === 'operate' ? html`<a class="button" href="/console/new">Start a revocation</a>` : null}</div>
<div id="batches" data-live="batches">${renderBatchesTable(batches, evidenceOf)}</div>
</section>
<section aria-labelledby="budgets-h" class="panel">
<h2 id="budgets-h">Rate budgets</h2>
<p class="help">Each API operation of the account has its own budget (the API throttles an account above 500 calls/s per operation); each egress group (source IP) has one for all its calls (the API blocks an IP above 300 calls/s).</p>
<div id="budgets" data-live="budgets">${renderBudgets(snapshot?.rates ?? null, snapshot?.accounts ?? [])}</div>
<h3>Calls per second, last 10 minutes</h3>
<p class="help">Solid: calls in each second. Dashed: the budget. Dotted: the adaptive rate while throttling lowers it. Red marks: seconds in which the API throttled the account; grey band: the account was paused (calls refused).</p>
<div id="charts" class="charts" data-charts aria-live="off"><p class="muted" id="charts-waiting">Waiting for the first samples…</p></div>
</section>`;
}
