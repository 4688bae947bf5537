/** `resolveConfig`: the defaults of DESIGN.md §3, and errors that name the variable but never a secret. */
import { describe, it, expect } from 'vitest';
import { ConfigError, resolveConfig, resolveRateLimitKey, type Config } from '../../src/config/config.js';

/** Runs `resolveConfig` expecting a ConfigError, and returns it. */
function configError(env: Record<string, string>): ConfigError {
  try {
    resolveConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`resolveConfig accepted ${JSON.stringify(Object.keys(env))}`);
}

describe('defaults (DESIGN.md §3)', () => {
  const config: Config = resolveConfig({});

  it.each([
    ['redisUrl', 'redis://127.0.0.1:6379'],
    ['prefix', '{revoker}'],
    ['region', 'cn-hangzhou'],
    ['apiEndpoint', 'onsmqtt.cn-hangzhou.aliyuncs.com'],
    ['apiProtocol', 'https'],
    ['ratePerSecond', 480],
    ['workerConcurrency', 64],
    ['maxAttempts', 8],
    ['highWaterJobs', 50_000],
    ['retentionDays', 30],
    ['credentials', null],
    ['rateLimitKey', null],
    ['adminToken', null],
    ['adminTokensFile', null],
    ['webhookSendersFile', null],
    ['trustProxy', false],
    ['eventsAllowedOrigins', []],
    ['eventsAllowPrivate', false],
    ['workerMetricsHost', '127.0.0.1'],
  ] as const)('%s = %j', (key, value) => {
    expect(config[key]).toEqual(value);
  });

  it('has no secrets configured and no webhook secrets', () => {
    expect(config.webhookSecrets).toEqual([]);
  });

  it('does not read process.env when given an explicit env', () => {
    const saved = process.env.RATE_LIMIT_PER_SECOND;
    process.env.RATE_LIMIT_PER_SECOND = '123';
    try {
      expect(resolveConfig({}).ratePerSecond).toBe(480);
    } finally {
      if (saved === undefined) delete process.env.RATE_LIMIT_PER_SECOND;
      else process.env.RATE_LIMIT_PER_SECOND = saved;
    }
  });

  it('builds the endpoint from MQTT_REGION', () => {
    expect(resolveConfig({ MQTT_REGION: 'ap-southeast-1' })).toMatchObject({ region: 'ap-southeast-1', apiEndpoint: 'onsmqtt.ap-southeast-1.aliyuncs.com' });
  });

  it('an explicit MQTT_API_ENDPOINT wins over the region', () => {
    expect(resolveConfig({ MQTT_REGION: 'cn-shanghai', MQTT_API_ENDPOINT: '127.0.0.1:8787' }).apiEndpoint).toBe('127.0.0.1:8787');
  });

  it('takes explicit values', () => {
    const config = resolveConfig({
      REDIS_URL: 'redis://redis.internal:6380/2',
      REVOKER_PREFIX: '{other}',
      MQTT_API_PROTOCOL: 'http',
      RATE_LIMIT_PER_SECOND: '250',
      WORKER_CONCURRENCY: '16',
      MAX_ATTEMPTS: '3',
      QUEUE_HIGH_WATER_JOBS: '1000',
      RESULT_RETENTION_DAYS: '7',
    });
    expect(config).toMatchObject({
      redisUrl: 'redis://redis.internal:6380/2',
      prefix: '{other}',
      apiProtocol: 'http',
      ratePerSecond: 250,
      workerConcurrency: 16,
      maxAttempts: 3,
      highWaterJobs: 1000,
      retentionDays: 7,
    });
  });
});

describe('RATE_LIMIT_PER_SECOND', () => {
  it('accepts the API cap, 500', () => {
    expect(resolveConfig({ RATE_LIMIT_PER_SECOND: '500' }).ratePerSecond).toBe(500);
  });

  it('accepts 1', () => {
    expect(resolveConfig({ RATE_LIMIT_PER_SECOND: '1' }).ratePerSecond).toBe(1);
  });

  it.each(['501', '900', '0', 'abc', '1.5', '-5', '480/s'])('refuses %j naming the variable and the value', (value) => {
    const error = configError({ RATE_LIMIT_PER_SECOND: value });
    expect(error.variable).toBe('RATE_LIMIT_PER_SECOND');
    expect(error.message).toContain('RATE_LIMIT_PER_SECOND');
    expect(error.message).toContain(`'${value}'`);
  });
});

describe('a bad value of each numeric variable names its variable', () => {
  it.each([
    ['WORKER_CONCURRENCY', '0'],
    ['WORKER_CONCURRENCY', 'many'],
    ['MAX_ATTEMPTS', '0'],
    ['MAX_ATTEMPTS', '2.5'],
    ['MQTT_API_TIMEOUT_MS', 'soon'],
    ['RETRY_BASE_MS', '-1'],
    ['RETRY_MAX_MS', 'x'],
    ['JOB_LOCK_MS', '10'],
    ['QUEUE_HIGH_WATER_JOBS', '1e6'],
    ['RESULT_RETENTION_DAYS', '0'],
  ])('%s=%j', (variable, value) => {
    const error = configError({ [variable]: value });
    expect(error.variable).toBe(variable);
    expect(error.message).toContain(variable);
    expect(error.message).toContain(`'${value}'`);
  });

  it('RETRY_MAX_MS below RETRY_BASE_MS names RETRY_MAX_MS', () => {
    const error = configError({ RETRY_BASE_MS: '5000', RETRY_MAX_MS: '1000' });
    expect(error.variable).toBe('RETRY_MAX_MS');
    expect(error.message).toContain('RETRY_MAX_MS');
  });

  it.each([
    ['MQTT_API_PROTOCOL', 'ftp'],
    ['LOG_LEVEL', 'loud'],
    ['MQTT_REGION', 'Hangzhou!'],
    ['MQTT_API_ENDPOINT', 'https://onsmqtt.cn-hangzhou.aliyuncs.com'],
    ['REVOKER_PREFIX', 'a:b'],
  ])('%s=%j', (variable, value) => {
    const error = configError({ [variable]: value });
    expect(error.variable).toBe(variable);
    expect(error.message).toContain(variable);
  });
});

describe('secrets never appear in error messages', () => {
  it('a bad WEBHOOK_SECRETS entry is named by position, not echoed', () => {
    const secret = 'not-a-whsec-TOPSECRET-value';
    const error = configError({ WEBHOOK_SECRETS: `whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw,${secret}` });
    expect(error.variable).toBe('WEBHOOK_SECRETS');
    expect(error.message).toContain('WEBHOOK_SECRETS');
    expect(error.message).toContain('2');
    expect(error.message).not.toContain(secret);
    expect(error.message).not.toContain('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
  });

  it('accepts several valid webhook secrets (rotation)', () => {
    const secrets = ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD'];
    expect(resolveConfig({ WEBHOOK_SECRETS: ` ${secrets.join(' , ')} ` }).webhookSecrets).toEqual(secrets);
  });

  it('an AccessKey secret without its id names the missing id and never the secret', () => {
    const secret = 'AKSECRET-abcdefghijklmnopqrstu';
    const error = configError({ ALIBABA_CLOUD_ACCESS_KEY_SECRET: secret });
    expect(error.variable).toBe('ALIBABA_CLOUD_ACCESS_KEY_ID');
    expect(error.message).toContain('ALIBABA_CLOUD_ACCESS_KEY_ID');
    expect(error.message).not.toContain(secret);
  });

  it('an AccessKey id without its secret names the missing secret', () => {
    const error = configError({ ALIBABA_CLOUD_ACCESS_KEY_ID: 'LTAI5tExampleKeyId0001' });
    expect(error.variable).toBe('ALIBABA_CLOUD_ACCESS_KEY_SECRET');
    expect(error.message).toContain('ALIBABA_CLOUD_ACCESS_KEY_SECRET');
  });

  it('a too-short ADMIN_TOKEN is refused without echoing it', () => {
    const token = 'sh0rtTok3n';
    const error = configError({ ADMIN_TOKEN: token });
    expect(error.variable).toBe('ADMIN_TOKEN');
    expect(error.message).toContain('ADMIN_TOKEN');
    expect(error.message).not.toContain(token);
  });

  it('refuses an ADMIN_TOKEN of 31 characters, accepts one of 32', () => {
    const error = configError({ ADMIN_TOKEN: 'y'.repeat(31) });
    expect(error.message).toContain('at least 32 characters');
    expect(error.message).not.toContain('y'.repeat(31));
    expect(resolveConfig({ ADMIN_TOKEN: 'x'.repeat(32) }).adminToken).toBe('x'.repeat(32));
  });

  it('a bad REDIS_URL with a password is refused without echoing the password', () => {
    const password = 'p4ssw0rd-REDIS-secret';
    const error = configError({ REDIS_URL: `http://default:${password}@redis.internal:6379` });
    expect(error.variable).toBe('REDIS_URL');
    expect(error.message).toContain('REDIS_URL');
    expect(error.message).not.toContain(password);
  });

  it('a good REDIS_URL with a password is accepted as is', () => {
    expect(resolveConfig({ REDIS_URL: 'rediss://default:pw@redis.internal:6380' }).redisUrl).toBe('rediss://default:pw@redis.internal:6380');
  });
});

describe('credentials and the rate-limit key', () => {
  const accessKeyId = 'LTAI5tExampleKeyId0001';
  const env = { ALIBABA_CLOUD_ACCESS_KEY_ID: accessKeyId, ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'secret-value-123' };

  it('takes explicit credentials, with an optional STS token (which needs the account id)', () => {
    expect(resolveConfig(env).credentials).toEqual({ accessKeyId, accessKeySecret: 'secret-value-123', securityToken: null });
    expect(resolveConfig({ ...env, ALIBABA_CLOUD_SECURITY_TOKEN: 'sts-token', ALIBABA_CLOUD_ACCOUNT_ID: '1234567890123456' }).credentials?.securityToken).toBe('sts-token');
  });

  it('STS credentials without an account id are refused at start, naming ALIBABA_CLOUD_ACCOUNT_ID and never the token', () => {
    const error = configError({ ...env, ALIBABA_CLOUD_SECURITY_TOKEN: 'sts-token-value-xyz' });
    expect(error.variable).toBe('ALIBABA_CLOUD_ACCOUNT_ID');
    expect(error.message).toMatch(/STS/);
    expect(error.message).not.toContain('sts-token-value-xyz');
    expect(error.message).not.toContain('secret-value-123');
    // An explicit RATE_LIMIT_KEY says which processes share; that is enough.
    expect(resolveConfig({ ...env, ALIBABA_CLOUD_SECURITY_TOKEN: 'sts', RATE_LIMIT_KEY: 'acct-a' }).rateLimitKey).toBe('acct-a');
  });

  it('the account id is the budget key: two AccessKeys of one account (a rotation) share one budget', () => {
    const a = resolveConfig({ ...env, ALIBABA_CLOUD_ACCOUNT_ID: '1234567890123456' }).rateLimitKey;
    const b = resolveConfig({ ...env, ALIBABA_CLOUD_ACCESS_KEY_ID: 'LTAI5tRotatedKey0002', ALIBABA_CLOUD_ACCOUNT_ID: '1234567890123456' }).rateLimitKey;
    expect(a).toBe(b);
    expect(a).toBe('acct-1234567890123456');
    expect(resolveConfig({ ...env, ALIBABA_CLOUD_ACCOUNT_ID: '1234567890123456', RATE_LIMIT_KEY: 'explicit' }).rateLimitKey).toBe('explicit');
    expect(configError({ ALIBABA_CLOUD_ACCOUNT_ID: 'has space' }).variable).toBe('ALIBABA_CLOUD_ACCOUNT_ID');
  });

  it('credentials from the chain: a long-lived key derives the key, a temporary one without account id is refused', () => {
    const config = resolveConfig({});
    expect(config.rateLimitKey).toBeNull();
    expect(resolveRateLimitKey(config, { accessKeyId, securityToken: null })).toBe(resolveConfig(env).rateLimitKey);
    expect(() => resolveRateLimitKey(config, { accessKeyId: 'STS.NUabc', securityToken: 'token' })).toThrow(/ALIBABA_CLOUD_ACCOUNT_ID/);
    expect(resolveRateLimitKey(resolveConfig({ ALIBABA_CLOUD_ACCOUNT_ID: '42' }), { accessKeyId: 'STS.NUabc', securityToken: 'token' })).toBe('acct-42');
  });

  it('derives the key from the AccessKey id without containing it', () => {
    const key = resolveConfig(env).rateLimitKey;
    expect(key).toMatch(/^[A-Za-z0-9_.-]{1,64}$/);
    expect(key).not.toContain(accessKeyId);
    expect(key!.toLowerCase()).not.toContain(accessKeyId.toLowerCase());
  });

  it('is stable for one id and different for another (processes of one account share, accounts do not)', () => {
    expect(resolveConfig(env).rateLimitKey).toBe(resolveConfig({ ...env }).rateLimitKey);
    const other = resolveConfig({ ...env, ALIBABA_CLOUD_ACCESS_KEY_ID: 'LTAI5tExampleKeyId0002' }).rateLimitKey;
    expect(other).not.toBe(resolveConfig(env).rateLimitKey);
  });

  it('does not depend on the secret (rotating the secret keeps the same limiter)', () => {
    expect(resolveConfig({ ...env, ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'rotated' }).rateLimitKey).toBe(resolveConfig(env).rateLimitKey);
  });

  it('an explicit RATE_LIMIT_KEY wins', () => {
    expect(resolveConfig({ ...env, RATE_LIMIT_KEY: 'shared-account-a' }).rateLimitKey).toBe('shared-account-a');
    expect(resolveConfig({ RATE_LIMIT_KEY: 'shared-account-a' }).rateLimitKey).toBe('shared-account-a');
  });

  it('a bad RATE_LIMIT_KEY names its variable', () => {
    expect(configError({ RATE_LIMIT_KEY: 'has:colon' }).variable).toBe('RATE_LIMIT_KEY');
  });
});

describe('egress budget', () => {
  it('defaults to one shared egress at 280 calls/s, under the API per-IP limit of 300', () => {
    const config = resolveConfig({});
    expect(config.egressId).toBe('default');
    expect(config.egressRatePerSecond).toBe(280);
  });

  it('takes an egress id and rate up to 300, refuses more, naming the variable and value', () => {
    expect(resolveConfig({ EGRESS_ID: 'nat-a.eip-1', EGRESS_RATE_LIMIT_PER_SECOND: '300' })).toMatchObject({ egressId: 'nat-a.eip-1', egressRatePerSecond: 300 });
    const error = configError({ EGRESS_RATE_LIMIT_PER_SECOND: '301' });
    expect(error.variable).toBe('EGRESS_RATE_LIMIT_PER_SECOND');
    expect(error.message).toContain("'301'");
    expect(configError({ EGRESS_ID: 'a b' }).variable).toBe('EGRESS_ID');
  });
});

describe('least-privilege settings (issue 13)', () => {
  it('normalises EVENTS_ALLOWED_ORIGINS and refuses an entry that is not a bare origin', () => {
    expect(resolveConfig({ EVENTS_ALLOWED_ORIGINS: ' https://Hooks.Example.com:443 , http://127.0.0.1:8080/ ' }).eventsAllowedOrigins).toEqual(['https://hooks.example.com', 'http://127.0.0.1:8080']);
    for (const bad of ['https://hooks.example.com/path', 'hooks.example.com', 'ftp://x.example.com', 'https://u:p@x.example.com']) {
      expect(configError({ EVENTS_ALLOWED_ORIGINS: bad }).variable, bad).toBe('EVENTS_ALLOWED_ORIGINS');
    }
  });

  it('reads EVENTS_ALLOW_PRIVATE as a boolean', () => {
    expect(resolveConfig({ EVENTS_ALLOW_PRIVATE: 'true' }).eventsAllowPrivate).toBe(true);
    expect(configError({ EVENTS_ALLOW_PRIVATE: 'yes' }).variable).toBe('EVENTS_ALLOW_PRIVATE');
  });

  it('reads TRUST_PROXY as false, true, a hop count or addresses and CIDR ranges', () => {
    expect(resolveConfig({ TRUST_PROXY: 'true' }).trustProxy).toBe(true);
    expect(resolveConfig({ TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    expect(resolveConfig({ TRUST_PROXY: '2' }).trustProxy).toBe(2);
    expect(resolveConfig({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1 ,::1' }).trustProxy).toEqual(['10.0.0.0/8', '127.0.0.1', '::1']);
    for (const bad of ['10.0.0.0/33', 'proxy.internal', '10.0.0.0/8/1']) expect(configError({ TRUST_PROXY: bad }).variable, bad).toBe('TRUST_PROXY');
  });

  it('takes the files and WORKER_METRICS_HOST as given', () => {
    expect(resolveConfig({ WEBHOOK_SENDERS_FILE: '/etc/revoker/senders.json', ADMIN_TOKENS_FILE: '/etc/revoker/tokens.json', WORKER_METRICS_HOST: '0.0.0.0' })).toMatchObject({
      webhookSendersFile: '/etc/revoker/senders.json',
      adminTokensFile: '/etc/revoker/tokens.json',
      workerMetricsHost: '0.0.0.0',
    });
    expect(configError({ WORKER_METRICS_HOST: 'not a host!' }).variable).toBe('WORKER_METRICS_HOST');
  });
});
