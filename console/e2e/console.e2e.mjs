// End-to-end test of the operator console in headless Chromium (Debian's `chromium`, driven by
// playwright-core). Run by `tests/e2e.rs` (`operator_console_…`), which starts the service and
// seeds a payment in review, a dead letter and a handed-off conversation, then passes:
//
//   ZENGINE_E2E_BASE        the API, e.g. http://127.0.0.1:PORT
//   ZENGINE_E2E_JWT_KEY     the HS256 key the API verifies operator tokens with
//   ZENGINE_E2E_IDP_PORT    where this script runs the fake OIDC provider the API points at
//   ZENGINE_E2E_PAYMENT     the payment waiting for review
//   ZENGINE_E2E_DEAD_LETTER the dead letter's client_message_id
//   ZENGINE_E2E_HANDOFF     the handed-off conversation's workflow id
//   ZENGINE_E2E_REPORT      the report to open (name)
//   ZENGINE_E2E_ARTIFACTS   folder for screenshots (kept as test artifacts)
//
// Exits 0 when every step passed; otherwise prints the failed step and exits 1.

import { createHash, createHmac, randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { join } from "node:path";
import { artifactsDir, env, launch } from "./browser.mjs";

const base = env("ZENGINE_E2E_BASE");
const key = env("ZENGINE_E2E_JWT_KEY");
const idpPort = Number(env("ZENGINE_E2E_IDP_PORT"));
const paymentId = env("ZENGINE_E2E_PAYMENT");
const deadLetter = env("ZENGINE_E2E_DEAD_LETTER");
const handoff = env("ZENGINE_E2E_HANDOFF");
const report = env("ZENGINE_E2E_REPORT");
const artifacts = artifactsDir();

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
function jwt(claims, secret = key) {
  const unsigned = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  const signature = createHmac("sha256", secret).update(unsigned).digest("base64url");
  return `${unsigned}.${signature}`;
}
const now = Math.floor(Date.now() / 1000);
const operator = { sub: "ana@demo", tenant_id: "demo", role: "operator", exp: now + 3600 };

// The fake OIDC provider: authorization code flow with PKCE. The authorize endpoint signs the
// operator in at once and sends the browser back with a one-time code (echoing `state`); the
// token endpoint redeems it only with the verifier whose S256 challenge came with the request,
// and answers an ID token carrying the request's nonce — or, when `forgeNonce` is set, another
// nonce (a token issued for some other sign-in), which the console must refuse.
let authorizeRequests = 0;
let tokenRequests = 0;
let forgeNonce = false;
const codes = new Map();
const cors = { "access-control-allow-origin": base, "access-control-allow-headers": "content-type" };
const idp = createServer((req, res) => {
  const url = new URL(req.url, `http://127.0.0.1:${idpPort}`);
  if (req.method === "OPTIONS") {
    res.writeHead(204, { ...cors, "access-control-allow-methods": "POST" }).end();
    return;
  }
  if (url.pathname === "/token" && req.method === "POST") {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      tokenRequests += 1;
      const form = new URLSearchParams(body);
      const grant = codes.get(form.get("code"));
      codes.delete(form.get("code"));
      const verifier = form.get("code_verifier") ?? "";
      const problems = [];
      if (form.get("grant_type") !== "authorization_code") problems.push("grant_type");
      if (!grant) problems.push("code");
      else {
        if (createHash("sha256").update(verifier).digest("base64url") !== grant.challenge) {
          problems.push("code_verifier");
        }
        if (form.get("redirect_uri") !== grant.redirect) problems.push("redirect_uri");
      }
      if (form.get("client_id") !== "zengine-console") problems.push("client_id");
      if (problems.length) {
        res.writeHead(400, { ...cors, "content-type": "application/json" });
        res.end(JSON.stringify({ error: "invalid_grant", error_description: `${problems}` }));
        return;
      }
      const nonce = forgeNonce ? "some-other-sign-in" : grant.nonce;
      res.writeHead(200, { ...cors, "content-type": "application/json" });
      res.end(JSON.stringify({ id_token: jwt({ ...operator, nonce }), token_type: "Bearer" }));
    });
    return;
  }
  if (url.pathname !== "/authorize") {
    res.writeHead(404).end();
    return;
  }
  authorizeRequests += 1;
  const problems = [];
  if (url.searchParams.get("response_type") !== "code") problems.push("response_type");
  if (url.searchParams.get("client_id") !== "zengine-console") problems.push("client_id");
  if (!url.searchParams.get("state")) problems.push("state");
  if (!url.searchParams.get("nonce")) problems.push("nonce");
  if (url.searchParams.get("code_challenge_method") !== "S256") problems.push("pkce");
  if ((url.searchParams.get("code_challenge") ?? "").length < 43) problems.push("code_challenge");
  const redirect = url.searchParams.get("redirect_uri") ?? "";
  if (!redirect.startsWith(base)) problems.push("redirect_uri");
  if (problems.length) {
    res.writeHead(400, { "content-type": "text/plain" }).end(`bad authorize request: ${problems}`);
    return;
  }
  const code = randomUUID();
  codes.set(code, {
    challenge: url.searchParams.get("code_challenge"),
    nonce: url.searchParams.get("nonce"),
    redirect,
  });
  const query = new URLSearchParams({ code, state: url.searchParams.get("state") });
  res.writeHead(302, { location: `${redirect}?${query}` }).end();
});
await new Promise((resolve) => idp.listen(idpPort, "127.0.0.1", resolve));

const browser = await launch();
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const consoleErrors = [];
page.on("pageerror", (e) => consoleErrors.push(String(e)));

let step = "start";
const shot = (name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
const expectText = async (selector, pattern, timeout = 15_000) => {
  const locator = page.locator(selector).first();
  await locator.waitFor({ state: "visible", timeout });
  const deadline = Date.now() + timeout;
  let text = "";
  while (Date.now() < deadline) {
    text = (await locator.textContent()) ?? "";
    if (pattern.test(text)) return text;
    await page.waitForTimeout(100);
  }
  throw new Error(`${selector}: "${text}" does not match ${pattern}`);
};

try {
  step = "a forged token is refused";
  await page.goto(`${base}/console/`);
  await page.locator("#token").fill(jwt(operator, "not-the-key"));
  await page.locator("#login").click();
  await expectText("#login-error", /refused/);
  await shot("01-login-refused");

  step = "an ID token issued for another sign-in (wrong nonce) is refused";
  forgeNonce = true;
  await page.locator("#sso").click();
  await expectText("#flash", /nonce/);
  forgeNonce = false;
  if (tokenRequests !== 1) throw new Error(`token requests: ${tokenRequests}`);

  step = "sign in through the OIDC provider";
  await page.goto(`${base}/console/`);
  await page.locator("#sso").click();
  await page.waitForURL(/#\/payments/);
  await expectText("#who", /ana@demo/);
  if (authorizeRequests !== 2) throw new Error(`authorize requests: ${authorizeRequests}`);
  if (tokenRequests !== 2) throw new Error(`token requests: ${tokenRequests}`);

  step = "review a payment";
  const row = page.locator(`#payments tr[data-payment="${paymentId}"]`);
  await row.waitFor({ timeout: 15_000 });
  await row.click();
  await page.locator("#receipt").waitFor();
  await page.waitForFunction(() => {
    const img = document.querySelector("#receipt");
    return img && img.complete && img.naturalWidth > 0;
  });
  await expectText("[data-test=ocr-amount]", /\d/);
  await expectText("[data-test=order-total]", /\d/);
  await shot("02-payment-review");
  // Rejecting needs a reason: the console says so and sends nothing.
  await page.locator("#reject").click();
  await expectText("#flash", /say why/);
  await page.locator("#review-reason").fill("amount and date checked against the bank app");
  await page.locator("#approve").click();
  await expectText("#flash", /approved/);
  await page.locator(`#payments tr[data-payment="${paymentId}"]`).waitFor({ state: "detached" });
  await shot("03-payment-approved");

  step = "inspect and re-drive a dead letter";
  await page.goto(`${base}/console/#/dead-letters`);
  const letter = page.locator(`#dead-letters tr[data-message="${deadLetter}"]`);
  await letter.waitFor({ timeout: 15_000 });
  await letter.locator("button.inspect").click();
  await expectText("#dead-letter-detail", /text/);
  await shot("04-dead-letter");
  await letter.locator("button.redrive").click();
  await expectText("#flash", /re-driving/);
  await letter.waitFor({ state: "detached" });

  step = "see the handed-off conversation and its history";
  await page.goto(`${base}/console/#/handoffs`);
  const waiting = page.locator(`#handoffs tr[data-workflow="${handoff}"]`);
  await waiting.waitFor({ timeout: 15_000 });
  await shot("05-handoffs");
  await waiting.locator("[data-test=history-link]").click();
  await page.locator("#timeline tr").nth(3).waitFor();
  await expectText("#timeline", /WorkflowExecutionStarted/);
  await shot("06-history");

  step = "open a report";
  await page.goto(`${base}/console/#/reports/${report}`);
  await page.locator("#report-table, #report-empty").first().waitFor({ timeout: 15_000 });
  if (await page.locator("#report-table").count()) {
    await page.locator("svg.chart rect").first().waitFor();
  }
  await shot("07-report");

  step = "sign out";
  await page.locator("#logout").click();
  await page.locator("#login-form").waitFor();

  if (consoleErrors.length) throw new Error(`page errors: ${consoleErrors.join("; ")}`);
  console.log(`console e2e: every step passed; screenshots in ${artifacts}`);
} catch (e) {
  await shot(`failed-${randomUUID().slice(0, 8)}`).catch(() => {});
  console.error(`console e2e failed at "${step}": ${e?.stack ?? e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  idp.close();
}
