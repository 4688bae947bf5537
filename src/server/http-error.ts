/**
 * The error answers of the server: always `{"error":{"code","message"}}` with a stable,
 * snake_case `code` clients can branch on, and a message for people.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

/** The body of every error answer. */
export interface ErrorBody {
  error: { code: string; message: string };
}

/** Builds an error body. */
export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** Sends an error answer. */
export function sendError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send(errorBody(code, message));
}

/** Fastify's own error codes that clients should see under a stable code of ours. */
const FASTIFY_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'body_too_large', message: 'the request body is larger than this server accepts' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'unsupported_media_type', message: 'the body must be application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'bad_request', message: 'the Content-Length does not match the body' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'malformed_json', message: 'the body is empty' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'malformed_json', message: 'the body is not valid JSON' },
};

/**
 * The server's error handler: maps body-parsing errors to our codes, passes other client errors
 * through with their status, and answers anything else 500 without details (logged instead).
 */
export function handleServerError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const known = error.code === undefined ? undefined : FASTIFY_ERRORS[error.code];
  if (known !== undefined) return sendError(reply, known.status, known.code, known.message);
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    return sendError(reply, status, 'bad_request', error.message);
  }
  request.log.error({ err: error }, 'request failed');
  return sendError(reply, 500, 'internal_error', 'the server could not complete the request; see its log');
}

/** Answers requests no route matched. */
export function handleNotFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return sendError(reply, 404, 'not_found', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`);
}
