/**
 * The console's static files, served from this process (never a CDN): its own stylesheet and
 * script (src/server/console/assets, copied next to the compiled module by `npm run build`) and
 * the two libraries it uses, straight from node_modules: uPlot (charts) and idiomorph (replaces
 * live fragments in place, keeping keyboard focus). Read once at start; served with an ETag and a
 * short cache so a new release is picked up within minutes.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { ASSETS_PATH } from './layout.js';

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const require = createRequire(import.meta.url);

/** A file of assets/ beside this module, or of the source tree when running from an older build. */
function ownAsset(name: string): Buffer {
  const beside = fileURLToPath(new URL(`assets/${name}`, import.meta.url));
  if (existsSync(beside)) return readFileSync(beside);
  return readFileSync(beside.replace(`${sep}dist${sep}src${sep}`, `${sep}src${sep}`));
}

function asset(body: Buffer, type: string): Asset {
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

/** Every asset by its path under ASSETS_PATH. */
export function loadConsoleAssets(): Map<string, Asset> {
  return new Map([
    ['console.css', asset(ownAsset('console.css'), 'text/css; charset=utf-8')],
    ['console.js', asset(ownAsset('console.js'), 'text/javascript; charset=utf-8')],
    ['vendor/uPlot.esm.js', asset(readFileSync(require.resolve('uplot/dist/uPlot.esm.js')), 'text/javascript; charset=utf-8')],
    ['vendor/uPlot.min.css', asset(readFileSync(require.resolve('uplot/dist/uPlot.min.css')), 'text/css; charset=utf-8')],
    ['vendor/idiomorph.esm.js', asset(readFileSync(require.resolve('idiomorph/dist/idiomorph.esm.js')), 'text/javascript; charset=utf-8')],
  ]);
}

/** Registers GET ASSETS_PATH/* (no authentication: nothing in them is private). */
export function registerConsoleAssets(app: FastifyInstance): void {
  const assets = loadConsoleAssets();
  app.get(`${ASSETS_PATH}/*`, async (request, reply) => {
    const name = (request.params as Record<string, string | undefined>)['*'] ?? '';
    const found = assets.get(name);
    if (found === undefined) return reply.code(404).type('text/plain; charset=utf-8').send('no such file');
    reply.header('etag', found.etag).header('cache-control', 'public, max-age=300');
    if (request.headers['if-none-match'] === found.etag) return reply.code(304).send();
    return reply.type(found.type).send(found.body);
  });
}
