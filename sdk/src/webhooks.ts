/**
 * Verifying Refport's outgoing webhooks.
 *
 * Each delivery is a `POST` with a JSON body `{"id": "evt_...", "type", "created_at", "data"}` and
 * the headers `Refport-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`
 * and `Refport-Event-Id`. Deliveries are at least once: a receiver must apply each event id once.
 *
 * Uses WebCrypto (`crypto.subtle`), so it runs on Node >= 18, Next.js (node and edge runtimes),
 * Cloudflare Workers and Deno; the HMAC comparison is WebCrypto's constant-time `verify`.
 */

import { WebhookVerificationError } from "./errors.js";
import type { WebhookEvent } from "./types.js";

export interface VerifyOptions {
  /** Largest accepted distance between the signature's timestamp and now (default 300 s). */
  toleranceSeconds?: number;
  /** The current time in unix seconds (default: the clock); for tests. */
  now?: number;
}

const encoder = new TextEncoder();

function subtle(): SubtleCrypto {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (!c?.subtle) throw new Error("WebCrypto (globalThis.crypto.subtle) is not available in this runtime");
  return c.subtle;
}

function toBytes(body: string | Uint8Array | ArrayBuffer): Uint8Array {
  if (typeof body === "string") return encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  return new Uint8Array(body);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function fromHex(s: string): Uint8Array<ArrayBuffer> | null {
  if (s.length === 0 || s.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(s)) return null;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function toHex(b: ArrayBuffer): string {
  return Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
}

async function hmacKey(secret: string, usage: "sign" | "verify"): Promise<CryptoKey> {
  return subtle().importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [usage]);
}

/** Parses `t=...,v1=...[,v1=...]`; unknown schemes (e.g. `v0`) are ignored. */
export function parseSignatureHeader(header: string): { timestamp: number | null; signatures: string[] } {
  let timestamp: number | null = null;
  const signatures: string[] = [];
  for (const item of header.split(",")) {
    const i = item.indexOf("=");
    if (i < 0) continue;
    const key = item.slice(0, i).trim();
    const value = item.slice(i + 1).trim();
    if (key === "t" && /^\d{1,15}$/.test(value)) timestamp = Number(value);
    else if (key === "v1") signatures.push(value);
  }
  return { timestamp, signatures };
}

/**
 * Checks a webhook's `Refport-Signature` against the endpoint's `whsec_...` secret and answers
 * the parsed event. Pass the body exactly as received (the raw string or bytes, not re-serialized
 * JSON). Throws {@link WebhookVerificationError} (`code` tells why) when it does not verify or
 * its timestamp is more than `toleranceSeconds` away from now.
 */
export async function verifyWebhook<E extends WebhookEvent = WebhookEvent>(
  rawBody: string | Uint8Array | ArrayBuffer,
  header: string | null | undefined,
  secret: string,
  options: VerifyOptions = {},
): Promise<E> {
  if (!secret) throw new WebhookVerificationError("missing_secret", "no webhook secret was given");
  if (!header) throw new WebhookVerificationError("missing_header", "the Refport-Signature header is missing");
  const { timestamp, signatures } = parseSignatureHeader(header);
  if (timestamp === null) throw new WebhookVerificationError("missing_timestamp", "the Refport-Signature header has no timestamp");
  if (signatures.length === 0) throw new WebhookVerificationError("no_signatures", "the Refport-Signature header has no v1 signature");

  const bytes = toBytes(rawBody);
  const signed = concat(encoder.encode(`${timestamp}.`), bytes);
  const key = await hmacKey(secret, "verify");
  let matched = false;
  for (const sig of signatures) {
    const mac = fromHex(sig);
    // crypto.subtle.verify compares in constant time
    if (mac && mac.length === 32 && (await subtle().verify("HMAC", key, mac, signed))) matched = true;
  }
  if (!matched) throw new WebhookVerificationError("signature_mismatch", "no v1 signature matches the body and secret");

  const tolerance = options.toleranceSeconds ?? 300;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - timestamp) > tolerance) {
    throw new WebhookVerificationError(
      "timestamp_outside_tolerance",
      `the signature's timestamp is ${now - timestamp} s away from now (tolerance ${tolerance} s)`,
    );
  }
  let event: unknown;
  try {
    event = JSON.parse(typeof rawBody === "string" ? rawBody : new TextDecoder().decode(bytes));
  } catch {
    throw new WebhookVerificationError("invalid_payload", "the body is not JSON");
  }
  const e = event as { id?: unknown; type?: unknown };
  if (!e || typeof e !== "object" || typeof e.id !== "string" || typeof e.type !== "string") {
    throw new WebhookVerificationError("invalid_payload", "the body is not a Refport event");
  }
  return event as E;
}

/**
 * The `Refport-Signature` header value for `payload` signed at `timestamp` (unix seconds,
 * default now): what Refport sends. For testing your webhook handler.
 */
export async function signWebhook(
  payload: string | Uint8Array,
  secret: string,
  timestamp: number = Math.floor(Date.now() / 1000),
): Promise<string> {
  const key = await hmacKey(secret, "sign");
  const mac = await subtle().sign("HMAC", key, concat(encoder.encode(`${timestamp}.`), toBytes(payload)));
  return `t=${timestamp},v1=${toHex(mac)}`;
}
