/**
 * The @alicloud CommonJS classes resolve under both loaders: vitest's interop (here) and Node's
 * own ESM loader (a child process importing the compiled module that `npm ci` builds).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Credential, OpenApiClient, pickDefault } from '../../src/cloud/alicloud-sdk.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('@alicloud interop', () => {
  it('accepts the class itself, { default: Class } and { default: { default: Class } }', () => {
    class Sample {}
    expect(pickDefault(Sample, 'sample')).toBe(Sample);
    expect(pickDefault({ default: Sample }, 'sample')).toBe(Sample);
    expect(pickDefault({ default: { default: Sample } }, 'sample')).toBe(Sample);
    expect(() => pickDefault({ default: { nothing: 1 } }, 'sample')).toThrow(/could not find the sample class/);
  });

  it('resolves the client and the credential chain under vitest', () => {
    expect(typeof OpenApiClient).toBe('function');
    expect(typeof Credential).toBe('function');
    expect(typeof new OpenApiClient({ endpoint: '127.0.0.1:1', protocol: 'http' } as never).callApi).toBe('function');
  });

  it('resolves them under Node\'s own loader, from the compiled build', () => {
    const compiled = `${ROOT}dist/src/cloud/alicloud-sdk.js`;
    // npm ci runs `prepare`, which builds dist/.
    expect(existsSync(compiled), 'dist/ is missing: run npm run build').toBe(true);
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(compiled)}); console.log(typeof m.OpenApiClient, typeof m.Credential, typeof new m.OpenApiClient({ endpoint: '127.0.0.1:1', protocol: 'http' }).callApi);`], { encoding: 'utf8' });
    expect(out.trim()).toBe('function function function');
  });
});
