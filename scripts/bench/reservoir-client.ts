/**
 * Benchmark comparison only: what a user gets from Bottleneck's reservoir settings in clustering
 * mode (the setting the design measured and rejected). Makes API calls through such a limiter for
 * DURATION_MS and exits. Not used by revoker itself.
 */
import Bottleneck from 'bottleneck';
import { Redis } from 'ioredis';
import { CertificateApi } from '../../src/cloud/certificate-api.js';

const env = process.env;
const rate = Number(env.RATE ?? 480);
const durationMs = Number(env.DURATION_MS ?? 10_000);
const redis = new Redis(env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
const connection = new Bottleneck.IORedisConnection({ client: redis });
const limiter = new Bottleneck({
  id: env.LIMITER_ID ?? 'bench-reservoir',
  datastore: 'ioredis',
  connection,
  clearDatastore: false,
  reservoir: rate,
  reservoirRefreshAmount: rate,
  reservoirRefreshInterval: 1_000,
  maxConcurrent: null,
});
const api = new CertificateApi({ endpoint: env.MQTT_API_ENDPOINT ?? '127.0.0.1:8787', protocol: 'http', timeoutMs: 5_000, credentials: { accessKeyId: env.ALIBABA_CLOUD_ACCESS_KEY_ID ?? '', accessKeySecret: env.ALIBABA_CLOUD_ACCESS_KEY_SECRET ?? '', securityToken: null } });
const deviceSns = (env.DEVICES ?? '').split(',');
const instance = env.INSTANCE ?? '';
const caSn = env.CA_SN ?? '';
const deadline = Date.now() + durationMs;
let next = 0;
async function lane(): Promise<void> {
  while (Date.now() < deadline) {
    const deviceSn = deviceSns[next++ % deviceSns.length] ?? 'x';
    await limiter.schedule(() => api.getDevice({ mqttInstanceId: instance, caSn, deviceSn }).catch(() => undefined));
  }
}
await Promise.all(Array.from({ length: 64 }, () => lane()));
await limiter.disconnect(false);
process.exit(0);
