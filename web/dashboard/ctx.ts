import { api, ApiError } from "../shared/api";

/** What every view gets: the signed-in key's API client and where to render. */
export interface Ctx {
  main: HTMLElement;
  /** `headers`: extra request headers (an Idempotency-Key). */
  call<T>(path: string, method?: string, body?: unknown, headers?: Record<string, string>): Promise<T>;
  go(hash: string, flash?: string): void;
  /** A non-JSON request (CSV export and import) with the key: the raw response, errors thrown as ApiError. */
  raw?(path: string, method?: string, body?: string, contentType?: string): Promise<Response>;
  /** Inside a program: `delta` commissions left (or joined) the held ones, for the tab's count. */
  held?(delta: number): void;
}

export function makeCall(key: string, onUnauthorized: () => void) {
  return async <T>(path: string, method = "GET", body?: unknown, headers?: Record<string, string>): Promise<T> => {
    try {
      return await api<T>(path, key, method, body, headers);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) onUnauthorized();
      throw e;
    }
  };
}

/** `Ctx.raw`: CSV in and out (the exports download as files; the import sends the file's text). */
export function makeRaw(key: string, onUnauthorized: () => void) {
  return async (path: string, method = "GET", body?: string, contentType = "text/csv"): Promise<Response> => {
    let res: Response;
    try {
      const headers: Record<string, string> = { authorization: `Bearer ${key}` };
      if (body !== undefined) headers["content-type"] = contentType;
      res = await fetch(path, { method, headers, body, credentials: "omit", cache: "no-store" });
    } catch {
      throw new ApiError(0, "network_error", "Could not reach the server. Check your connection and try again.");
    }
    if (!res.ok) {
      if (res.status === 401) onUnauthorized();
      const e = ((await res.json().catch(() => null)) as { error?: { code?: string; message?: string; field?: string } } | null)?.error;
      throw new ApiError(res.status, e?.code ?? `http_${res.status}`, e?.message ?? `Request failed (HTTP ${res.status}).`, e?.field);
    }
    return res;
  };
}
