// Conversations handed off to a human agent and still waiting; give one back to the bot.

import { ApiError, get, post, wf } from "./api";
import { flash, h, mount, time } from "./dom";
import { historyLinks } from "./links";

interface Handoff {
  workflow_id: string;
  handed_off_at: number;
  node: string | null;
  queue: string | null;
  agent_queue: number;
  turns: number;
}

export async function renderHandoffs(root: HTMLElement): Promise<void> {
  const table = h("table", { class: "list", id: "handoffs" });
  mount(root, h("h1", {}, "Conversations waiting for an agent"), table);
  const { handoffs } = await get<{ handoffs: Handoff[] }>("/v1/conversations/handoffs");
  if (handoffs.length === 0) {
    mount(table, h("tr", {}, h("td", { class: "muted", id: "handoffs-empty" }, "No conversation waits for an agent.")));
    return;
  }
  mount(
    table,
    h(
      "tr",
      {},
      h("th", {}, "Handed off"),
      h("th", {}, "Conversation"),
      h("th", {}, "Queue"),
      h("th", {}, "Waiting messages"),
      h("th", {}, ""),
    ),
    ...handoffs.map((c) =>
      h(
        "tr",
        { "data-workflow": c.workflow_id },
        h("td", {}, time(c.handed_off_at)),
        h("td", {}, c.workflow_id, " ", historyLinks(c.workflow_id)),
        h("td", {}, c.queue ?? "—"),
        h("td", {}, c.agent_queue),
        h(
          "td",
          {},
          h(
            "button",
            {
              class: "return",
              onclick: async () => {
                try {
                  await post(`/v1/ops/workflows/${wf(c.workflow_id)}/actions/return_to_bot`, {});
                  flash(`${c.workflow_id} is back with the bot`);
                  await renderHandoffs(root);
                } catch (e) {
                  flash(e instanceof ApiError ? e.message : String(e), "error");
                }
              },
            },
            "Return to bot",
          ),
        ),
      ),
    ),
  );
}
