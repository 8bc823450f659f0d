// A workflow's history as a readable timeline (the operator API's decoded view).

import { get, wf } from "./api";
import { h, mount } from "./dom";
import { historyLinks } from "./links";

interface TimelineEvent {
  event_id: number;
  event_type: string;
  time: string | null;
  since_previous_ms?: number | null;
  since_scheduled_ms?: number | null;
  details?: unknown;
  failure?: { message?: string; type?: string }[];
}

interface Detail {
  workflow_id: string;
  type: string;
  status: string;
  start_time: string | null;
  state?: unknown;
  state_error?: string;
}

export async function renderHistory(root: HTMLElement, workflowId: string): Promise<void> {
  const [detail, page] = await Promise.all([
    get<Detail>(`/v1/ops/workflows/${wf(workflowId)}`),
    get<{ events: TimelineEvent[] }>(`/v1/ops/workflows/${wf(workflowId)}/history?page_size=500`),
  ]);
  const details = (e: TimelineEvent) => {
    const text = e.details === undefined || e.details === null ? "" : JSON.stringify(e.details);
    if (text.length <= 160) return h("span", {}, text);
    return h("details", {}, h("summary", {}, `${text.slice(0, 160)}…`), h("pre", { class: "json" }, JSON.stringify(e.details, null, 2)));
  };
  const took = (e: TimelineEvent) =>
    e.since_scheduled_ms !== null && e.since_scheduled_ms !== undefined ? `${e.since_scheduled_ms} ms` : "";
  mount(
    root,
    h("h1", {}, `${detail.type} — ${detail.status}`),
    h("p", { id: "history-id" }, workflowId, " ", historyLinks(workflowId)),
    detail.state !== undefined &&
      h("details", { open: true }, h("summary", {}, "Current state"), h("pre", { class: "json" }, JSON.stringify(detail.state, null, 2))),
    h(
      "table",
      { class: "list timeline", id: "timeline" },
      h("tr", {}, h("th", {}, "#"), h("th", {}, "Time"), h("th", {}, "Event"), h("th", {}, "Took"), h("th", {}, "Details")),
      ...page.events.map((e) =>
        h(
          "tr",
          { class: e.failure?.length ? "failed" : "" },
          h("td", {}, e.event_id),
          h("td", {}, e.time ?? "—"),
          h("td", {}, e.event_type),
          h("td", {}, took(e)),
          h(
            "td",
            { class: "mono" },
            e.failure?.length ? h("div", { class: "error-text" }, e.failure.map((f) => f.message ?? "").join(" ← ")) : null,
            details(e),
          ),
        ),
      ),
    ),
  );
}
