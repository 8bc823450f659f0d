// Login: the operator's JWT, from the OIDC provider (authorization code flow with PKCE; the ID
// token's nonce is checked against the one this browser sent) when the API is configured with
// one, or pasted (development HS256 tokens). The API verifies the token's signature, issuer and
// audience on every call; the checks here make sure the token is the answer to this browser's
// own sign-in (no injected code, no replayed token).

import { ApiError, get, setToken } from "./api";
import { config } from "./config";
import { h, mount } from "./dom";

const PENDING_KEY = "zengine.console.oidc_pending";

interface Pending {
  state: string;
  nonce: string;
  verifier: string;
  redirect_uri: string;
}

function base64url(bytes: Uint8Array): string {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(bytes = 32): string {
  const buffer = new Uint8Array(bytes);
  crypto.getRandomValues(buffer);
  return base64url(buffer);
}

async function challenge(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

/** The claims of a JWT, unverified (the API verifies the signature). */
function claimsOf(token: string): Record<string, unknown> | null {
  try {
    const part = (token.split(".")[1] ?? "").replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return null;
  }
}

/**
 * Finishes a sign-in the provider sent back (`?code=…&state=…`): the state must be this
 * browser's, the code is redeemed with the PKCE verifier, and the ID token's nonce must be the
 * one this browser sent. Returns whether a token was accepted.
 */
export async function acceptRedirect(): Promise<{ accepted: boolean; error?: string }> {
  const query = new URLSearchParams(location.search);
  const code = query.get("code");
  const error = query.get("error");
  if (!code && !error) return { accepted: false };
  const raw = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  history.replaceState(null, "", location.pathname + "#/payments");
  if (error) return { accepted: false, error: `sign-in failed: ${error}` };
  const pending = raw ? (JSON.parse(raw) as Pending) : null;
  const oidc = config().oidc;
  if (!pending || !oidc || query.get("state") !== pending.state) {
    return { accepted: false, error: "sign-in answer did not match this browser's request" };
  }
  let idToken: string | undefined;
  try {
    const response = await fetch(oidc.token_url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code: code ?? "",
        redirect_uri: pending.redirect_uri,
        client_id: oidc.client_id,
        code_verifier: pending.verifier,
      }),
    });
    if (!response.ok) {
      return { accepted: false, error: `sign-in failed: the provider answered ${response.status}` };
    }
    idToken = ((await response.json()) as { id_token?: string }).id_token;
  } catch (e) {
    return { accepted: false, error: `sign-in failed: ${String(e)}` };
  }
  if (!idToken) return { accepted: false, error: "sign-in failed: no ID token" };
  if (claimsOf(idToken)?.["nonce"] !== pending.nonce) {
    return { accepted: false, error: "sign-in answer was not issued for this browser (nonce)" };
  }
  setToken(idToken);
  return { accepted: true };
}

async function startOidc(): Promise<void> {
  const oidc = config().oidc;
  if (!oidc) return;
  const pending: Pending = {
    state: random(16),
    nonce: random(16),
    verifier: random(32),
    redirect_uri: location.origin + location.pathname,
  };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(oidc.authorize_url);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", oidc.client_id);
  url.searchParams.set("scope", oidc.scope);
  url.searchParams.set("redirect_uri", pending.redirect_uri);
  url.searchParams.set("state", pending.state);
  url.searchParams.set("nonce", pending.nonce);
  url.searchParams.set("code_challenge", await challenge(pending.verifier));
  url.searchParams.set("code_challenge_method", "S256");
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
      oidc &&
        h(
          "button",
          {
            id: "sso",
            onclick: () => {
              startOidc().catch((e) => (error.textContent = String(e)));
            },
          },
          "Sign in with your organisation",
        ),
      oidc && h("p", { class: "muted" }, "or"),
      form,
      error,
    ),
  );
}
