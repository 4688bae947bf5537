/** Shared helpers of the emulator suites: an SDK client pointed at an emulator, and polling. */
import { expect } from 'vitest';
import {
  Credential,
  CredentialConfig,
  OpenApiClient,
  OpenApiConfig,
  OpenApiParams,
  OpenApiRequest,
  type OpenApiClientInstance,
} from '../../src/cloud/alicloud-sdk.js';
import { DEMO_ACCOUNT } from '../../src/emulator/index.js';

/*
 * vitest's asymmetric matchers are typed `any`; these give them the type `unknown` once, so the
 * suites can put them in expected objects without unsafe-any lint findings.
 */
/** Matches any string. */
export const anyString = (): unknown => expect.any(String);
/** Matches any number. */
export const anyNumber = (): unknown => expect.any(Number);
/** Matches a string matching `pattern`. */
export const stringMatching = (pattern: RegExp): unknown => expect.stringMatching(pattern);
/** Matches a string containing `part`. */
export const stringContaining = (part: string): unknown => expect.stringContaining(part);

/** What the SDK throws, as far as these tests look at it. */
export type SdkError = Error & { code?: string; statusCode?: number; data?: Record<string, unknown> };

/** Options of `makeClient`. */
export interface ClientOptions {
  accessKeyId?: string;
  accessKeySecret?: string;
  securityToken?: string;
  readTimeout?: number;
  /** Also the SDK's socket idle timeout (httpx passes it as http.request's `timeout`). */
  connectTimeout?: number;
}

/** A real `@alicloud/openapi-client` client talking plain HTTP to the emulator. */
export function makeClient(endpoint: string, options: ClientOptions = {}): OpenApiClientInstance {
  const accessKeyId = options.accessKeyId ?? DEMO_ACCOUNT.accessKeyId;
  const accessKeySecret = options.accessKeySecret ?? DEMO_ACCOUNT.accessKeySecret;
  const credential = new Credential(
    options.securityToken === undefined
      ? new CredentialConfig({ type: 'access_key', accessKeyId, accessKeySecret })
      : new CredentialConfig({ type: 'sts', accessKeyId, accessKeySecret, securityToken: options.securityToken }),
  );
  return new OpenApiClient(
    new OpenApiConfig({
      credential,
      endpoint,
      protocol: 'http',
      readTimeout: options.readTimeout ?? 3000,
      ...(options.connectTimeout === undefined ? {} : { connectTimeout: options.connectTimeout }),
    }),
  );
}

/** The Params the generated onsmqtt SDKs use (DESIGN §1). */
export function onsmqttParams(action: string): InstanceType<typeof OpenApiParams> {
  return new OpenApiParams({
    action,
    version: '2020-04-20',
    protocol: 'HTTPS',
    pathname: '/',
    method: 'POST',
    authType: 'AK',
    style: 'RPC',
    reqBodyType: 'formData',
    bodyType: 'json',
  });
}

/** Calls an action and returns the parsed JSON body. */
export async function callAction(client: OpenApiClientInstance, action: string, query: Record<string, string>): Promise<Record<string, unknown>> {
  const response = (await client.callApi(onsmqttParams(action), new OpenApiRequest({ query }), { autoretry: false } as never)) as {
    body: Record<string, unknown>;
  };
  return response.body;
}

/** Calls an action that must fail and returns what the SDK threw. */
export async function callFailure(client: OpenApiClientInstance, action: string, query: Record<string, string>): Promise<SdkError> {
  try {
    await callAction(client, action, query);
  } catch (error) {
    return error as SdkError;
  }
  throw new Error(`${action} succeeded but was expected to fail`);
}

/** Polls `condition` until it holds or `timeoutMs` passes (then throws). */
export async function waitFor(condition: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** No added latency: keeps the suites fast and the timings predictable. */
export const NO_LATENCY = { medianMs: 0, p99Ms: 0 };
