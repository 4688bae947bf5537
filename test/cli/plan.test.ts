/** The plan's pure parts: the rate the budgets allow, durations, counting, flags. */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CliError } from '../../src/cli/cli-context.js';
import { ask, requireConsentPossible } from '../../src/cli/consent.js';
import { commandLine, reasonFlags } from '../../src/cli/operator.js';
import { budgetsFromConfig, effectiveRate, estimateSeconds, formatDuration, formatPlan, PlanCounter, type Plan } from '../../src/cli/plan.js';
import { snapshotPlanNote } from '../../src/cli/snapshot-step.js';

const CONFIG = { ratePerSecond: 480, egressId: 'default', egressRatePerSecond: 280 };

describe('the rate a plan is estimated at', () => {
  it('is the account budget capped by the egress budget of this host when no group is announced', () => {
    expect(effectiveRate(budgetsFromConfig(CONFIG))).toBe(280);
    expect(effectiveRate(budgetsFromConfig({ ...CONFIG, egressRatePerSecond: 300, ratePerSecond: 100 }))).toBe(100);
  });

  it('adds the egress groups in use (each source IP has its own budget) and honours a lowered adaptive rate', () => {
    const groups = [
      { egressId: 'nat-a', perSecond: 280 },
      { egressId: 'nat-b', perSecond: 280 },
    ];
    expect(effectiveRate(budgetsFromConfig(CONFIG, null, groups))).toBe(480);
    expect(effectiveRate(budgetsFromConfig(CONFIG, 350, groups))).toBe(350);
    // 1,000,000 devices over two NAT addresses at the account budget: about 35 minutes.
    expect(formatDuration(estimateSeconds(1_000_000, budgetsFromConfig(CONFIG, null, groups)))).toBe('34 min 44 s');
  });

  it.each([
    [0.2, '< 1 s'],
    [12.1, '13 s'],
    [200, '3 min 20 s'],
    [7_500, '2 h 05 min'],
  ])('formats %s s as %s', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});

describe('PlanCounter and formatPlan', () => {
  it('counts distinct devices, duplicates, instances and CAs, and names at most ten', () => {
    const counter = new PlanCounter();
    for (let index = 0; index < 30; index += 1) counter.addDevice({ mqttInstanceId: `mqtt-${index % 12}`, caSn: 'ca1', deviceSn: `d${index}` });
    counter.addDevice({ mqttInstanceId: 'mqtt-0', caSn: 'ca1', deviceSn: 'd0' });
    expect(counter.devices).toBe(30);
    expect(counter.duplicates).toBe(1);
    const { instances, cas } = counter.targets();
    expect(instances).toHaveLength(12);
    const plan: Plan = { title: 't', action: 'delete', devices: 30, rejected: 0, duplicates: 1, instances, cas, budgets: budgetsFromConfig(CONFIG), calls: 30, estimatedSeconds: 30 / 280, notes: ['n'] };
    const text = formatPlan(plan);
    expect(text).toContain('instances:  12 (mqtt-0, mqtt-1, mqtt-10, mqtt-11, mqtt-2, mqtt-3, mqtt-4, mqtt-5, mqtt-6, mqtt-7, …)');
    expect(text).toContain('(1 duplicates, done once)');
    expect(text).toContain('note:       n');
  });
});

describe('consent and flags', () => {
  const noTerminal = { input: Object.assign(new PassThrough(), { isTTY: false }), output: new PassThrough() };
  const terminal = { input: Object.assign(new PassThrough(), { isTTY: true }), output: new PassThrough() };

  it('refuses without a terminal unless --yes or --dry-run', () => {
    expect(() => requireConsentPossible({}, '--yes', noTerminal)).toThrow(CliError);
    expect(() => requireConsentPossible({}, '--confirm SN', noTerminal)).toThrow(/pass --confirm SN/);
    expect(() => requireConsentPossible({ yes: true }, '--yes', noTerminal)).not.toThrow();
    expect(() => requireConsentPossible({ dryRun: true }, '--yes', noTerminal)).not.toThrow();
    expect(() => requireConsentPossible({}, '--yes', terminal)).not.toThrow();
  });

  it('reads one answer line; an input that ends answers nothing', async () => {
    const answered = ask('go? ', terminal);
    terminal.input.write('  y \n');
    expect(await answered).toBe('y');
    const ended = { input: Object.assign(new PassThrough(), { isTTY: true }), output: new PassThrough() };
    const nothing = ask('go? ', ended);
    ended.input.end();
    expect(await nothing).toBe('');
  });

  it('validates --reason and --reason-code (RFC 5280 names, any case)', () => {
    expect(reasonFlags({ reason: ' leak ', reasonCode: 'KEYCOMPROMISE' })).toEqual({ reason: 'leak', reasonCode: 'keyCompromise' });
    expect(reasonFlags({})).toEqual({ reason: null, reasonCode: null });
    expect(() => reasonFlags({ reasonCode: 'unspecified' })).toThrow(/--reason-code must be one of keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation/);
    expect(() => reasonFlags({ reason: 'a\u001b[31mred' })).toThrow(/control characters/);
  });

  it('records the command as typed, quoted for a shell', () => {
    expect(commandLine(['node', 'main.js', 'enqueue', 'my file.csv', '--reason', "it's leaked"])).toBe("revoker enqueue 'my file.csv' --reason 'it'\\''s leaked'");
  });
});

describe("the plan's snapshot line", () => {
  it('says how many listing pages come before the first revocation under auto, and how long they take', () => {
    // 20,000 devices under one CA: auto lists at most a tenth of their calls, 2,000 pages (7.1 s at
    // 280/s), and the CA holds at least those 20,000; a CA with 5 devices is not worth one page.
    const perCa = new Map([
      ['mqtt-cn-a/ca-big', 20_000],
      ['mqtt-cn-a/ca-tiny', 5],
    ]);
    const note = snapshotPlanNote('auto', perCa, 280);
    // At least the 200 pages its own devices fill (0.7 s at 280/s), at most the 2,000 allowed.
    expect(note).toContain('200 to 2,000 listing pages of 1 CA');
    expect(note).toContain('(up to 8 s, ');
    expect(note).toContain('--snapshot never skips it');
  });

  it('names every CA under always, and nothing under never or when every CA is too small for auto', () => {
    const perCa = new Map([['mqtt-cn-a/ca-tiny', 5]]);
    expect(snapshotPlanNote('always', perCa, 280)).toContain('every page of 1 CA');
    expect(snapshotPlanNote('never', new Map([['mqtt-cn-a/ca-big', 20_000]]), 280)).toBeNull();
    expect(snapshotPlanNote('auto', perCa, 280)).toBeNull();
  });
});
