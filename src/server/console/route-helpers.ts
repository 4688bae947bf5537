/**
 * Small pieces every console route uses: reading parameters, sending a page, a message page, the
 * identity a route's hook admitted.
 */
import { rm } from 'node:fs/promises';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { consoleIdentityOf, type ConsoleIdentity } from './console-auth.js';
import { html, type SafeHtml } from './html.js';
import { renderPage } from './layout.js';

/** A path parameter ('' when absent). */
export function param(request: FastifyRequest, name: string): string {
  return (request.params as Record<string, string | undefined>)[name] ?? '';
}

/** A query parameter (the first when repeated; null when absent or empty). */
export function query(request: FastifyRequest, name: string): string | null {
  const value = (request.query as Record<string, string | string[] | undefined>)[name];
  if (Array.isArray(value)) return value[0] ?? null;
  return value === undefined || value === '' ? null : value;
}

/** The urlencoded form of a POST (empty when there is none). */
export function formOf(request: FastifyRequest): URLSearchParams {
  return request.body instanceof URLSearchParams ? request.body : new URLSearchParams();
}

/** Sends a page (never cached: it shows live state and who is signed in). */
export function sendPage(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply.code(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(body);
}

/** A message in a panel with a way back. */
export function htmlMessage(message: string, back = '/console'): SafeHtml {
  return html`<div class="panel"><p class="banner banner-warn" role="alert">${message}</p><p><a href="${back}">Back</a></p></div>`;
}

/** Sends a whole page holding a message. */
export function sendMessage(reply: FastifyReply, status: number, identity: ConsoleIdentity | null, title: string, message: string, back = '/console'): FastifyReply {
  return sendPage(reply, status, renderPage({ title, identity, current: 'other' }, htmlMessage(message, back)));
}

/** The identity the route's hook admitted (a missing one is a wiring bug, not a user error). */
export function identityOf(request: FastifyRequest): ConsoleIdentity {
  const identity = consoleIdentityOf(request);
  if (identity === null) throw new Error('console route reached without an identity');
  return identity;
}

/** Removes a directory and what is in it. */
export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
