/**
 * Errors thrown by the SDK. Every error answered by the API is a {@link RefportApiError}
 * (or one of its subclasses, picked by HTTP status) carrying the API's machine-readable
 * `code` (e.g. `invoice_conflict`, `invalid_amount`, `not_found`) and, for validation
 * errors, the offending `field`.
 */

/** Base class of every error the SDK throws. */
export class RefportError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The `{"error": {...}}` object of an API error response. */
export interface ApiErrorBody {
  code: string;
  message: string;
  field?: string;
  [extra: string]: unknown;
}

/** An error answered by the Refport API (any non-2xx status). */
export class RefportApiError extends RefportError {
  /** HTTP status of the last attempt. */
  readonly status: number;
  /** The API's error code, e.g. `invalid_request`, `invoice_conflict`, `not_found`. */
  readonly code: string;
  /** For validation errors (422): the field at fault. */
  readonly field: string | undefined;
  /** How many HTTP attempts were made (> 1 when 5xx answers were retried). */
  readonly attempts: number;
  /** The raw error object as answered. */
  readonly body: ApiErrorBody;
  readonly method: string;
  readonly path: string;

  constructor(init: { status: number; body: ApiErrorBody; attempts: number; method: string; path: string }) {
    super(`${init.body.message} (${init.status} ${init.body.code})`);
    this.status = init.status;
    this.code = init.body.code;
    this.field = typeof init.body.field === "string" ? init.body.field : undefined;
    this.attempts = init.attempts;
    this.body = init.body;
    this.method = init.method;
    this.path = init.path;
  }
}

/** 400: malformed JSON, wrong shape, unknown field, bad query parameter. */
export class BadRequestError extends RefportApiError {}
/** 401: missing, unknown or revoked API key. */
export class AuthenticationError extends RefportApiError {}
/** 403: the key lacks the permission (e.g. a track-only key calling the management API). */
export class PermissionDeniedError extends RefportApiError {}
/** 404: unknown resource, or one outside the key's program. */
export class NotFoundError extends RefportApiError {}
/** 409: conflicts with stored state (illegal status transition, invoice reused, ...). */
export class ConflictError extends RefportApiError {}
/** 413: the request body is larger than the API accepts (64 KiB). */
export class PayloadTooLargeError extends RefportApiError {}
/** 422: a well-formed request with an invalid value; `field` names it. */
export class ValidationError extends RefportApiError {}
/** 429: rate limited (retried automatically first). */
export class RateLimitError extends RefportApiError {}
/** 5xx: the API failed, after the automatic retries. */
export class ServerError extends RefportApiError {}

/** The request never got an HTTP answer (DNS, connection refused/reset, timeout), after retries. */
export class RefportConnectionError extends RefportError {
  readonly attempts: number;
  readonly timedOut: boolean;
  constructor(message: string, init: { attempts: number; timedOut: boolean; cause?: unknown }) {
    super(message, { cause: init.cause });
    this.attempts = init.attempts;
    this.timedOut = init.timedOut;
  }
}

/** Why a webhook was refused by {@link verifyWebhook}. */
export type WebhookErrorCode =
  | "missing_header"
  | "missing_timestamp"
  | "no_signatures"
  | "signature_mismatch"
  | "timestamp_outside_tolerance"
  | "missing_secret"
  | "invalid_payload";

/** A webhook whose `Refport-Signature` does not verify (answer it with 400). */
export class WebhookVerificationError extends RefportError {
  readonly code: WebhookErrorCode;
  constructor(code: WebhookErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export function apiErrorFor(init: {
  status: number;
  body: ApiErrorBody;
  attempts: number;
  method: string;
  path: string;
}): RefportApiError {
  const s = init.status;
  const Cls =
    s === 400 ? BadRequestError
    : s === 401 ? AuthenticationError
    : s === 403 ? PermissionDeniedError
    : s === 404 ? NotFoundError
    : s === 409 ? ConflictError
    : s === 413 ? PayloadTooLargeError
    : s === 422 ? ValidationError
    : s === 429 ? RateLimitError
    : s >= 500 ? ServerError
    : RefportApiError;
  return new Cls(init);
}
