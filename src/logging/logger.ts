/**
 * pino loggers with the secrets redacted wherever they could appear in a logged object.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

/** Paths pino censors: every place a secret could sit in something we log. */
export const REDACT_PATHS = [
  'accessKeySecret',
  'securityToken',
  'adminToken',
  'webhookSecrets',
  'secret',
  'token',
  'authorization',
  '*.accessKeySecret',
  '*.securityToken',
  '*.adminToken',
  '*.webhookSecrets',
  '*.secret',
  '*.token',
  '*.authorization',
  '*.Authorization',
  'headers.authorization',
  'headers["x-acs-security-token"]',
  'headers["webhook-signature"]',
  'req.headers.authorization',
  'req.headers["webhook-signature"]',
  'config.credentials',
  'credentials',
];

/** Creates the process logger. `destination` lets tests capture every line. */
export function createLogger(level: string, name: string, destination?: DestinationStream): Logger {
  const options = { name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}
