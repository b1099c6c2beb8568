import { api, ApiError } from "../shared/api";

/** What every view gets: the signed-in key's API client and where to render. */
export interface Ctx {
  main: HTMLElement;
  /** `headers`: extra request headers (an Idempotency-Key). */
  call<T>(path: string, method?: string, body?: unknown, headers?: Record<string, string>): Promise<T>;
  go(hash: string, flash?: string): void;
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
