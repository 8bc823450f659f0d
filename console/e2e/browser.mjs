// What the browser end-to-end scripts share: their inputs (environment variables set by
// `tests/e2e.rs`) and Debian's Chromium, driven by playwright-core.

import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

/// A variable the Rust test must set.
export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

/// The folder for screenshots (`ZENGINE_E2E_ARTIFACTS`), created.
export function artifactsDir() {
  const dir = env("ZENGINE_E2E_ARTIFACTS");
  mkdirSync(dir, { recursive: true });
  return dir;
}

/// Headless Chromium (`CHROMIUM`, default Debian's), quiet: no network of its own.
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
