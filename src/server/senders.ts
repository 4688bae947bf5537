/**
 * Named webhook senders and what each may ask for (WEBHOOK_SENDERS_FILE): its secrets (several
 * during a rotation), the instances and CAs it may touch, the actions and highest priority it may
 * ask for, the origins its callbacks may go to, and a quota of devices per hour. WEBHOOK_SECRETS
 * is the one-sender shorthand: a sender named `default` that may do anything.
 *
 * The file is JSON (no YAML parser is a dependency, and one is not worth adding for this):
 *
 * ```json
 * {"senders": [{"name": "fleet-manager", "secrets": ["whsec_…"],
 *   "instances": ["mqtt-cn-0pp1ldu0a01"], "caSns": ["0072690048871234", "00726900*"],
 *   "actions": ["inactivate"], "maxPriority": "normal",
 *   "callbackOrigins": ["https://hooks.example.com"], "devicesPerHour": 20000}]}
 * ```
 *
 * A pattern is an exact value, or a prefix followed by `*` (`"*"` alone: any). `instances`,
 * `caSns`, `actions` and `devicesPerHour` (`null`: no quota) are required, so that no sender gets
 * more than its file says by omission; `maxPriority` defaults to `normal`, `callbackOrigins` to none.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, type Config } from '../config/config.js';
import { normaliseOrigin } from '../events/callback-policy.js';
import { REVOCATION_ACTIONS, type RevocationAction } from '../producer/device-request.js';
import type { ParsedRevocation } from '../producer/webhook-body.js';
import { BATCH_PRIORITIES, parsePriority, type BatchPriority } from '../queue/priority.js';

/** What a sender may ask for. */
export interface SenderScope {
  /** Instance ids it may touch: exact, or a prefix ending in `*`. */
  instances: readonly string[];
  /** CA serial numbers it may touch: exact, or a prefix ending in `*`. */
  caSns: readonly string[];
  /** Actions it may ask for. */
  actions: readonly RevocationAction[];
  /** Highest priority it may ask for (`urgent` > `normal` > `bulk`). */
  maxPriority: BatchPriority;
  /** Origins its `callbackUrl` may point at (each must be in EVENTS_ALLOWED_ORIGINS too). */
  callbackOrigins: readonly string[];
}

/** A webhook sender. */
export interface Sender {
  /** Recorded as the batch's creator, in logs, metrics and the delivery ledger. */
  name: string;
  /** Its `whsec_…` secrets; never logged. */
  secrets: readonly string[];
  scope: SenderScope;
  /** Devices (entries of `deviceSns`) it may send per hour; null: no quota. */
  devicesPerHour: number | null;
}

/** Name of the sender made from WEBHOOK_SECRETS. */
export const DEFAULT_SENDER = 'default';

const VARIABLE = 'WEBHOOK_SENDERS_FILE';
const SENDER_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const SECRET = /^whsec_[A-Za-z0-9+/=]+$/;
const PATTERN = /^[\x21-\x7e]{1,128}$/;

function fail(message: string): never {
  throw new ConfigError(VARIABLE, `${VARIABLE}: ${message}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringList(value: unknown, where: string): string[] {
  if (!Array.isArray(value) || value.some((entry) => typeof entry !== 'string')) fail(`${where} must be an array of strings`);
  return value as string[];
}

/** True when `value` matches `pattern` (exact, or a prefix followed by `*`). */
export function matchesPattern(pattern: string, value: string): boolean {
  return pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : value === pattern;
}

/** The rank of a priority: higher is more urgent. */
function rank(priority: BatchPriority): number {
  return BATCH_PRIORITIES.length - BATCH_PRIORITIES.indexOf(priority);
}

function readSender(value: unknown, index: number, allowedOrigins: readonly string[]): Sender {
  if (!isObject(value)) fail(`sender ${index + 1} must be an object`);
  const name = value.name;
  if (typeof name !== 'string' || !SENDER_NAME.test(name)) fail(`sender ${index + 1}: name must be 1-64 letters, digits, '.', '_' or '-'`);
  const where = `sender '${name}'`;
  const secrets = stringList(value.secrets, `${where}: secrets`);
  if (secrets.length === 0) fail(`${where}: secrets must hold at least one secret`);
  // Never echo a secret, not even a malformed one: its position is enough.
  secrets.forEach((secret, position) => {
    if (!SECRET.test(secret)) fail(`${where}: secret ${position + 1} must be a 'whsec_' followed by base64`);
  });
  const patterns = (field: 'instances' | 'caSns'): string[] => {
    if (value[field] === undefined) fail(`${where}: ${field} is required (["*"] for any)`);
    const list = stringList(value[field], `${where}: ${field}`);
    if (list.length === 0) fail(`${where}: ${field} is empty: the sender could touch nothing`);
    for (const pattern of list) {
      if (!PATTERN.test(pattern) || (pattern.includes('*') && pattern.indexOf('*') !== pattern.length - 1)) fail(`${where}: ${field} entry '${pattern.slice(0, 130)}' must be a value or a prefix followed by '*'`);
    }
    return list;
  };
  const instances = patterns('instances');
  const caSns = patterns('caSns');
  if (value.actions === undefined) fail(`${where}: actions is required (e.g. ["inactivate"])`);
  const actions = stringList(value.actions, `${where}: actions`).map((action) => {
    const known = REVOCATION_ACTIONS.find((candidate) => candidate === action);
    if (known === undefined) fail(`${where}: unknown action '${action.slice(0, 40)}' (delete or inactivate)`);
    return known;
  });
  if (actions.length === 0) fail(`${where}: actions is empty`);
  const maxPriority = value.maxPriority === undefined ? 'normal' : parsePriority(value.maxPriority);
  if (maxPriority === null) fail(`${where}: maxPriority must be urgent, normal or bulk`);
  const callbackOrigins = (value.callbackOrigins === undefined ? [] : stringList(value.callbackOrigins, `${where}: callbackOrigins`)).map((entry) => {
    const origin = normaliseOrigin(entry);
    if (origin === null) fail(`${where}: callbackOrigins entry '${entry.slice(0, 200)}' is not an origin like https://hooks.example.com`);
    // Events are sent by workers, which only know EVENTS_ALLOWED_ORIGINS: a sender's origin
    // outside it would be accepted here and refused there.
    if (!allowedOrigins.includes(origin)) fail(`${where}: callback origin ${origin} is not in EVENTS_ALLOWED_ORIGINS`);
    return origin;
  });
  const quota = value.devicesPerHour;
  if (quota === undefined) fail(`${where}: devicesPerHour is required (null for no quota)`);
  if (quota !== null && (typeof quota !== 'number' || !Number.isSafeInteger(quota) || quota < 1)) fail(`${where}: devicesPerHour must be a positive integer or null`);
  return { name, secrets, scope: { instances, caSns, actions, maxPriority, callbackOrigins }, devicesPerHour: quota };
}

/**
 * Parses the senders file's text. `allowedOrigins` is EVENTS_ALLOWED_ORIGINS (plus EVENTS_URL's
 * origin). Throws a `ConfigError` naming WEBHOOK_SENDERS_FILE, the sender and the field.
 */
export function parseSenders(text: string, allowedOrigins: readonly string[]): Sender[] {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    fail(`not valid JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  if (!isObject(document) || !Array.isArray(document.senders)) fail('the file must be a JSON object with a "senders" array');
  const senders = document.senders.map((entry, index) => readSender(entry, index, allowedOrigins));
  if (senders.length === 0) fail('no sender is defined');
  const names = new Set<string>();
  const secrets = new Set<string>();
  for (const sender of senders) {
    if (names.has(sender.name)) fail(`sender name '${sender.name}' is used twice`);
    names.add(sender.name);
    for (const secret of sender.secrets) {
      // A secret shared by two senders would make the matching one ambiguous: who sent it?
      if (secrets.has(secret)) fail(`sender '${sender.name}' shares a secret with another sender`);
      secrets.add(secret);
    }
  }
  return senders;
}

/** The sender WEBHOOK_SECRETS stands for: any instance, CA, action and priority, callbacks to any allowed origin, no quota. */
export function shorthandSender(secrets: readonly string[], allowedOrigins: readonly string[]): Sender {
  return {
    name: DEFAULT_SENDER,
    secrets,
    scope: { instances: ['*'], caSns: ['*'], actions: REVOCATION_ACTIONS, maxPriority: 'urgent', callbackOrigins: allowedOrigins },
    devicesPerHour: null,
  };
}

/**
 * The senders of a configuration: the file's, or WEBHOOK_SECRETS' one, or none (the webhook
 * then answers 503). Both at once is refused: which one would a secret belong to?
 */
export function loadSenders(config: Pick<Config, 'webhookSecrets' | 'webhookSendersFile'>, allowedOrigins: readonly string[], read: (path: string) => string = (path) => readFileSync(path, 'utf8')): Sender[] {
  if (config.webhookSendersFile !== null) {
    if (config.webhookSecrets.length > 0) fail('set WEBHOOK_SENDERS_FILE or WEBHOOK_SECRETS, not both (add the shorthand secrets to a sender in the file)');
    let text: string;
    try {
      text = read(config.webhookSendersFile);
    } catch (error) {
      fail(`cannot read ${config.webhookSendersFile}: ${error instanceof Error ? error.message : String(error)}`);
    }
    return parseSenders(text, allowedOrigins);
  }
  return config.webhookSecrets.length > 0 ? [shorthandSender(config.webhookSecrets, allowedOrigins)] : [];
}

/**
 * Why a valid delivery is outside the sender's scope (answered 403, nothing enqueued), or null.
 * Every accepted device must be within it: a delivery is taken whole or not at all.
 */
export function scopeProblem(sender: Sender, request: ParsedRevocation): string | null {
  const { scope } = sender;
  if (!scope.actions.includes(request.action)) return `sender '${sender.name}' may not ask for action ${request.action} (allowed: ${scope.actions.join(', ')})`;
  const priority = request.priority ?? 'normal';
  if (rank(priority) > rank(scope.maxPriority)) return `sender '${sender.name}' may not ask for priority ${priority} (highest allowed: ${scope.maxPriority})`;
  for (const device of request.requests) {
    if (!scope.instances.some((pattern) => matchesPattern(pattern, device.mqttInstanceId))) {
      return `sender '${sender.name}' may not touch instance ${device.mqttInstanceId} (deviceSns entry ${device.line})`;
    }
    if (!scope.caSns.some((pattern) => matchesPattern(pattern, device.caSn))) {
      return `sender '${sender.name}' may not touch CA ${device.caSn} (deviceSns entry ${device.line})`;
    }
  }
  return null;
}
