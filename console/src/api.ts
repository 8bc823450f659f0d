// The console's only way to the API: same origin, the operator's bearer token on every call.

const TOKEN_KEY = "zengine.console.token";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string | null): void {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** The claims of the stored JWT (not verified here: the API verifies every call). */
export function claims(): Record<string, unknown> {
  const t = token();
  const part = t?.split(".")[1];
  if (!part) return {};
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
    return JSON.parse(json) as Record<string, unknown>;
  } catch {
    return {};
  }
}

async function request(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const t = token();
  if (t) headers["Authorization"] = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let code = "error";
    let message = `${response.status} ${response.statusText}`;
    try {
      const json = (await response.json()) as { error?: { code?: string; message?: string } };
      code = json.error?.code ?? code;
      message = json.error?.message ?? message;
    } catch {
      /* not JSON */
    }
    if (response.status === 401) {
      setToken(null);
      window.dispatchEvent(new CustomEvent("zengine:unauthorized", { detail: message }));
    }
    throw new ApiError(response.status, code, message);
  }
  return response;
}

export async function get<T>(path: string): Promise<T> {
  return (await (await request("GET", path)).json()) as T;
}

export async function post<T>(path: string, body?: unknown): Promise<T> {
  const response = await request("POST", path, body ?? {});
  const text = await response.text();
  return (text ? JSON.parse(text) : {}) as T;
}

/** A binary resource (an image) as an object URL the page can show. */
export async function blobUrl(path: string): Promise<string> {
  const response = await request("GET", path);
  return URL.createObjectURL(await response.blob());
}

/** Percent-encodes a workflow id for `/v1/ops/workflows/{id}` (ids contain `/`). */
export function wf(id: string): string {
  return encodeURIComponent(id);
}
