/**
 * The device-certificate calls of ApsaraMQ for MQTT (onsmqtt 2020-04-20), made through
 * `@alicloud/openapi-client`'s `callApi` with the Params its generated SDKs use.
 *
 * Retrying is deliberately not done here: the worker owns retries, backoff and the rate.
 * Keep-alive: the SDK's HTTP layer (httpx) shares one keep-alive agent per process as long as
 * the runtime options do not set `keepAlive` (setting it creates a new agent per call), so we
 * never set it.
 */
import {
  Credential,
  CredentialConfig,
  OpenApiClient,
  OpenApiConfig,
  OpenApiParams,
  OpenApiRequest,
  type CredentialInstance,
  type OpenApiClientInstance,
} from './alicloud-sdk.js';

/** The action a revocation performs. */
export type RevocationAction = 'delete' | 'inactivate';

/** Identifies one device certificate. */
export interface DeviceRef {
  mqttInstanceId: string;
  caSn: string;
  deviceSn: string;
}

/** A device certificate as listed under its CA. */
export interface ListedDevice {
  deviceSn: string;
  caSn: string;
  /** "1" active, "0" inactive. */
  status: string;
  validBegin: string | null;
  validEnd: string | null;
}

/** Options of `CertificateApi`. */
export interface CertificateApiOptions {
  /** host[:port] of the endpoint, e.g. `onsmqtt.cn-hangzhou.aliyuncs.com`. */
  endpoint: string;
  /** `https` in production; `http` only for the local emulator. */
  protocol: 'http' | 'https';
  /** Read timeout of one call. */
  timeoutMs: number;
  /**
   * Connect timeout of one call. httpx applies it as the socket's inactivity timeout for the
   * whole call, and its read timer does not always start on a reused keep-alive socket, so
   * it defaults to the read timeout: either way a call ends after `timeoutMs`.
   */
  connectTimeoutMs: number | null;
  /** Explicit AccessKey credentials; null uses Alibaba's standard credential chain. */
  credentials: { accessKeyId: string; accessKeySecret: string; securityToken: string | null } | null;
}

/** Defaults of `CertificateApiOptions`. */
export const CERTIFICATE_API_DEFAULTS = {
  protocol: 'https',
  timeoutMs: 10_000,
  connectTimeoutMs: null,
} as const;

const API_VERSION = '2020-04-20';

/** What a successful call returned. */
export interface CallResult {
  requestId: string | null;
  body: Record<string, unknown>;
}

/** Builds the SDK's credential object: explicit keys when configured, else the standard chain. */
export function createCredential(credentials: CertificateApiOptions['credentials']): CredentialInstance {
  if (credentials === null) return new Credential();
  if (credentials.securityToken !== null) {
    return new Credential(
      new CredentialConfig({
        type: 'sts',
        accessKeyId: credentials.accessKeyId,
        accessKeySecret: credentials.accessKeySecret,
        securityToken: credentials.securityToken,
      }),
    );
  }
  return new Credential(
    new CredentialConfig({ type: 'access_key', accessKeyId: credentials.accessKeyId, accessKeySecret: credentials.accessKeySecret }),
  );
}

/** A string or number field of a response as text; anything else as null. */
function scalar(value: unknown): string | null {
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : null;
}

/** The device- and CA-certificate calls revoker uses. Throws the SDK's errors untouched. */
export class CertificateApi {
  private readonly client: OpenApiClientInstance;
  private readonly credential: CredentialInstance;
  private readonly options: CertificateApiOptions;

  constructor(options: Partial<CertificateApiOptions> & Pick<CertificateApiOptions, 'endpoint' | 'credentials'>) {
    this.options = { ...CERTIFICATE_API_DEFAULTS, ...options };
    this.credential = createCredential(this.options.credentials);
    this.client = new OpenApiClient(
      new OpenApiConfig({
        credential: this.credential,
        endpoint: this.options.endpoint,
        protocol: this.options.protocol,
        readTimeout: this.options.timeoutMs,
        connectTimeout: this.options.connectTimeoutMs ?? this.options.timeoutMs,
      }),
    );
  }

  /**
   * The AccessKey id the calls are signed with, and whether it comes with a security token
   * (temporary credentials); asks the credential chain when not explicit. No secret is returned.
   */
  async identity(): Promise<{ accessKeyId: string; securityToken: string | null }> {
    const model = await this.credential.getCredential();
    const token = model.securityToken ?? '';
    return { accessKeyId: model.accessKeyId ?? '', securityToken: token === '' ? null : token };
  }

  /** Revokes one device certificate, by deleting or inactivating it. */
  revoke(device: DeviceRef, action: RevocationAction): Promise<CallResult> {
    const name = action === 'delete' ? 'DeleteDeviceCertificate' : 'InactivateDeviceCertificate';
    return this.call(name, { MqttInstanceId: device.mqttInstanceId, CaSn: device.caSn, DeviceSn: device.deviceSn });
  }

  /** Reads one device certificate. */
  getDevice(device: DeviceRef): Promise<CallResult> {
    return this.call('GetDeviceCertificate', { MqttInstanceId: device.mqttInstanceId, CaSn: device.caSn, DeviceSn: device.deviceSn });
  }

  /** Reads a CA certificate (a preflight before revoking everything under it). */
  getCa(mqttInstanceId: string, caSn: string): Promise<CallResult> {
    return this.call('GetCaCertificate', { MqttInstanceId: mqttInstanceId, Sn: caSn });
  }

  /** Inactivates a CA certificate (reversible with `activateCa`). */
  inactivateCa(mqttInstanceId: string, caSn: string): Promise<CallResult> {
    return this.call('InactivateCaCertificate', { MqttInstanceId: mqttInstanceId, Sn: caSn });
  }

  /** Activates a CA certificate again (the API's name for it: ActiveCaCertificate). */
  activateCa(mqttInstanceId: string, caSn: string): Promise<CallResult> {
    return this.call('ActiveCaCertificate', { MqttInstanceId: mqttInstanceId, Sn: caSn });
  }

  /**
   * Deletes a CA certificate. The API deletes every device certificate registered under it too,
   * and nothing undoes it.
   */
  deleteCa(mqttInstanceId: string, caSn: string): Promise<CallResult> {
    return this.call('DeleteCaCertificate', { MqttInstanceId: mqttInstanceId, Sn: caSn });
  }

  /** One page (from 1) of the device certificates under a CA; `pageSize` 1–100. */
  async listDevices(mqttInstanceId: string, caSn: string, pageNo: number, pageSize: number): Promise<{ requestId: string | null; devices: ListedDevice[] }> {
    const result = await this.call('ListDeviceCertificateByCaSn', {
      MqttInstanceId: mqttInstanceId,
      CaSn: caSn,
      PageNo: String(pageNo),
      PageSize: String(pageSize),
    });
    const data = result.body.Data as { DeviceCertificateVOS?: unknown } | undefined;
    const rows = Array.isArray(data?.DeviceCertificateVOS) ? (data.DeviceCertificateVOS as Record<string, unknown>[]) : [];
    const devices = rows.map((row) => ({
      deviceSn: scalar(row.DeviceSn) ?? '',
      caSn: scalar(row.CaSn) ?? caSn,
      status: scalar(row.Status) ?? '',
      validBegin: scalar(row.ValidBegin),
      validEnd: scalar(row.ValidEnd),
    }));
    return { requestId: result.requestId, devices };
  }

  private async call(action: string, query: Record<string, string>): Promise<CallResult> {
    const params = new OpenApiParams({
      action,
      version: API_VERSION,
      protocol: 'HTTPS',
      pathname: '/',
      method: 'POST',
      authType: 'AK',
      style: 'RPC',
      reqBodyType: 'formData',
      bodyType: 'json',
    });
    // autoretry off: every retry decision is the worker's (and the SDK's do nothing for API errors).
    const runtime = { autoretry: false } as unknown as Parameters<OpenApiClientInstance['callApi']>[2];
    const response = (await this.client.callApi(params, new OpenApiRequest({ query }), runtime)) as { body?: unknown };
    const body = (response.body !== null && typeof response.body === 'object' ? response.body : {}) as Record<string, unknown>;
    return { requestId: typeof body.RequestId === 'string' ? body.RequestId : null, body };
  }
}
