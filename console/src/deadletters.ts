// Dead-lettered outbound messages: inspect, re-drive.

import { ApiError, get, post } from "./api";
import { flash, h, mount, time } from "./dom";
import { historyLinks } from "./links";

interface DeadLetter {
  client_message_id: string;
  strategy: string;
  recipient: string;
  state: string;
  attempts: number;
  last_error: string | null;
  reply: unknown;
  created_at: number;
  updated_at: number;
}

/** The conversation a message belongs to: its id is `<conversation workflow id>/…`. */
function owner(id: string): string | null {
  const parts = id.split("/");
  return parts.length > 2 ? parts.slice(0, -1).join("/") : null;
}

export async function renderDeadLetters(root: HTMLElement): Promise<void> {
  const table = h("table", { class: "list", id: "dead-letters" });
  const pane = h("div", { class: "pane" });
  mount(root, h("h1", {}, "Dead letters"), table, pane);
  const { dead_letters } = await get<{ dead_letters: DeadLetter[] }>("/v1/channels/dead-letters");
  if (dead_letters.length === 0) {
    mount(table, h("tr", {}, h("td", { class: "muted", id: "dead-letters-empty" }, "No dead letters.")));
    return;
  }
  mount(
    table,
    h(
      "tr",
      {},
      h("th", {}, "Last attempt"),
      h("th", {}, "Strategy"),
      h("th", {}, "Attempts"),
      h("th", {}, "Error"),
      h("th", {}, ""),
    ),
    ...dead_letters.map((d) =>
      h(
        "tr",
        { "data-message": d.client_message_id },
        h("td", {}, time(d.updated_at)),
        h("td", {}, d.strategy),
        h("td", {}, d.attempts),
        h("td", { class: "error-text" }, d.last_error ?? "—"),
        h(
          "td",
          { class: "actions" },
          h(
            "button",
            {
              class: "link inspect",
              onclick: () =>
                mount(
                  pane,
                  h("h3", {}, d.client_message_id),
                  h("p", {}, `to ${d.recipient} via ${d.strategy}, created ${time(d.created_at)}`),
                  h("pre", { class: "json", id: "dead-letter-detail" }, JSON.stringify(d.reply, null, 2)),
                  owner(d.client_message_id) && historyLinks(owner(d.client_message_id) ?? ""),
                ),
            },
            "inspect",
          ),
          h(
            "button",
            {
              class: "redrive",
              onclick: async () => {
                try {
                  const r = await post<{ workflow_id?: string }>(
                    `/v1/channels/dead-letters/${encodeURIComponent(d.client_message_id)}/redrive`,
                  );
                  flash(`re-driving ${d.client_message_id}${r.workflow_id ? ` (${r.workflow_id})` : ""}`);
                  await renderDeadLetters(root);
                } catch (e) {
                  flash(e instanceof ApiError ? e.message : String(e), "error");
                }
              },
            },
            "Re-drive",
          ),
        ),
      ),
    ),
  );
}
