/**
 * The one place that loads the `@alicloud/*` CommonJS packages.
 *
 * They are compiled TypeScript that set `exports.default = Class`. Node's ESM loader hands an
 * importer the whole `exports` object as the default import (so the class is at `.default`),
 * while vitest/esbuild interop hands over `exports.default` itself. `pickDefault` accepts both,
 * so the compiled CLI and the test suite run the same code path.
 */
import * as openApiModule from '@alicloud/openapi-client';
import * as credentialsModule from '@alicloud/credentials';

type Constructor = abstract new (...args: never[]) => unknown;

/**
 * Returns the class a CommonJS module exported as `exports.default`, whichever interop the
 * loader applied: the class itself, `{ default: Class }`, or `{ default: { default: Class } }`.
 */
export function pickDefault<T extends Constructor>(moduleNamespace: unknown, name: string): T {
  let candidate: unknown = moduleNamespace;
  // At most three hops: namespace → exports object → exports.default.
  for (let hop = 0; hop < 3; hop += 1) {
    if (typeof candidate === 'function') return candidate as T;
    if (candidate === null || typeof candidate !== 'object' || !('default' in candidate)) break;
    candidate = (candidate).default;
  }
  throw new Error(`could not find the ${name} class exported by its CommonJS module`);
}

/** `@alicloud/openapi-client`'s `Client` class. */
export const OpenApiClient = pickDefault<typeof openApiModule.default.default>(openApiModule, '@alicloud/openapi-client Client');
/** `@alicloud/credentials`' `Credential` class (Alibaba's standard credential chain). */
export const Credential = pickDefault<typeof credentialsModule.default.default>(credentialsModule, '@alicloud/credentials Credential');
/** The SDK's model classes, which are named exports and need no interop. */
export { Config as OpenApiConfig, Params as OpenApiParams, OpenApiRequest } from '@alicloud/openapi-client';
export { Config as CredentialConfig } from '@alicloud/credentials';
/** An instance of the SDK's client. */
export type OpenApiClientInstance = InstanceType<typeof OpenApiClient>;
/** An instance of the credential chain. */
export type CredentialInstance = InstanceType<typeof Credential>;
