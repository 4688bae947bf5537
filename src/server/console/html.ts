/**
 * HTML built by a tagged template that escapes every interpolated value unless it is already
 * `SafeHtml` (the result of another `html` template, or `raw` of a constant). The console's pages
 * are made of stored text from other systems (batch names, reasons, serials, API messages): one
 * escaping rule, applied by default, is what keeps them inert.
 */
import { escapeControl } from '../../cli/terminal-text.js';

/** A piece of HTML that is safe to place as is. */
export class SafeHtml {
  constructor(readonly value: string) {}

  toString(): string {
    return this.value;
  }
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * Text as HTML: the five special characters as entities, control and bidi-override characters
 * shown as visible escapes (`\x1b`, `\u202e`), so a name cannot reorder what is around it.
 */
export function escapeHtml(text: string): string {
  return escapeControl(text).replace(/[&<>"']/g, (char) => ENTITIES[char] ?? char);
}

function piece(value: unknown): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return value.map(piece).join('');
  return escapeHtml(typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' ? String(value) : JSON.stringify(value));
}

/** The HTML template tag: interpolations are escaped; arrays are joined; null, undefined and false vanish. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? '';
  for (let index = 0; index < values.length; index += 1) out += piece(values[index]) + (strings[index + 1] ?? '');
  return new SafeHtml(out);
}

/** Trusted markup (a constant of this module's callers, never stored text). */
export function raw(markup: string): SafeHtml {
  return new SafeHtml(markup);
}

/** `1,234,567`. */
export function count(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** A percentage with one decimal below 100, `100 %` only when complete. */
export function percent(done: number, total: number): string {
  if (total <= 0) return '0 %';
  if (done >= total) return '100 %';
  return `${Math.min(99.9, Math.floor((done / total) * 1000) / 10).toFixed(1)} %`;
}

/** `2026-12-01 08:09:26 UTC` from an ISO time (what an operator reads in an incident channel). */
export function when(iso: string | null): string {
  if (iso === null || iso === '') return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}
