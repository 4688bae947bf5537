/**
 * Loads a Redis script kept as a `.lua` file next to the module that uses it (CONVENTIONS.md 11).
 *
 * The TypeScript build does not copy `.lua` files, so `npm run build` does (scripts/copy-lua.mjs);
 * when a compiled module runs from `dist/` without the copy (a build made before it existed),
 * the source tree's file is used instead.
 */
import { existsSync, readFileSync } from 'node:fs';
import { sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The text of `name` (e.g. `lua/reserve-slot.lua`), relative to the module at `moduleUrl`. */
export function loadLua(moduleUrl: string, name: string): string {
  const beside = fileURLToPath(new URL(name, moduleUrl));
  if (existsSync(beside)) return readFileSync(beside, 'utf8');
  const inSource = beside.replace(`${sep}dist${sep}src${sep}`, `${sep}src${sep}`);
  return readFileSync(inSource, 'utf8');
}
