// The payment review queue: the receipt image beside the OCR fields and the order;
// approve or reject with a reason.

import { ApiError, blobUrl, claims, get, post } from "./api";
import { flash, h, mount, time } from "./dom";
import { historyLinks } from "./links";

interface Payment {
  payment_id: string;
  order_id: string;
  status: string;
  operation_code: string | null;
  amount: string | null;
  sender: string | null;
  reasons: string[];
  extraction: Record<string, unknown> | null;
  raw_ocr: string | null;
  media_ref: string;
  created_at: number;
}

interface Order {
  order_id: string;
  order_number?: string;
  status: string;
  total: string;
  type?: string;
  currency?: string;
  items?: { name?: string; sku?: string; quantity: number; unit_price?: string }[];
  customer?: { phone?: string; name?: string } | null;
  created_at?: number;
}

function field(label: string, value: unknown, test?: string): HTMLElement {
  const text = value === null || value === undefined || value === "" ? "—" : String(value);
  return h("div", { class: "field" }, h("dt", {}, label), h("dd", { "data-test": test }, text));
}

function confidence(extraction: Record<string, unknown> | null, key: string): string {
  const c = (extraction?.["confidence"] as Record<string, unknown> | undefined)?.[key];
  return typeof c === "number" ? ` (${Math.round(c * 100)} %)` : "";
}

async function detail(root: HTMLElement, payment: Payment, refresh: () => void): Promise<void> {
  const ex = payment.extraction;
  const image = h("img", { alt: "receipt", id: "receipt", class: "receipt" }) as HTMLImageElement;
  const imageBox = h("div", { class: "receipt-box" }, image);
  blobUrl(`/v1/payments/${encodeURIComponent(payment.payment_id)}/receipt`)
    .then((url) => {
      image.src = url;
    })
    .catch((e: unknown) => {
      mount(imageBox, h("p", { class: "muted" }, e instanceof Error ? e.message : String(e)));
    });
  const orderBox = h("div", { class: "order" }, h("p", { class: "muted" }, "loading the order…"));
  get<Order>(`/v1/orders/${encodeURIComponent(payment.order_id)}`)
    .then((order) =>
      mount(
        orderBox,
        h("h3", {}, `Order ${order.order_number ?? order.order_id}`),
        h(
          "dl",
          {},
          field("Status", order.status),
          field("Total", `${order.currency ?? ""} ${order.total}`.trim(), "order-total"),
          field("Type", order.type),
          field("Created", time(order.created_at)),
        ),
        order.items &&
          h(
            "ul",
            { class: "items" },
            ...order.items.map((i) =>
              h("li", {}, `${i.quantity} × ${i.name ?? i.sku ?? "item"}${i.unit_price ? ` @ ${i.unit_price}` : ""}`),
            ),
          ),
      ),
    )
    .catch((e: unknown) => mount(orderBox, h("p", { class: "error" }, String(e))));

  const reason = h("input", {
    id: "review-reason",
    placeholder: "reason (required to reject)",
    maxlength: 500,
  }) as HTMLInputElement;
  const decide = async (decision: "approve" | "reject") => {
    const note = reason.value.trim();
    if (decision === "reject" && !note) {
      flash("say why the payment is rejected", "error");
      reason.focus();
      return;
    }
    const reviewer = String(claims()["sub"] ?? claims()["email"] ?? "console");
    try {
      await post(`/v1/payments/${encodeURIComponent(payment.payment_id)}/review`, {
        decision,
        reviewer,
        note: note || null,
      });
      flash(`payment ${payment.payment_id} ${decision === "approve" ? "approved" : "rejected"}`);
      refresh();
    } catch (e) {
      flash(e instanceof ApiError ? e.message : String(e), "error");
    }
  };
  mount(
    root,
    h(
      "div",
      { class: "review", "data-payment": payment.payment_id },
      imageBox,
      h(
        "div",
        { class: "ocr" },
        h("h3", {}, "What the receipt says"),
        h(
          "dl",
          {},
          field("Amount", (payment.amount ?? ex?.["amount"] ?? "") + confidence(ex, "amount"), "ocr-amount"),
          field(
            "Operation code",
            (payment.operation_code ?? ex?.["operation_code"] ?? "") + confidence(ex, "operation_code"),
            "ocr-code",
          ),
          field("Date", (ex?.["date"] ?? "") + confidence(ex, "date"), "ocr-date"),
          field("Time", ex?.["time"]),
          field("Sender", payment.sender ?? ex?.["counterparty"]),
        ),
        h("h4", {}, "Why it needs a person"),
        h("ul", { class: "reasons" }, ...payment.reasons.map((r) => h("li", {}, r))),
        payment.raw_ocr && h("details", {}, h("summary", {}, "OCR text"), h("pre", {}, payment.raw_ocr)),
        h(
          "div",
          { class: "actions" },
          reason,
          h("button", { id: "approve", class: "ok", onclick: () => decide("approve") }, "Approve"),
          h("button", { id: "reject", class: "danger", onclick: () => decide("reject") }, "Reject"),
        ),
        historyLinks(`${String(claims()["tenant_id"] ?? "")}/payment/${payment.payment_id}`),
      ),
      orderBox,
    ),
  );
}

export async function renderPayments(root: HTMLElement): Promise<void> {
  const list = h("table", { class: "list", id: "payments" });
  const pane = h("div", { class: "pane" }, h("p", { class: "muted" }, "Select a payment."));
  const refresh = () => void renderPayments(root);
  mount(root, h("h1", {}, "Payments in review"), h("div", { class: "split" }, list, pane));
  const { payments } = await get<{ payments: Payment[] }>("/v1/payments?status=MANUAL_REVIEW&limit=100");
  if (payments.length === 0) {
    mount(list, h("tr", {}, h("td", { class: "muted", id: "payments-empty" }, "Nothing waits for review.")));
    return;
  }
  mount(
    list,
    h("tr", {}, h("th", {}, "Received"), h("th", {}, "Order"), h("th", {}, "Amount"), h("th", {}, "Reasons")),
    ...payments.map((p) => {
      const row = h(
        "tr",
        {
          class: "clickable",
          "data-payment": p.payment_id,
          tabindex: 0,
          onclick: () => {
            list.querySelectorAll("tr.selected").forEach((r) => r.classList.remove("selected"));
            row.classList.add("selected");
            void detail(pane, p, refresh);
          },
        },
        h("td", {}, time(p.created_at)),
        h("td", {}, p.order_id),
        h("td", {}, p.amount ?? "—"),
        h("td", {}, p.reasons.join("; ")),
      );
      return row;
    }),
  );
}
