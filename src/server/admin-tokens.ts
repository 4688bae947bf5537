/**
 * Admin tokens with names and roles. `read` sees metrics, batches, reports, dead letters and the
 * dashboard; `operate` also pauses, resumes, cancels, changes priorities and redrives. The token
 * Prometheus scrapes with therefore cannot cancel a batch.
 *
 * ADMIN_TOKENS_FILE holds SHA-256 hashes, never tokens (`printf %s "$TOKEN" | sha256sum`):
 *
 * ```json
 * {"tokens": [{"name": "prometheus", "sha256": "9f86d0…", "role": "read"},
 *             {"name": "oncall", "sha256": "60303a…", "role": "operate"}]}
 * ```
 *
 * ADMIN_TOKEN stays as one `operate` token named `admin` (at least 32 characters, checked when the
 * configuration is read). Both may be used together.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError, type Config } from '../config/config.js';

/** What a token may do. */
export type AdminRole = 'read' | 'operate';

/** A configured admin token. */
export interface AdminToken {
  /** Logged and recorded in the audit trail as who did something. */
  name: string;
  /** SHA-256 of the token (32 bytes). */
  hash: Buffer;
  role: AdminRole;
}

/** Who a request authenticated as. */
export interface AdminIdentity {
  name: string;
  role: AdminRole;
}

/** Name of the token ADMIN_TOKEN stands for. */
export const ADMIN_TOKEN_NAME = 'admin';

const VARIABLE = 'ADMIN_TOKENS_FILE';
const TOKEN_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

function fail(message: string): never {
  throw new ConfigError(VARIABLE, `${VARIABLE}: ${message}`);
}

/** SHA-256 of a token's UTF-8 bytes. */
export function tokenHash(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** True when a role may do what `needed` requires. */
export function roleAllows(role: AdminRole, needed: AdminRole): boolean {
  return needed === 'read' || role === 'operate';
}

/** Parses the tokens file's text; throws a `ConfigError` naming ADMIN_TOKENS_FILE and the entry. */
export function parseAdminTokens(text: string): AdminToken[] {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    fail(`not valid JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  if (typeof document !== 'object' || document === null || !Array.isArray((document as { tokens?: unknown }).tokens)) {
    fail('the file must be a JSON object with a "tokens" array');
  }
  const entries = (document as { tokens: unknown[] }).tokens;
  return entries.map((entry, index): AdminToken => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(`token ${index + 1} must be an object`);
    const { name, sha256, role } = entry as Record<string, unknown>;
    if (typeof name !== 'string' || !TOKEN_NAME.test(name)) fail(`token ${index + 1}: name must be 1-64 letters, digits, '.', '_' or '-'`);
    // A token pasted where its hash belongs must not be echoed back in the error.
    if (typeof sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(sha256)) fail(`token '${name}': sha256 must be the 64 hex digits of the token's SHA-256 (printf %s "$TOKEN" | sha256sum)`);
    if (role !== 'read' && role !== 'operate') fail(`token '${name}': role must be "read" or "operate"`);
    return { name, hash: Buffer.from(sha256, 'hex'), role };
  });
}

/**
 * The admin tokens of a configuration: ADMIN_TOKEN (as `admin`, role operate) and the file's.
 * Throws a `ConfigError` when there is none (the admin API must never run open) or a name or a
 * token is configured twice.
 */
export function loadAdminTokens(config: Pick<Config, 'adminToken' | 'adminTokensFile'>, read: (path: string) => string = (path) => readFileSync(path, 'utf8')): AdminToken[] {
  const tokens: AdminToken[] = [];
  if (config.adminToken !== null && config.adminToken !== '') tokens.push({ name: ADMIN_TOKEN_NAME, hash: tokenHash(config.adminToken), role: 'operate' });
  if (config.adminTokensFile !== null) {
    let text: string;
    try {
      text = read(config.adminTokensFile);
    } catch (error) {
      fail(`cannot read ${config.adminTokensFile}: ${error instanceof Error ? error.message : String(error)}`);
    }
    tokens.push(...parseAdminTokens(text));
  }
  if (tokens.length === 0) throw new ConfigError('ADMIN_TOKEN', 'ADMIN_TOKEN must be set to start the server (or ADMIN_TOKENS_FILE with at least one token)');
  const names = new Set<string>();
  const hashes = new Set<string>();
  for (const token of tokens) {
    if (names.has(token.name)) fail(`token name '${token.name}' is used twice (the name 'admin' is ADMIN_TOKEN's)`);
    if (hashes.has(token.hash.toString('hex'))) fail(`token '${token.name}' has the same hash as another token`);
    names.add(token.name);
    hashes.add(token.hash.toString('hex'));
  }
  return tokens;
}

/** Looks a presented token up among the configured ones. */
export class AdminTokens {
  constructor(readonly tokens: readonly AdminToken[]) {}

  /**
   * The identity a token stands for, or null. Every configured hash is compared, in constant
   * time, whatever matches: neither the token nor its position leaks through response times.
   */
  identify(token: string): AdminIdentity | null {
    const presented = tokenHash(token);
    let found: AdminToken | null = null;
    for (const candidate of this.tokens) {
      if (timingSafeEqual(presented, candidate.hash) && found === null) found = candidate;
    }
    return found === null ? null : { name: found.name, role: found.role };
  }

  /** The configured token of this name. */
  byName(name: string): AdminToken | undefined {
    return this.tokens.find((token) => token.name === name);
  }
}
