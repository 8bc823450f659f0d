// Login: the operator's JWT, from the OIDC provider (implicit flow, id_token in the URL
// fragment) when the API is configured with one, or pasted (development HS256 tokens).

import { ApiError, get, setToken } from "./api";
import { config } from "./config";
import { h, mount } from "./dom";

const STATE_KEY = "zengine.console.oidc_state";

function randomState(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Takes an `id_token` the provider sent back in the fragment; returns whether one came. */
export function acceptRedirect(): { accepted: boolean; error?: string } {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const idToken = fragment.get("id_token");
  const error = fragment.get("error");
  if (!idToken && !error) return { accepted: false };
  const expected = sessionStorage.getItem(STATE_KEY);
  sessionStorage.removeItem(STATE_KEY);
  history.replaceState(null, "", location.pathname + "#/payments");
  if (error) return { accepted: false, error: `sign-in failed: ${error}` };
  if (!expected || fragment.get("state") !== expected) {
    return { accepted: false, error: "sign-in answer did not match this browser's request" };
  }
  setToken(idToken);
  return { accepted: true };
}

function startOidc(): void {
  const oidc = config().oidc;
  if (!oidc) return;
  const state = randomState();
  sessionStorage.setItem(STATE_KEY, state);
  const url = new URL(oidc.authorize_url);
  url.searchParams.set("response_type", "id_token");
  url.searchParams.set("client_id", oidc.client_id);
  url.searchParams.set("scope", oidc.scope);
  url.searchParams.set("redirect_uri", location.origin + location.pathname);
  url.searchParams.set("state", state);
  url.searchParams.set("nonce", randomState());
  location.assign(url.toString());
}

/** Checks a token against the API (a harmless read). */
export async function verify(): Promise<void> {
  await get("/v1/ops/workflows?page_size=1");
}

export function renderLogin(root: HTMLElement, onLogin: () => void, message?: string): void {
  const error = h("p", { class: "error", id: "login-error", role: "alert" }, message ?? "");
  const input = h("textarea", {
    id: "token",
    rows: 4,
    placeholder: "eyJhbGciOi…",
    spellcheck: "false",
    autocomplete: "off",
  }) as HTMLTextAreaElement;
  const form = h(
    "form",
    {
      id: "login-form",
      onsubmit: async (event: Event) => {
        event.preventDefault();
        const value = input.value.trim();
        if (!value) {
          error.textContent = "paste an operator token";
          return;
        }
        setToken(value);
        try {
          await verify();
          onLogin();
        } catch (e) {
          setToken(null);
          error.textContent =
            e instanceof ApiError ? `the API refused this token: ${e.message}` : String(e);
        }
      },
    },
    h("label", { for: "token" }, "Operator token (JWT)"),
    input,
    h("button", { type: "submit", id: "login" }, "Sign in with token"),
  );
  const oidc = config().oidc;
  mount(
    root,
    h(
      "section",
      { class: "login card" },
      h("h1", {}, "Operator console"),
      oidc && h("button", { id: "sso", onclick: startOidc }, "Sign in with your organisation"),
      oidc && h("p", { class: "muted" }, "or"),
      form,
      error,
    ),
  );
}
