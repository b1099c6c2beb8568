/**
 * The HTTP transport: JSON in and out, Bearer auth, per-attempt timeout, and retries with
 * exponential backoff on network errors, timeouts, 429 and 5xx — for requests that are safe to
 * repeat. Every attempt of one call carries the same `Idempotency-Key`, so the API recognises a
 * retry of a write it has already applied and answers the first result.
 */

import { apiErrorFor, RefportConnectionError, type ApiErrorBody } from "./errors.js";

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface RetryOptions {
  /** Retries after the first attempt (default 2, so at most 3 attempts). 0 disables retries. */
  maxRetries?: number;
  /** First backoff delay in ms (default 250); doubled per retry, with jitter. */
  baseDelayMs?: number;
  /** Largest backoff delay in ms (default 4000); also caps a server's `Retry-After`. */
  maxDelayMs?: number;
}

export interface ClientOptions {
  /** A Refport API key (`rp_live_...`). Default: `process.env.REFPORT_API_KEY`. */
  apiKey?: string;
  /** The deployment's origin, e.g. `https://refport.acme.com`. Default: `process.env.REFPORT_BASE_URL`. */
  baseUrl?: string;
  /** Per-attempt timeout in ms (default 30000). */
  timeoutMs?: number;
  retry?: RetryOptions;
  /** A `fetch` implementation (default: the global one). */
  fetch?: FetchLike;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
}

/** Per-call options. */
export interface RequestOptions {
  /**
   * Sent as `Idempotency-Key` (the same on every retry of this call). Generated when absent.
   * `track.refund` uses it to make a retried refund land once.
   */
  idempotencyKey?: string;
  /** Cancels the call (no further retries). */
  signal?: AbortSignal;
  /** Overrides the client's per-attempt timeout. */
  timeoutMs?: number;
  /** Overrides the client's retry count for this call. */
  maxRetries?: number;
}

export type Query = Record<string, string | number | boolean | null | undefined>;

export interface Call {
  method: "GET" | "POST" | "PATCH" | "DELETE";
  path: string;
  query?: Query;
  body?: unknown;
  /** True when repeating the call cannot apply it twice (the server is idempotent for it). */
  retryable: boolean;
  options?: RequestOptions;
}

export interface Answer<T> {
  data: T;
  status: number;
  attempts: number;
}

const RETRY_STATUS = (s: number) => s === 408 || s === 429 || (s >= 500 && s <= 599 && s !== 501);

function env(name: string): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return p?.env?.[name];
}

export function newIdempotencyKey(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c && typeof c.randomUUID === "function") return `sdk_${c.randomUUID()}`;
  if (c && typeof c.getRandomValues === "function") {
    const b = c.getRandomValues(new Uint8Array(16));
    return `sdk_${Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")}`;
  }
  throw new Error("no crypto.getRandomValues: pass idempotencyKey explicitly");
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export class Transport {
  readonly baseUrl: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly retry: Required<RetryOptions>;
  private readonly fetchImpl: FetchLike;
  private readonly headers: Record<string, string>;

  constructor(opts: ClientOptions = {}) {
    const apiKey = opts.apiKey ?? env("REFPORT_API_KEY");
    const baseUrl = opts.baseUrl ?? env("REFPORT_BASE_URL");
    if (!apiKey) throw new TypeError("Refport: apiKey is required (or set REFPORT_API_KEY)");
    if (!baseUrl) throw new TypeError("Refport: baseUrl is required (or set REFPORT_BASE_URL)");
    const u = new URL(baseUrl);
    this.baseUrl = u.origin + u.pathname.replace(/\/+$/, "");
    this.apiKey = apiKey;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.retry = {
      maxRetries: opts.retry?.maxRetries ?? 2,
      baseDelayMs: opts.retry?.baseDelayMs ?? 250,
      maxDelayMs: opts.retry?.maxDelayMs ?? 4_000,
    };
    const f = opts.fetch ?? (globalThis.fetch as FetchLike | undefined);
    if (!f) throw new TypeError("Refport: no global fetch; pass options.fetch");
    this.fetchImpl = f;
    this.headers = { ...(opts.headers ?? {}) };
  }

  url(path: string, query?: Query): string {
    let out = this.baseUrl + path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) q.set(k, String(v));
      const s = q.toString();
      if (s) out += "?" + s;
    }
    return out;
  }

  private backoff(retry: number, retryAfter: string | null): number {
    const cap = this.retry.maxDelayMs;
    if (retryAfter) {
      const secs = Number(retryAfter);
      if (Number.isFinite(secs) && secs >= 0) return Math.min(cap, secs * 1000);
    }
    const exp = Math.min(cap, this.retry.baseDelayMs * 2 ** retry);
    return exp / 2 + Math.random() * (exp / 2);
  }

  async request<T>(call: Call): Promise<Answer<T>> {
    const o = call.options ?? {};
    const url = this.url(call.path, call.query);
    const headers: Record<string, string> = {
      ...this.headers,
      accept: "application/json",
      authorization: `Bearer ${this.apiKey}`,
    };
    let body: string | undefined;
    if (call.body !== undefined) {
      body = JSON.stringify(call.body);
      headers["content-type"] = "application/json";
    }
    if (call.method !== "GET") headers["idempotency-key"] = o.idempotencyKey ?? newIdempotencyKey();
    const maxRetries = call.retryable ? (o.maxRetries ?? this.retry.maxRetries) : 0;
    const timeoutMs = o.timeoutMs ?? this.timeoutMs;

    for (let attempt = 1; ; attempt++) {
      const last = attempt > maxRetries;
      const controller = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort(new Error(`timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      const onAbort = () => controller.abort(o.signal?.reason);
      if (o.signal?.aborted) {
        clearTimeout(timer);
        throw o.signal.reason ?? new Error("aborted");
      }
      o.signal?.addEventListener("abort", onAbort, { once: true });
      let res: Response;
      let text: string;
      try {
        res = await this.fetchImpl(url, { method: call.method, headers, body, signal: controller.signal, redirect: "manual" });
        text = await res.text();
      } catch (err) {
        if (o.signal?.aborted) throw o.signal.reason ?? err;
        if (last) {
          throw new RefportConnectionError(
            `${call.method} ${call.path}: ${timedOut ? `no answer within ${timeoutMs} ms` : String((err as Error)?.message ?? err)} (after ${attempt} attempt${attempt > 1 ? "s" : ""})`,
            { attempts: attempt, timedOut, cause: err },
          );
        }
        await sleep(this.backoff(attempt - 1, null), o.signal);
        continue;
      } finally {
        clearTimeout(timer);
        o.signal?.removeEventListener("abort", onAbort);
      }

      if (res.status >= 200 && res.status < 300) {
        let data: unknown = undefined;
        if (text.length > 0) {
          try {
            data = JSON.parse(text);
          } catch (err) {
            throw apiErrorFor({
              status: res.status,
              body: { code: "invalid_response", message: `the API answered ${res.status} with a body that is not JSON` },
              attempts: attempt,
              method: call.method,
              path: call.path,
            });
          }
        }
        return { data: data as T, status: res.status, attempts: attempt };
      }
      if (!last && RETRY_STATUS(res.status)) {
        await sleep(this.backoff(attempt - 1, res.headers.get("retry-after")), o.signal);
        continue;
      }
      throw apiErrorFor({ status: res.status, body: errorBody(res.status, text), attempts: attempt, method: call.method, path: call.path });
    }
  }
}

function errorBody(status: number, text: string): ApiErrorBody {
  try {
    const v = JSON.parse(text) as { error?: Partial<ApiErrorBody> };
    if (v && typeof v === "object" && v.error && typeof v.error.code === "string") {
      return { ...v.error, code: v.error.code, message: typeof v.error.message === "string" ? v.error.message : v.error.code };
    }
  } catch {
    // not JSON: fall through
  }
  const snippet = text.trim().slice(0, 200);
  return { code: `http_${status}`, message: snippet ? `HTTP ${status}: ${snippet}` : `HTTP ${status}` };
}
