/**
 * The plan a command shows before it changes anything: what, how many, where, under which
 * budgets, and about how long. `enqueue`, `enqueue-ca` and `ca delete` print it and wait for a
 * yes; `--dry-run` prints it and stops. Pure apart from reading the budgets in use.
 */
import type { Config } from '../config/config.js';
import { readBudgetRates } from '../limiter/budget-status.js';
import type { Context } from '../runtime/context.js';

/** Most distinct instances or CAs a plan keeps by name (a plan is read by a person). */
const MAX_NAMED = 10;

/** Counts devices, instances and CAs of an input as it streams by. */
export class PlanCounter {
  devices = 0;
  rejected = 0;
  duplicates = 0;
  private readonly seen = new Set<string>();
  private readonly instances = new Set<string>();
  /** Devices per CA (key `instance/CA`): what `--snapshot auto` weighs a listing against. */
  readonly perCa = new Map<string, number>();

  /** Counts one valid device; duplicates (same instance, CA, serial) are counted apart. */
  addDevice(device: { mqttInstanceId: string; caSn: string; deviceSn: string }): void {
    // Held for duplicate counting only: about 100 bytes per distinct device (1,000,000: ~100 MB).
    const key = `${device.mqttInstanceId}\u0000${device.caSn}\u0000${device.deviceSn}`;
    if (this.seen.has(key)) {
      this.duplicates += 1;
      return;
    }
    this.seen.add(key);
    this.devices += 1;
    this.instances.add(device.mqttInstanceId);
    const ca = `${device.mqttInstanceId}/${device.caSn}`;
    this.perCa.set(ca, (this.perCa.get(ca) ?? 0) + 1);
  }

  /** Distinct instances and CAs (CAs as instance/CA). */
  targets(): { instances: string[]; cas: string[] } {
    return { instances: [...this.instances].sort(), cas: [...this.perCa.keys()].sort() };
  }
}

/** The rate budgets a plan is estimated with. */
export interface PlanBudgets {
  /** Account budget per API operation (RATE_LIMIT_PER_SECOND), or the lower adaptive rate now in force. */
  accountPerSecond: number;
  /** The adaptive rate when throttling has lowered it below the configured budget. */
  adaptivePerSecond: number | null;
  /** This process's egress group and its budget. */
  egressId: string;
  egressPerSecond: number;
  /** Egress groups announced by running processes (workers), with their budgets. */
  egressGroups: { egressId: string; perSecond: number }[];
}

/** What a command is about to do. */
export interface Plan {
  /** One line: `delete 1,000 device certificates listed in leaked.csv`. */
  title: string;
  action: string;
  devices: number;
  rejected: number;
  duplicates: number;
  instances: string[];
  cas: string[];
  budgets: PlanBudgets;
  /** API calls the plan costs (revocations, listing pages, CA calls). */
  calls: number;
  /** At the rate the budgets allow. */
  estimatedSeconds: number;
  /** Extra lines: what cannot be undone, the input's hash, … */
  notes: string[];
}

/** Reads the budgets in force: the configuration, the adaptive rate and the egress groups in use. */
export async function readPlanBudgets(context: Context): Promise<PlanBudgets> {
  const { config } = context;
  let adaptive: number | null = null;
  const egressGroups: { egressId: string; perSecond: number }[] = [];
  try {
    if (config.rateLimitKey !== null) {
      const current = await context.redis.get(context.keys.currentRate(config.rateLimitKey));
      if (current !== null && Number(current) < config.ratePerSecond) adaptive = Number(current);
    }
    for (const budget of await readBudgetRates(context.redis, context.keys)) {
      if (budget.kind === 'egress') egressGroups.push({ egressId: budget.label, perSecond: budget.configuredPerSecond });
    }
  } catch {
    // The plan is advice: without Redis' view, the configuration alone.
  }
  return budgetsFromConfig(config, adaptive, egressGroups);
}

/** Budgets from the configuration alone (plus what Redis said, when known). */
export function budgetsFromConfig(config: Pick<Config, 'ratePerSecond' | 'egressId' | 'egressRatePerSecond'>, adaptive: number | null = null, egressGroups: { egressId: string; perSecond: number }[] = []): PlanBudgets {
  return { accountPerSecond: config.ratePerSecond, adaptivePerSecond: adaptive, egressId: config.egressId, egressPerSecond: config.egressRatePerSecond, egressGroups };
}

/**
 * Calls per second the budgets allow for one operation: the account budget, capped by the egress
 * budgets of the groups in use (each source IP has its own; with none announced, this process's).
 */
export function effectiveRate(budgets: PlanBudgets): number {
  const account = budgets.adaptivePerSecond ?? budgets.accountPerSecond;
  const groups = budgets.egressGroups.length > 0 ? budgets.egressGroups : [{ egressId: budgets.egressId, perSecond: budgets.egressPerSecond }];
  const egress = groups.reduce((sum, group) => sum + group.perSecond, 0);
  return Math.max(1, Math.min(account, egress));
}

/** Seconds `calls` take at the budgets' rate. */
export function estimateSeconds(calls: number, budgets: PlanBudgets): number {
  return calls / effectiveRate(budgets);
}

/** `2 h 05 min`, `3 min 20 s`, `12 s`, `< 1 s`. */
export function formatDuration(seconds: number): string {
  if (seconds < 1) return '< 1 s';
  const whole = Math.ceil(seconds);
  const hours = Math.floor(whole / 3_600);
  const minutes = Math.floor((whole % 3_600) / 60);
  const secs = whole % 60;
  if (hours > 0) return `${hours} h ${String(minutes).padStart(2, '0')} min`;
  if (minutes > 0) return `${minutes} min ${String(secs).padStart(2, '0')} s`;
  return `${secs} s`;
}

function named(values: string[]): string {
  if (values.length === 0) return 'none';
  const shown = values.slice(0, MAX_NAMED).join(', ');
  return values.length > MAX_NAMED ? `${values.length} (${shown}, …)` : `${values.length} (${shown})`;
}

/**
 * The plan of revoking the devices a CSV file lists (the CLI's `enqueue`, the console's upload):
 * one call per device, the input's hash, and any `notes` the caller adds.
 */
export function csvFilePlan(fileName: string, action: string, counter: PlanCounter, sha256: string | null, budgets: PlanBudgets, notes: readonly string[] = []): Plan {
  const { instances, cas } = counter.targets();
  return {
    title: `${action} the ${counter.devices.toLocaleString('en-US')} device certificates listed in ${fileName}`,
    action,
    devices: counter.devices,
    rejected: counter.rejected,
    duplicates: counter.duplicates,
    instances,
    cas,
    budgets,
    calls: counter.devices,
    estimatedSeconds: estimateSeconds(counter.devices, budgets),
    notes: [...(sha256 !== null ? [`input SHA-256 ${sha256}`] : []), ...notes],
  };
}

/** The plan as the lines a person reads. */
export function formatPlan(plan: Plan): string {
  const b = plan.budgets;
  const groups = b.egressGroups.length > 0 ? b.egressGroups.map((group) => `${group.egressId} ${group.perSecond}/s`).join(', ') : `${b.egressId} ${b.egressPerSecond}/s (this host)`;
  const lines = [
    `plan: ${plan.title}`,
    `  action:     ${plan.action}`,
    `  devices:    ${plan.devices.toLocaleString('en-US')}${plan.rejected > 0 ? `  (${plan.rejected} input rows rejected)` : ''}${plan.duplicates > 0 ? `  (${plan.duplicates} duplicates, done once)` : ''}`,
    `  instances:  ${named(plan.instances)}`,
    `  CAs:        ${named(plan.cas)}`,
    `  budgets:    account ${b.accountPerSecond}/s per API operation${b.adaptivePerSecond !== null ? ` (lowered to ${b.adaptivePerSecond}/s by throttling)` : ''}; egress ${groups}`,
    `  calls:      ${plan.calls.toLocaleString('en-US')}, about ${formatDuration(plan.estimatedSeconds)} at ${Math.round(effectiveRate(b))}/s`,
    ...plan.notes.map((note) => `  note:       ${note}`),
  ];
  return `${lines.join('\n')}\n`;
}

/** The plan as JSON (`--dry-run --json`). */
export function planJson(plan: Plan): Record<string, unknown> {
  return { ...plan, estimatedSeconds: Math.ceil(plan.estimatedSeconds), ratePerSecond: effectiveRate(plan.budgets) };
}
