// `make run`'s Temporal Web UI shows payloads decoded: headless Chromium (Debian's `chromium`,
// driven by playwright-core) opens a conversation's history page in the Web UI of a running
// `zengine dev`, with no sign-in and no token. Run by `tests/e2e.rs` (`the_web_ui_of_zengine_dev_…`),
// which starts `zengine dev`, sends the customer message, then passes:
//
//   ZENGINE_E2E_UI          the Web UI, e.g. http://127.0.0.1:PORT
//   ZENGINE_E2E_WORKFLOW    the conversation's workflow id
//   ZENGINE_E2E_RUN         its run id
//   ZENGINE_E2E_TEXT        the customer's message, which must be shown decoded
//   ZENGINE_E2E_ARTIFACTS   folder for the screenshot
//
// Exits 0 when the page shows the workflow's input and the customer's message decoded (they are
// encrypted at rest: without the codec the UI shows `binary/encrypted` blobs); otherwise prints
// why, with the codec calls the browser saw, and exits 1.

import { join } from "node:path";
import { artifactsDir, env, launch } from "./browser.mjs";

const ui = env("ZENGINE_E2E_UI");
const workflow = env("ZENGINE_E2E_WORKFLOW");
const run = env("ZENGINE_E2E_RUN");
const text = env("ZENGINE_E2E_TEXT");
const artifacts = artifactsDir();

const browser = await launch();
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
const decoded = [];
const failed = [];
page.on("requestfailed", (request) => {
  if (request.url().includes("/codec/")) failed.push(`${request.url()}: ${request.failure()?.errorText}`);
});
page.on("response", async (response) => {
  if (!response.url().endsWith("/codec/decode")) return;
  if (response.status() !== 200) {
    failed.push(`${response.url()}: HTTP ${response.status()}`);
    return;
  }
  const body = await response.json().catch(() => ({}));
  for (const payload of body.payloads ?? []) {
    decoded.push(Buffer.from(payload.data ?? "", "base64").toString("utf8"));
  }
});

let status = 0;
try {
  const url = `${ui}/namespaces/default/workflows/${encodeURIComponent(workflow)}/${run}/history`;
  await page.goto(url, { waitUntil: "load", timeout: 30_000 });
  // The workflow's input (the flow, with the bot's greeting) is shown decoded at once…
  const greeting = "asistente virtual de Demo";
  await page.waitForFunction((t) => document.body.innerText.includes(t), greeting, { timeout: 30_000 });
  // …and the customer's message once the update's event is opened.
  await page.getByText("Workflow Execution Update Accepted").first().click();
  await page.waitForFunction((t) => document.body.innerText.includes(t), text, { timeout: 30_000 });
  console.log(`decoded and shown: ${JSON.stringify(text)}`);
} catch (error) {
  status = 1;
  console.log(`FAILED: ${error.message}`);
  console.log(`codec failures: ${JSON.stringify(failed)}`);
  console.log(`decoded payloads: ${JSON.stringify(decoded).slice(0, 2000)}`);
} finally {
  await page.screenshot({ path: join(artifacts, "webui-history.png"), fullPage: true }).catch(() => {});
  await browser.close();
}
process.exit(status);
