/**
 * Terminal escape injection (issue 13, finding 8): a webhook `name` holding `ESC[2K\r…` rewrote
 * the line `revoker status` printed, and `revoker report` printed an OSC 52 clipboard-write
 * sequence from a rejected serial. Stored text is escaped on every CLI print (`status`, `report`
 * to standard output, `batch list`, `audit`), and refused at the entrances (here: `--reason`).
 *
 * The hostile values are written straight into Redis, as data stored before the entrance checks
 * existed (or by anything else with Redis access) would be; the CLI runs as a real process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeAuditEntry } from '../../src/cli/audit-command.js';
import { escapeControl, jsonForTerminal, terminalLine } from '../../src/cli/terminal-text.js';
import { resolveConfig } from '../../src/config/config.js';
import { controlCharacterProblem } from '../../src/producer/free-text.js';
import { openContext, type Context } from '../../src/runtime/context.js';
import { spawnTs } from '../helpers/processes.js';
import { removePrefix, TEST_REDIS_URL, uniquePrefix } from '../helpers/redis.js';

const ESC = '\u001b';
const HOSTILE_NAME = `lot 7${ESC}[2K\r[completed] all 50000 devices deleted`;
const OSC52 = `${ESC}]52;c;ZWNobyBwd25lZA==\u0007`;

describe('terminal-safe text', () => {
  it('escapes every control character, C1 and bidi overrides included, into one inert line', () => {
    expect(escapeControl(HOSTILE_NAME)).toBe('lot 7\\x1b[2K\\x0d[completed] all 50000 devices deleted');
    expect(escapeControl(`a${OSC52}b`)).toBe('a\\x1b]52;c;ZWNobyBwd25lZA==\\x07b');
    expect(escapeControl('x\u009b31my\u202ez\n')).toBe('x\\x9b31my\\u202ez\\x0a');
    expect(escapeControl('plain text, café, 漢字')).toBe('plain text, café, 漢字');
    expect(terminalLine(`a,${OSC52}\n`)).toBe('a,\\x1b]52;c;ZWNobyBwd25lZA==\\x07\n');
    const json = jsonForTerminal({ name: `a\u009bb\u202ec${ESC}` });
    expect(json).not.toMatch(/[\p{Cc}\u202e]/u);
    expect(JSON.parse(json)).toEqual({ name: `a\u009bb\u202ec${ESC}` });
  });

  it('refuses control characters in free text, naming the field and the character', () => {
    expect(controlCharacterProblem('name', HOSTILE_NAME)).toBe('name contains a control character (U+001B) at position 5');
    expect(controlCharacterProblem('reason', 'a\u202eb')).toMatch(/U\+202E/);
    expect(controlCharacterProblem('reason', 'a perfectly normal reason – with an en dash')).toBeNull();
  });

  it('escapes stored text in audit lines', () => {
    const line = describeAuditEntry({ at: '2030-01-01T00:00:00.000Z', action: 'pause', batchId: 'b-1', actor: `cli:ev${ESC}[2Kil@host`, from: 'host', args: { reason: `r${OSC52}` }, ok: true });
    expect(line).not.toContain(ESC);
    expect(line).toContain('\\x1b[2K');
  });
});

describe('the CLI prints stored text escaped', () => {
  const prefix = uniquePrefix('terminal');
  let context: Context;
  let batchId: string;
  let pausable: string;
  const env = { REDIS_URL: TEST_REDIS_URL, REVOKER_PREFIX: prefix, LOG_LEVEL: 'warn' };

  beforeAll(async () => {
    context = openContext(resolveConfig(env), 'test-terminal');
    batchId = await context.batches.create({ name: HOSTILE_NAME, source: 'webhook', action: 'delete', createdBy: 'webhook:test' });
    await context.batches.addRejected(batchId, [{ line: 0, reason: 'DeviceSn contains a control character', deviceSn: `AB${OSC52}` }]);
    await context.results.markEnqueued(batchId);
    pausable = await context.batches.create({ name: 'pausable', source: 'csv', action: 'delete', createdBy: 'test' });
  });
  afterAll(async () => {
    await context?.close();
    await removePrefix(prefix);
  });

  async function cli(args: string[]): Promise<{ code: number | string; out: string }> {
    const child = spawnTs('src/cli/main.ts', args, env);
    const code = await child.exited;
    return { code, out: child.output() };
  }

  it('status, batch list, report and audit contain no raw control character', async () => {
    const runs = await Promise.all([cli(['status', batchId]), cli(['batch', 'list']), cli(['report', batchId, '--format', 'csv']), cli(['report', batchId, '--format', 'ndjson']), cli(['status', batchId, '--json'])]);
    for (const { code, out } of runs) {
      expect(code, out).toBe(0);
      // Newlines between lines are the CLI's own; nothing else below U+0020 nor any C1 control.
      expect(out.replaceAll('\n', '')).not.toMatch(/\p{Cc}/u);
    }
    const [status, list, csv] = runs;
    expect(status?.out).toContain('lot 7\\x1b[2K\\x0d[completed] all 50000 devices deleted');
    expect(list?.out).toContain('\\x1b[2K');
    expect(csv?.out).toContain('\\x1b]52;');
  });

  it('refuses a --reason holding control characters, and audits a pause by the OS user and host', async () => {
    const refused = await cli(['batch', 'pause', pausable, '--reason', `ok${ESC}[2K`]);
    expect(refused.code).toBe(2);
    expect(refused.out).toMatch(/--reason contains a control character \(U\+001B\)/);
    expect((await context.batches.get(pausable))?.state).toBe('enqueuing');

    const paused = await cli(['batch', 'pause', pausable, '--reason', 'checking']);
    expect(paused.code, paused.out).toBe(0);
    const audit = await cli(['audit', pausable]);
    expect(audit.code, audit.out).toBe(0);
    expect(audit.out).toMatch(new RegExp(`pause ${pausable} by cli:[^ ]*@[^ ]+ from [^ ]+ reason="checking"`));
  });
});
