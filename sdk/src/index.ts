export { Refport, Track, Programs, Partners, Links, Coupons, Commissions, Payouts, Clicks, EmbedTokens, Webhooks, ApiKeys } from "./client.js";
export { Transport, newIdempotencyKey } from "./http.js";
export type { ClientOptions, RequestOptions, RetryOptions, FetchLike } from "./http.js";
export {
  RefportError,
  RefportApiError,
  BadRequestError,
  AuthenticationError,
  PermissionDeniedError,
  NotFoundError,
  ConflictError,
  PayloadTooLargeError,
  ValidationError,
  RateLimitError,
  ServerError,
  RefportConnectionError,
  WebhookVerificationError,
} from "./errors.js";
export type { ApiErrorBody, WebhookErrorCode } from "./errors.js";
export { verifyWebhook, signWebhook, parseSignatureHeader } from "./webhooks.js";
export type { VerifyOptions } from "./webhooks.js";
export type * from "./types.js";
export type { paths as OpenApiPaths, components as OpenApiComponents } from "./generated/openapi.js";
export { Refport as default } from "./client.js";
