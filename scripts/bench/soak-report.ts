/**
 * What the soak reports: its summary tables (outcomes and evidence per batch, scenarios,
 * invariants) and the evidence it keeps for a later look; and the completion events it reads back.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import type { OutboxEntry } from '../../src/events/batch-event.js';
import { EVENTS_QUEUE } from '../../src/events/event-delivery.js';
import type { Context } from '../../src/runtime/context.js';
import { busiestForAction, perIpSummary, type EmulatorStatsView, type Spawned } from './bench-support.js';
import type { InvariantResult, SoakBatch } from './soak-invariants.js';

/** A scenario as it happened: its name, whether it happened as it should (null: information only), and what happened. */
export type ScenarioResult = [name: string, ok: boolean | null, what: string];

/** Completion events wherever they are: outbox, processing list, events queue (read in the order they move). */
export async function readEvents(context: Context): Promise<OutboxEntry[]> {
  const raw = [...(await context.redis.lrange(context.keys.eventsOutbox(), 0, -1)), ...(await context.redis.lrange(context.keys.eventsProcessing(), 0, -1))];
  const entries = raw.map((text) => JSON.parse(text) as OutboxEntry);
  const queue = new Queue<OutboxEntry>(EVENTS_QUEUE, { connection: context.redis, prefix: context.keys.prefix });
  try {
    for (const job of await queue.getJobs(['completed', 'failed', 'delayed', 'active', 'wait', 'prioritized', 'waiting-children'], 0, -1)) {
      if (job?.data !== undefined) entries.push(job.data);
    }
  } finally {
    await queue.close();
  }
  return entries;
}

/** Markdown tables: per batch outcome/evidence counts, the scenarios, the invariants. */
export function printSummary(title: string, batches: readonly SoakBatch[], scenarios: readonly ScenarioResult[], invariants: readonly InvariantResult[], stats: EmulatorStatsView): void {
  const keys = new Set<string>();
  const counts = batches.map((batch) => {
    const map = new Map<string, number>();
    for (const record of batch.records) {
      const key = `${record.outcome}/${'evidence' in record ? (record.evidence ?? '-') : '-'}`;
      keys.add(key);
      map.set(key, (map.get(key) ?? 0) + 1);
    }
    return map;
  });
  const columns = [...keys].sort();
  const table = (header: string[], rows: string[][]): string => {
    const widths = header.map((cell, index) => Math.max(cell.length, ...rows.map((row) => row[index]?.length ?? 0)));
    const line = (cells: string[]) => `| ${cells.map((cell, index) => cell.padEnd(widths[index] ?? 0)).join(' | ')} |`;
    return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
  };
  const out: string[] = ['', `## ${title}`, ''];
  out.push(
    table(
      ['batch', 'state', 'devices', ...columns],
      batches.map((batch, index) => [batch.name, batch.state, String(batch.deviceSns.length), ...columns.map((key) => String(counts[index]?.get(key) ?? 0))]),
    ),
  );
  out.push('', table(['scenario', 'result', 'what happened'], scenarios.map(([name, ok, what]) => [name, ok === null ? 'INFO' : ok ? 'PASS' : 'FAIL', what])));
  out.push(
    '',
    table(
      ['invariant', 'result', 'checked', 'violations'],
      invariants.map((invariant) => [invariant.name, invariant.violations.length === 0 && invariant.checked > 0 ? 'PASS' : 'FAIL', String(invariant.checked), String(invariant.violations.length)]),
    ),
  );
  for (const invariant of invariants) {
    const notes = Object.entries(invariant.notes);
    if (notes.length > 0) out.push(`- ${invariant.name}: ${notes.map(([what, count]) => `${what} (${count})`).join('; ')}`);
  }
  const perIp = perIpSummary(stats);
  out.push('', `calls ${stats.total}, throttled ${stats.throttled}; busiest second at one IP ${perIp.busiest} (blocks ${perIp.blocks}), of DeleteDeviceCertificate per account ${busiestForAction(stats, 'DeleteDeviceCertificate')} (information, not invariants: timing on 2 shared cores)`);
  for (const invariant of invariants) {
    if (invariant.violations.length === 0) continue;
    out.push('', `FAIL ${invariant.name}: ${invariant.violations.length} violations${invariant.violations.length > 20 ? ' (first 20)' : ''}`, ...invariant.violations.slice(0, 20).map((violation) => `  ${violation}`));
  }
  for (const invariant of invariants) if (invariant.checked === 0) out.push(`FAIL ${invariant.name}: checked nothing`);
  process.stdout.write(`${out.join('\n')}\n`);
}

/** Writes what the soak saw (records, calls, events, process logs) for a later look. */
export async function keepEvidence(dir: string, data: Record<string, unknown> & { batches: readonly SoakBatch[] }, workers: readonly Spawned[], emulator: Spawned): Promise<void> {
  await mkdir(dir, { recursive: true });
  const { batches, calls, ...rest } = data;
  await writeFile(join(dir, 'records.ndjson'), batches.flatMap((batch) => batch.records.map((record) => JSON.stringify(record))).join('\n'));
  await writeFile(join(dir, 'calls.ndjson'), (calls as unknown[]).map((call) => JSON.stringify(call)).join('\n'));
  const windows = batches.map((batch) => ({ batchId: batch.batchId, name: batch.name, windows: Object.fromEntries(batch.windows) }));
  await writeFile(join(dir, 'windows.json'), JSON.stringify(windows));
  const summary = batches.map(({ records: _records, windows: _windows, deviceSns, ...batch }) => ({ ...batch, devices: deviceSns.length }));
  await writeFile(join(dir, 'run.json'), JSON.stringify({ ...rest, batches: summary }, null, 2));
  await Promise.all(workers.map((worker, index) => writeFile(join(dir, `worker-${index}.log`), worker.output())));
  await writeFile(join(dir, 'emulator.log'), emulator.output());
}
