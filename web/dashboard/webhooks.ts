// Outgoing webhooks on the Integrations page: the merchant's endpoints (add one with the events
// it wants, its signing secret shown once; delete), an endpoint's recent deliveries (status,
// attempts, the endpoint's answer, when) and "Resend" on any of them.
import { ApiError } from "../shared/api";
import { announce, clear, h, type Child } from "../shared/dom";
import type { Ctx } from "./ctx";
import { ago } from "./integrations";
import { copyRow, field, FormErrors, group, live, openDialog, statusBadge, table } from "./ui";

interface Endpoint {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  program_id: string | null;
  created_at: string;
}

interface Delivery {
  id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  status: "pending" | "delivered" | "failed";
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  next_attempt_at: string | null;
  delivered_at: string | null;
  created_at: string;
}

interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

/** Every event an endpoint can subscribe to, with what it means to the merchant. */
export const EVENTS: [string, string][] = [
  ["partner.enrolled", "A partner joined the program"],
  ["partner.updated", "A partner was changed"],
  ["partner.banned", "A partner was banned"],
  ["lead.created", "A lead was tracked"],
  ["sale.created", "A sale was tracked"],
  ["commission.created", "A commission was created"],
  ["commission.updated", "A commission changed (any change)"],
  ["commission.approved", "A commission was approved"],
  ["commission.paid", "A commission was paid"],
  ["payout.paid", "A payout was sent"],
  ["payout.failed", "A payout failed"],
  ["payout.reversed", "A payout was reversed"],
];

const PATH = "/api/v1/webhooks";
const when = (iso: string | null): Child => (iso ? h("time", { datetime: iso, title: new Date(iso).toLocaleString() }, ago(iso)) : h("span", { class: "muted" }, "—"));

function answer(d: Delivery): Child {
  if (d.last_status !== null) return h("span", { class: d.last_status >= 200 && d.last_status < 300 ? "ok" : "bad" }, `HTTP ${d.last_status}`);
  if (d.last_error) return h("span", { class: "bad" }, d.last_error);
  return h("span", { class: "muted" }, "Not attempted yet");
}

/** The Webhooks card: endpoints, the add form, and the deliveries of the endpoint opened. */
export async function webhooksCard(ctx: Ctx): Promise<HTMLElement> {
  const listHost = h("div", { id: "webhook-endpoints" });
  const secretHost = h("div", { id: "webhook-secret" });
  const deliveriesHost = h("section", { id: "webhook-deliveries", "aria-labelledby": "deliveries-title", hidden: true });
  const msg = h("div", { class: "alert", role: "alert" });

  const fail = (e: unknown) => {
    msg.className = "alert error";
    clear(msg, e instanceof Error ? e.message : String(e));
  };

  async function showDeliveries(ep: Endpoint): Promise<void> {
    const page = await ctx.call<Page<Delivery>>(`${PATH}/${encodeURIComponent(ep.id)}/deliveries?limit=50`);
    const refresh = h("button", { type: "button", class: "secondary small" }, "Refresh");
    refresh.addEventListener("click", () => void showDeliveries(ep).catch(fail));
    const resend = (d: Delivery): HTMLElement => {
      const b = h("button", { type: "button", class: "secondary small", "aria-label": `Resend ${d.event_type} ${d.event_id}` }, "Resend");
      b.addEventListener("click", async () => {
        b.disabled = true;
        try {
          const after = await ctx.call<Delivery>(`/api/v1/webhook-deliveries/${encodeURIComponent(d.id)}/resend`, "POST");
          await showDeliveries(ep);
          announce(live(), after.status === "delivered" ? `Resent: the endpoint answered HTTP ${after.last_status}.` : `Resend failed: ${after.last_error ?? after.status}.`);
        } catch (e) {
          b.disabled = false;
          fail(e);
        }
      });
      return b;
    };
    deliveriesHost.hidden = false;
    clear(
      deliveriesHost,
      h("div", { class: "section-head" }, h("h3", { id: "deliveries-title" }, "Recent deliveries to ", h("code", null, ep.url)), refresh),
      page.data.length
        ? table<Delivery>(
            `Deliveries to ${ep.url}, newest first`,
            [
              { title: "Event", cell: (d) => [h("code", null, d.event_type), h("div", { class: "muted sub" }, h("code", null, d.event_id))] },
              { title: "Status", cell: (d) => statusBadge(d.status) },
              { title: "Attempts", num: true, cell: (d) => d.attempts },
              { title: "Response", cell: answer },
              { title: "Created", cell: (d) => when(d.created_at) },
              { title: "Delivered / next attempt", cell: (d) => (d.status === "pending" ? [h("span", { class: "muted" }, "Next "), when(d.next_attempt_at)] : when(d.delivered_at)) },
              { title: "Actions", cell: resend },
            ],
            page.data,
            (d) => ({ "data-id": d.id, "data-status": d.status, "data-type": d.event_type }),
          )
        : h("p", { class: "empty" }, "No deliveries yet: events this endpoint subscribes to appear here as they happen."),
    );
  }

  async function drawList(): Promise<void> {
    const page = await ctx.call<Page<Endpoint>>(`${PATH}?limit=100`);
    if (!page.data.length) return clear(listHost, h("p", { class: "empty" }, "No endpoints yet. Add one below to receive events on your server."));
    clear(
      listHost,
      table<Endpoint>(
        "Webhook endpoints",
        [
          { title: "URL", cell: (e) => [h("code", null, e.url), e.description ? h("div", { class: "muted sub" }, e.description) : null] },
          { title: "Events", cell: (e) => h("ul", { class: "event-types" }, e.events.map((t) => h("li", null, h("code", null, t)))) },
          { title: "Created", cell: (e) => when(e.created_at) },
          {
            title: "Actions",
            cell: (e) => {
              const show = h("button", { type: "button", class: "secondary small", "aria-label": `Deliveries of ${e.url}` }, "Deliveries");
              show.addEventListener("click", () => void showDeliveries(e).catch(fail));
              const del = h("button", { type: "button", class: "danger small", "aria-label": `Delete ${e.url}` }, "Delete");
              del.addEventListener("click", () =>
                openDialog({
                  title: "Delete this endpoint?",
                  body: h("p", null, "Refport stops sending events to ", h("code", null, e.url), ". Deliveries still waiting for a retry are dropped."),
                  confirm: "Delete endpoint",
                  danger: true,
                  onConfirm: async () => {
                    await ctx.call(`${PATH}/${encodeURIComponent(e.id)}`, "DELETE");
                    deliveriesHost.hidden = true;
                    await drawList();
                    announce(live(), "Endpoint deleted.");
                  },
                }),
              );
              return h("div", { class: "actions" }, show, del);
            },
          },
        ],
        page.data,
        (e) => ({ "data-id": e.id }),
      ),
    );
  }

  // ---- the add form ----
  const url = h("input", { type: "url", id: "webhook-url", placeholder: "https://example.com/refport-webhooks", spellcheck: "false", autocomplete: "off" });
  const description = h("input", { type: "text", id: "webhook-description", maxlength: 200 });
  const boxes = EVENTS.map(([t, what]) => {
    const box = h("input", { type: "checkbox", value: t, id: `ev-${t.replace(".", "-")}` });
    return { t, box, el: h("div", { class: "check" }, box, h("label", { for: box.id }, h("code", null, t), " ", h("span", { class: "muted" }, what))) };
  });
  const summary = h("div", { class: "alert", role: "alert" });
  const submit = h("button", { type: "submit" }, "Add endpoint");
  const form = h(
    "form",
    { novalidate: true, id: "webhook-form", "aria-labelledby": "add-endpoint-title" },
    h("h3", { id: "add-endpoint-title" }, "Add an endpoint"),
    summary,
    field("url", "Endpoint URL", url, "HTTPS (http only for localhost / 127.0.0.1). Refport POSTs each event as JSON, signed with Refport-Signature."),
    field("description", "Description (optional)", description),
    group("events", "Events to send", boxes.map((b) => b.el)),
    submit,
  );
  const errors = new FormErrors(form, summary);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const events = boxes.filter((b) => b.box.checked).map((b) => b.t);
    const problems: [string, string][] = [];
    if (!url.value.trim()) problems.push(["url", "Enter the URL of your endpoint."]);
    if (!events.length) problems.push(["events", "Choose at least one event."]);
    if (problems.length) return errors.show(problems);
    submit.disabled = true;
    try {
      const created = await ctx.call<Endpoint & { secret: string }>(PATH, "POST", { url: url.value.trim(), events, description: description.value.trim() || null });
      errors.clear();
      form.reset();
      clear(
        secretHost,
        h(
          "div",
          { class: "alert success", role: "status" },
          h("p", null, h("strong", null, "Endpoint added. "), "Copy its signing secret now: it is shown only once. Verify each delivery's Refport-Signature with it."),
          copyRow("Signing secret", created.secret, { id: "webhook-secret-value", copyLabel: "Copy signing secret" }),
        ),
      );
      await drawList();
      announce(live(), "Endpoint added. Its signing secret is shown once.");
    } catch (err) {
      if (err instanceof ApiError) errors.showApi(err);
      else errors.show([[undefined, String(err)]], "The request failed:");
    } finally {
      submit.disabled = false;
    }
  });

  await drawList();
  return h(
    "section",
    { class: "card", "aria-labelledby": "webhooks-title", id: "webhooks-card" },
    h("h2", { id: "webhooks-title" }, "Webhooks"),
    h("p", { class: "muted" }, "Refport sends events (partners, leads, sales, commissions, payouts) to your server as they happen, retried with backoff until your endpoint answers 2xx."),
    msg,
    secretHost,
    listHost,
    deliveriesHost,
    form,
  );
}
