/**
 * Ed25519 signatures over a sealed report's final chain value (node:crypto, no dependency).
 *
 * What is signed is `revoker-report/1 \n <chained lines> \n <final chain value>`: the format, how
 * many lines the chain covers and where it ends. The chain makes that value depend on every byte
 * of every line before the seal, so one signature covers the whole report.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { REPORT_FORMAT_ID } from './report-chain.js';

/** The signature part of a seal. */
export interface ReportSignature {
  algorithm: 'ed25519';
  /** Base64 signature of `signedMessage(lines, finalHash)`. */
  signature: string;
  /** The signer's public key (SPKI PEM), so a reader can check without asking; see `keyFingerprint`. */
  publicKey: string;
  /** `sha256:` + hex SHA-256 of the public key's DER (SPKI): what an auditor compares. */
  keyFingerprint: string;
}

/** A signing key that cannot be used. The message never contains key material. */
export class SigningKeyError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SigningKeyError';
  }
}

/** The bytes a report signature covers. */
export function signedMessage(lines: number, finalHash: string): Buffer {
  return Buffer.from(`${REPORT_FORMAT_ID}\n${lines}\n${finalHash}`, 'utf8');
}

/** `sha256:<hex>` of a public key's SPKI DER. */
export function keyFingerprint(publicKey: KeyObject): string {
  return `sha256:${createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex')}`;
}

function requireEd25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') throw new SigningKeyError(`${what} is a ${key.asymmetricKeyType ?? 'non-asymmetric'} key; an Ed25519 key is required`);
  return key;
}

/**
 * Reads an Ed25519 private key (PEM, PKCS#8) from `file`. Returns a warning when the file can
 * be read by other users (the key signs reports that auditors trust).
 */
export async function loadSigningKey(file: string): Promise<{ key: KeyObject; warning: string | null }> {
  let pem: string;
  let mode: number;
  try {
    [pem, mode] = await Promise.all([readFile(file, 'utf8'), stat(file).then((s) => s.mode)]);
  } catch (error) {
    throw new SigningKeyError(`cannot read the signing key ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, { cause: error });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (error) {
    // The parser's message may quote the file: keep it out.
    throw new SigningKeyError(`${file} is not a PEM private key`, { cause: error });
  }
  requireEd25519(key, file);
  const warning = (mode & 0o077) !== 0 ? `the signing key ${file} can be read by other users (mode ${(mode & 0o777).toString(8)}); chmod 600 it` : null;
  return { key, warning };
}

/** Reads a public key (PEM; a private key PEM gives its public half) to verify with. */
export function parsePublicKey(pem: string, what = 'the public key'): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (error) {
    throw new SigningKeyError(`${what} is not a PEM key`, { cause: error });
  }
  return requireEd25519(key, what);
}

/** Signs a report's final chain value. */
export function signReport(privateKey: KeyObject, lines: number, finalHash: string): ReportSignature {
  const publicKey = createPublicKey(privateKey);
  return {
    algorithm: 'ed25519',
    signature: sign(null, signedMessage(lines, finalHash), privateKey).toString('base64'),
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyFingerprint: keyFingerprint(publicKey),
  };
}

/** True when `signature` (base64) is `publicKey`'s signature of this report end. */
export function verifyReportSignature(publicKey: KeyObject, lines: number, finalHash: string, signature: string): boolean {
  try {
    return verify(null, signedMessage(lines, finalHash), publicKey, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}
