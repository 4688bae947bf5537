// Copies every src/**/*.lua into dist/src/ after `tsc`, which copies only what it compiles.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

for (const entry of readdirSync('src', { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith('.lua')) continue;
  const from = join(entry.parentPath, entry.name);
  const to = join('dist', from);
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
}
