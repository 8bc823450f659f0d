import { config } from "./config";
import { h } from "./dom";

/** Links to a workflow's history: the console's own timeline and, if known, the Temporal Web UI. */
export function historyLinks(workflowId: string): HTMLElement {
  const ui = config().temporal_ui;
  return h(
    "span",
    { class: "links" },
    h("a", { href: `#/history/${encodeURIComponent(workflowId)}`, "data-test": "history-link" }, "history"),
    ui &&
      h(
        "a",
        {
          href: `${ui.url}/namespaces/${encodeURIComponent(ui.namespace)}/workflows/${encodeURIComponent(workflowId)}`,
          target: "_blank",
          rel: "noopener",
        },
        "Temporal UI",
      ),
  );
}
