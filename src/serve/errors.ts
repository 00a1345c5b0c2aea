// HTTP statuses of the server's failures, decided in one place (httpErrorOf): convzoo's error codes,
// fastify's and its plugins' errors, and the server's own (queue full, timeout, unknown model).
import { ConvzooError } from '../errors.js';
import { MAX_PIXELS_OP } from '../vision/decode.js';

/** The `code` of a JSON error body: a ConvzooError code, or one of the server's own. */
export type ServeErrorCode =
  | 'E_ARG'
  | 'E_IMAGE'
  | 'E_TOO_LARGE'
  | 'E_NOT_FOUND'
  | 'E_OVERLOADED'
  | 'E_LOADING'
  | 'E_TIMEOUT'
  | 'E_UNSUPPORTED_MEDIA'
  | 'E_INTERNAL'
  | string;

/** A failure with its HTTP status; `retryAfter` (seconds) goes out as the Retry-After header. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: ServeErrorCode,
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** fastify's (and @fastify/multipart's) error codes that are the client's fault, by status. */
const FASTIFY_CODES: Record<string, ServeErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'E_TOO_LARGE',
  FST_REQ_FILE_TOO_LARGE: 'E_TOO_LARGE',
  FST_FILES_LIMIT: 'E_TOO_LARGE',
  FST_PARTS_LIMIT: 'E_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'E_UNSUPPORTED_MEDIA',
};

/** The HTTP form of any error a route or fastify raised. */
export function httpErrorOf(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof ConvzooError) {
    if (e.code === 'E_IMAGE' && e.op === MAX_PIXELS_OP) return new HttpError(413, e.message, 'E_TOO_LARGE');
    switch (e.code) {
      case 'E_IMAGE':
      case 'E_ARG':
      case 'E_SHAPE':
      case 'E_DTYPE':
        return new HttpError(400, e.message, e.code);
      case 'E_NOT_FOUND':
        return new HttpError(404, e.message, e.code);
      default:
        return new HttpError(500, e.message, e.code);
    }
  }
  const fe = e as { statusCode?: number; code?: string; message?: string };
  const status = typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 600 ? fe.statusCode : 500;
  const message = String(fe?.message ?? e);
  if (status >= 500) return new HttpError(status, message, 'E_INTERNAL');
  return new HttpError(status, message, (fe.code && FASTIFY_CODES[fe.code]) ?? (status === 413 ? 'E_TOO_LARGE' : 'E_ARG'));
}
