// The console's shell: login, navigation by URL fragment, one page at a time.

import "./style.css";
import { claims, setToken, token } from "./api";
import { loadConfig } from "./config";
import { renderDeadLetters } from "./deadletters";
import { flash, h, mount } from "./dom";
import { renderHandoffs } from "./handoffs";
import { renderHistory } from "./history";
import { acceptRedirect, renderLogin } from "./login";
import { renderPayments } from "./payments";
import { renderReports } from "./reports";

const app = document.getElementById("app") as HTMLElement;
const nav = document.getElementById("nav") as HTMLElement;
const who = document.getElementById("who") as HTMLElement;
const logout = document.getElementById("logout") as HTMLButtonElement;

function signedIn(on: boolean): void {
  nav.hidden = !on;
  logout.hidden = !on;
  const c = claims();
  who.textContent = on ? `${String(c["sub"] ?? "operator")} · ${String(c["tenant_id"] ?? "")} · ${String(c["role"] ?? "")}` : "";
}

async function route(): Promise<void> {
  if (!token()) {
    signedIn(false);
    renderLogin(app, () => {
      location.hash = "#/payments";
      void route();
    });
    return;
  }
  signedIn(true);
  const [path] = location.hash.replace(/^#\/?/, "").split("?");
  const [page, ...rest] = (path ?? "").split("/");
  nav.querySelectorAll("a").forEach((a) => a.classList.toggle("active", a.dataset["page"] === page));
  document.getElementById("flash")?.setAttribute("hidden", "");
  try {
    switch (page) {
      case "dead-letters":
        await renderDeadLetters(app);
        break;
      case "handoffs":
        await renderHandoffs(app);
        break;
      case "reports":
        await renderReports(app, rest[0]);
        break;
      case "history":
        await renderHistory(app, decodeURIComponent(rest.join("/")));
        break;
      default:
        await renderPayments(app);
    }
  } catch (e) {
    if (!token()) return; // a 401 signed the operator out; the login page is showing
    mount(app, h("p", { class: "error", role: "alert" }, e instanceof Error ? e.message : String(e)));
  }
}

window.addEventListener("zengine:unauthorized", (e) => {
  // While signing in, the login form reports the refusal itself.
  if (nav.hidden) return;
  signedIn(false);
  renderLogin(app, () => void route(), `signed out: ${String((e as CustomEvent).detail)}`);
});
window.addEventListener("hashchange", () => void route());
logout.addEventListener("click", () => {
  setToken(null);
  location.hash = "";
  void route();
});

await loadConfig();
const redirect = await acceptRedirect();
if (redirect.error) flash(redirect.error, "error");
await route();
