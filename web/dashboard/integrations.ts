// Integrations: zero-code Stripe tracking. The two webhook endpoints to add in Stripe (URL,
// signing secret on the Worker, which events), the click script for the landing page, and the
// Stripe events received lately with what each one did (credited a partner, or why not); then
// the outgoing webhooks to the merchant's own server (`webhooks.ts`).
import { announce, clear, h, type Child } from "../shared/dom";
import { titleCase } from "../shared/format";
import { formatMoney } from "../shared/money";
import type { StripeEventRecord, StripeIntegration, StripeWebhookEndpoint } from "../shared/types";
import type { Ctx } from "./ctx";
import { RULES } from "./fraud";
import { copyRow, live, table } from "./ui";
import { webhooksCard } from "./webhooks";

const PATH = "/api/v1/integrations/stripe";

/** Why an event credited nobody, in the merchant's words. Unknown codes are shown as-is. */
export const REASONS: Record<string, string> = {
  // Stripe events
  not_a_refport_click: "client_reference_id is not a Refport click",
  no_click_id: "No referral on this checkout",
  not_referred: "Customer was not referred",
  unpaid: "Checkout not paid yet; the sale follows when it is",
  zero_amount: "Nothing was paid",
  sale_not_found: "Refund of a payment Refport did not track",
  refund_pending: "Refund pending at Stripe",
  refund_not_succeeded: "Refund failed or was canceled",
  currency_not_settled: "Paid in a currency that does not settle in the payout currency",
  ambiguous_program: "Customer is in several programs",
  unknown_program: "No program for this event",
  event_not_handled: "Refport does not use this event",
  duplicate_sale: "Already tracked",
  malformed_object: "Stripe's object lacks what Refport needs (an id, an amount, a currency)",
  currency_mismatch: "Refund in another currency than the sale",
  // Attribution (the track API's reasons)
  no_attribution: "Customer is not attributed to a partner",
  partner_banned: "The referring partner is banned",
  outside_recurring_window: "The partner's recurring reward period for this customer is over",
  click_not_found: "No valid referral click was found",
  click_expired: "The referral click is older than the attribution window",
  click_in_future: "The referral click has a time in the future",
  click_other_program: "The referral click belongs to another program",
  // Commissions rejected by a fraud rule
  ...Object.fromEntries(RULES.map(([code, name]) => [code, `Fraud rule: ${name}`])),
};

export const reasonText = (code: string): string => (Object.hasOwn(REASONS, code) ? REASONS[code] : code);

const EFFECTS: Record<string, string> = {
  lead: "Lead",
  sale: "Sale",
  lead_and_sale: "Lead and sale",
  refund: "Refund",
  account_updated: "Payout account updated",
  transfer_reversed: "Payout reversed",
  payouts_resumed: "Payouts resumed",
};
const effectText = (e: string): string => (Object.hasOwn(EFFECTS, e) ? EFFECTS[e] : titleCase(e));

const OUTCOMES: Record<string, string> = { attributed: "Attributed", unattributed: "Unattributed", ignored: "Ignored", applied: "Applied" };

const ENDPOINTS: Record<string, { title: string; what: string; listen: string; secret: string; label: string }> = {
  platform: {
    title: "Your account's events",
    what: "Checkouts, invoices, refunds and customers become leads, sales and refunds.",
    listen: "Events on your account",
    secret: "STRIPE_WEBHOOK_SECRET",
    label: "Platform endpoint URL",
  },
  connect: {
    title: "Connected accounts' events",
    what: "Your partners' Stripe payout accounts: onboarding, capabilities and disconnects.",
    listen: "Events on Connected accounts",
    secret: "STRIPE_CONNECT_WEBHOOK_SECRET",
    label: "Connect endpoint URL",
  },
};

// ---- times -----------------------------------------------------------------------------------

const rel = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const absFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** "just now", "5 minutes ago", "3 hours ago", "yesterday", "2 months ago". */
export function ago(iso: string, now = Date.now()): string {
  const s = Math.floor((now - new Date(iso).getTime()) / 1000);
  if (!(s >= -60)) return absFmt.format(new Date(iso));
  if (s < 45) return "just now";
  if (s < 3600) return rel.format(-Math.max(1, Math.round(s / 60)), "minute");
  if (s < 86_400) return rel.format(-Math.round(s / 3600), "hour");
  const days = Math.floor(s / 86_400);
  if (days < 45) return rel.format(-days, "day");
  if (days < 730) return rel.format(-Math.round(days / 30.4), "month");
  return rel.format(-Math.round(days / 365), "year");
}

function received(iso: string): Child {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const abs = absFmt.format(d);
  return [h("time", { datetime: iso, title: abs }, ago(iso)), h("div", { class: "muted sub" }, abs)];
}

// ---- pieces ----------------------------------------------------------------------------------

function secretStatus(ok: boolean, name: string, missing: Child): HTMLElement {
  return ok
    ? h("p", { class: "status ok" }, h("span", { class: "badge enabled" }, "Configured"), " ", h("code", null, name), " is set on the Worker.")
    : h("div", { class: "alert warn status" }, h("p", null, h("strong", null, "Not configured. "), missing), h("pre", { class: "snippet" }, `wrangler secret put ${name}`));
}

function endpointCard(w: StripeWebhookEndpoint): HTMLElement {
  const e = ENDPOINTS[w.endpoint] ?? { title: w.endpoint, what: "", listen: "", secret: "", label: `${w.endpoint} endpoint URL` };
  const titleId = `wh-${w.endpoint}-title`;
  return h(
    "section",
    { class: "endpoint", id: `wh-${w.endpoint}`, "aria-labelledby": titleId },
    h(
      "div",
      { class: "endpoint-head" },
      h("h3", { id: titleId }, e.title),
      e.what ? h("p", { class: "muted" }, e.what) : null,
      copyRow(e.label, w.url, { id: `wh-${w.endpoint}-url`, copyLabel: `Copy ${e.label.replace(/^./, (c) => c.toLowerCase())}` }),
    ),
    h(
      "div",
      { class: "endpoint-main" },
      e.listen ? [h("h4", null, "Listen to"), h("p", { class: "listen" }, h("strong", null, e.listen))] : null,
      h("h4", null, "Signing secret"),
      secretStatus(
        w.secret_configured,
        e.secret || "the signing secret",
        "Refport refuses this endpoint's events until it is set. After adding the endpoint, reveal its signing secret (whsec_…) in Stripe and store it on the Worker:",
      ),
    ),
    h(
      "div",
      { class: "endpoint-events" },
      h("h4", { id: `wh-${w.endpoint}-events` }, `Events to select (${w.events.length})`),
      h(
        "ul",
        { class: "event-types", "aria-labelledby": `wh-${w.endpoint}-events` },
        w.events.map((t) => h("li", null, h("code", null, t))),
      ),
    ),
  );
}

/** An event type or id that may wrap after its dots / underscores rather than anywhere. */
function breakable(text: string): Child {
  return h("code", null, text.split(/(?<=[._])/).flatMap((part, i) => (i ? [h("wbr"), part] : [part])));
}

function outcomeBadge(o: string | null): Child {
  if (!o) return h("span", { class: "muted", title: "Received before outcomes were recorded" }, "—");
  return h("span", { class: `badge outcome-${o}` }, Object.hasOwn(OUTCOMES, o) ? OUTCOMES[o] : titleCase(o));
}

/** Stripe's field names in a reason (client_reference_id) set as code. */
const withCode = (text: string): Child => text.split(/\b(client_reference_id|refport_id)\b/).map((part, i) => (i % 2 ? h("code", null, part) : part));

function details(e: StripeEventRecord): Child {
  const effect = e.effect ? effectText(e.effect) : null;
  // Credited (or a refund / payout account applied) to a partner: the partner, linked.
  if (!e.reason && (e.partner_name || e.partner_id)) {
    const who = e.partner_name ?? e.partner_id!;
    const partner = e.program_id ? h("a", { href: `#/programs/${encodeURIComponent(e.program_id)}/partners` }, who) : h("strong", null, who);
    return [effect ? `${effect} for ` : e.outcome === "attributed" ? "Credited to " : "Partner: ", partner];
  }
  if (e.reason) return h("span", { class: "reason-text", "data-reason": e.reason }, Object.hasOwn(REASONS, e.reason) ? withCode(REASONS[e.reason]) : h("code", null, e.reason));
  if (effect) return effect;
  return h("span", { class: "muted" }, "—");
}

function amount(e: StripeEventRecord): Child {
  if (e.amount === null || e.amount === undefined) return h("span", { class: "muted" }, "—");
  return e.currency ? formatMoney(e.amount, e.currency) : e.amount.toLocaleString();
}

function eventsTable(events: StripeEventRecord[]): HTMLElement {
  if (!events.length)
    return h(
      "div",
      { class: "empty all-clear" },
      h("strong", null, "No events yet — send a test event from Stripe."),
      "In Stripe, open the endpoint you added and choose “Send test event”, or complete a test checkout. Events appear here as they arrive.",
    );
  return table<StripeEventRecord>(
    "Recent Stripe events, newest first",
    [
      { title: "Received", cell: (e) => received(e.received_at) },
      { title: "Event type", cell: (e) => [breakable(e.type), e.endpoint === "connect" ? h("div", { class: "muted sub" }, "Connected account") : null] },
      { title: "Object", cell: (e) => [e.object_id ? h("code", null, e.object_id) : h("span", { class: "muted" }, "—"), e.customer ? h("div", { class: "muted sub customer" }, "Customer ", h("code", null, e.customer)) : null] },
      { title: "Amount", num: true, cell: amount },
      { title: "Outcome", cell: (e) => outcomeBadge(e.outcome) },
      { title: "Details", cell: details },
    ],
    events,
    (e) => ({ "data-id": e.id, "data-type": e.type, "data-outcome": e.outcome ?? "" }),
  );
}

// ---- page ------------------------------------------------------------------------------------

export async function integrationsPage(ctx: Ctx): Promise<void> {
  const [data, hooks] = await Promise.all([ctx.call<StripeIntegration>(PATH), webhooksCard(ctx)]);
  const origin = (() => {
    try {
      return new URL(data.webhooks[0]?.url ?? "").origin;
    } catch {
      return location.origin;
    }
  })();

  const eventsHost = h("div", { id: "stripe-events", "aria-busy": "false" });
  const eventsMsg = h("div", { class: "alert", role: "alert" });
  const refresh = h("button", { type: "button", class: "secondary small" }, "Refresh");
  const drawEvents = (events: StripeEventRecord[]) => clear(eventsHost, eventsTable(events));
  refresh.addEventListener("click", async () => {
    refresh.disabled = true;
    eventsHost.setAttribute("aria-busy", "true");
    clear(eventsMsg);
    eventsMsg.className = "alert";
    try {
      const fresh = await ctx.call<StripeIntegration>(PATH);
      drawEvents(fresh.events);
      const n = fresh.events.length;
      announce(live(), n ? `Events refreshed: ${n} ${n === 1 ? "event" : "events"}.` : "Events refreshed: no events yet.");
    } catch (e) {
      eventsMsg.className = "alert error";
      clear(eventsMsg, `Could not refresh the events: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      refresh.disabled = false;
      eventsHost.setAttribute("aria-busy", "false");
    }
  });
  drawEvents(data.events);

  const script = `<script src="${origin}/refport.js" async></script>`;
  clear(
    ctx.main,
    h("h1", { tabindex: -1 }, "Integrations"),
    h("p", { class: "muted lead" }, "Connect Stripe and Refport tracks leads, sales and refunds without code on your server."),
    h(
      "section",
      { class: "card", "aria-labelledby": "stripe-title", id: "stripe-setup" },
      h("h2", { id: "stripe-title" }, "Track sales with Stripe"),
      h(
        "p",
        null,
        "In Stripe, open ",
        h("strong", null, "Dashboard → Developers → Webhooks"),
        " and add both endpoints below (",
        h("strong", null, "Add endpoint"),
        "). Refport turns checkouts, invoices, refunds and new customers into leads, sales and refunds for the partner who referred the customer.",
      ),
      h("div", { class: "endpoints" }, data.webhooks.map(endpointCard)),
      h(
        "section",
        { class: "endpoint api-key", "aria-labelledby": "api-key-title" },
        h("h3", { id: "api-key-title" }, "Stripe API key"),
        secretStatus(data.api_key_configured, "STRIPE_SECRET_KEY", "Refport needs your Stripe secret key to follow refunds of subscriptions and of payments in another currency. Use a restricted key with read access, and store it on the Worker:"),
      ),
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "script-title", id: "script-setup" },
      h("h2", { id: "script-title" }, "Add the script to your landing page"),
      h("p", null, "It keeps the referral (", h("code", null, "refport_id"), ") in a first-party cookie when a visitor arrives through a partner's link."),
      copyRow("Script tag", script, { id: "script-tag", copyLabel: "Copy script tag" }),
      h(
        "p",
        null,
        "Payment Links (",
        h("code", null, "buy.stripe.com"),
        "), ",
        h("code", null, "<stripe-pricing-table>"),
        " and ",
        h("code", null, "<stripe-buy-button>"),
        " get the referral automatically. For Checkout Sessions created by your server, pass the ",
        h("code", null, "refport_id"),
        " cookie as ",
        h("code", null, "client_reference_id"),
        ".",
      ),
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "events-title", id: "events-card" },
      h("div", { class: "section-head" }, h("h2", { id: "events-title" }, "Recent Stripe events"), refresh),
      h("p", { class: "muted" }, "The last 50 events Stripe sent, newest first, and what Refport did with each."),
      eventsMsg,
      eventsHost,
    ),
    hooks,
  );
}
