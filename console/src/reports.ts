// Reports (`GET /v1/reports/{name}?from=&to=`) as charts and tables, with the CSV download.

import { ApiError, get, token } from "./api";
import { barChart } from "./chart";
import { flash, h, mount } from "./dom";

/** The reports the API offers, with a readable title. */
export const REPORTS: [string, string][] = [
  ["conversations", "Conversations and messages per day and channel"],
  ["response_times", "First-response times"],
  ["handoffs", "Handoff rate"],
  ["resolution_times", "Resolution times (handoff to return)"],
  ["csat", "Survey CSAT"],
  ["orders", "Orders by status"],
  ["payments", "Payments: auto-approved, manual review, rejected"],
  ["routes", "Route distance and stops per driver"],
  ["assistance", "Assistance events by status and SLA breaches"],
];

type Row = Record<string, unknown>;

/** The rows of a report answer, whatever the envelope (`rows`, `data`, or a bare list). */
export function rowsOf(answer: unknown): Row[] {
  if (Array.isArray(answer)) return answer as Row[];
  if (answer && typeof answer === "object") {
    for (const key of ["rows", "data", "items"]) {
      const value = (answer as Record<string, unknown>)[key];
      if (Array.isArray(value)) return value as Row[];
    }
  }
  return [];
}

function isoDay(offsetDays: number): string {
  const d = new Date(Date.now() + offsetDays * 86_400_000);
  return d.toISOString().slice(0, 10);
}

async function downloadCsv(path: string, name: string): Promise<void> {
  const response = await fetch(path, {
    headers: { Accept: "text/csv", Authorization: `Bearer ${token() ?? ""}` },
  });
  if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
  const url = URL.createObjectURL(await response.blob());
  const a = h("a", { href: url, download: `${name}.csv` });
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export async function renderReports(root: HTMLElement, name?: string): Promise<void> {
  const selected = name && REPORTS.some(([n]) => n === name) ? name : REPORTS[0]![0];
  const params = new URLSearchParams(location.hash.split("?")[1] ?? "");
  const from = params.get("from") ?? isoDay(-30);
  const to = params.get("to") ?? isoDay(1);
  const fromInput = h("input", { type: "date", id: "report-from", value: from }) as HTMLInputElement;
  const toInput = h("input", { type: "date", id: "report-to", value: to }) as HTMLInputElement;
  const body = h("div", { id: "report-body" }, h("p", { class: "muted" }, "loading…"));
  const path = `/v1/reports/${encodeURIComponent(selected)}?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`;
  mount(
    root,
    h("h1", {}, "Reports"),
    h(
      "nav",
      { class: "tabs" },
      ...REPORTS.map(([n, title]) =>
        h("a", { href: `#/reports/${n}`, class: n === selected ? "active" : "", title }, n),
      ),
    ),
    h(
      "form",
      {
        class: "range",
        onsubmit: (e: Event) => {
          e.preventDefault();
          location.hash = `#/reports/${selected}?from=${fromInput.value}&to=${toInput.value}`;
        },
      },
      h("label", {}, "from ", fromInput),
      h("label", {}, "to ", toInput),
      h("button", { type: "submit" }, "Show"),
      h(
        "button",
        {
          type: "button",
          id: "csv",
          onclick: () =>
            downloadCsv(path, selected).catch((e: unknown) => flash(String(e), "error")),
        },
        "Download CSV",
      ),
    ),
    body,
  );
  let answer: unknown;
  try {
    answer = await get<unknown>(path);
  } catch (e) {
    mount(body, h("p", { class: "error" }, e instanceof ApiError ? e.message : String(e)));
    return;
  }
  const rows = rowsOf(answer);
  if (rows.length === 0) {
    mount(body, h("p", { class: "muted", id: "report-empty" }, "No data in this period."));
    return;
  }
  const keys = Object.keys(rows[0] ?? {});
  const numeric = keys.filter((k) => rows.every((r) => r[k] === null || typeof r[k] === "number"));
  const label = keys.find((k) => !numeric.includes(k)) ?? keys[0] ?? "";
  mount(
    body,
    h("h2", {}, REPORTS.find(([n]) => n === selected)?.[1] ?? selected),
    numeric.length > 0 && barChart(rows, label, numeric.slice(0, 6)),
    h(
      "table",
      { class: "list", id: "report-table" },
      h("tr", {}, ...keys.map((k) => h("th", {}, k))),
      ...rows.map((r) =>
        h("tr", {}, ...keys.map((k) => h("td", {}, r[k] === null || r[k] === undefined ? "—" : typeof r[k] === "object" ? JSON.stringify(r[k]) : String(r[k])))),
      ),
    ),
  );
}
