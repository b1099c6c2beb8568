// The embedded partner portal: one partner's links, stats, commissions and payouts, read from
// /api/v1/portal/* with the embed token from the page URL (Bearer, never a cookie).
import { api, ApiError, List } from "../shared/api";
import { $, announce, clear, h } from "../shared/dom";
import { copyText } from "../shared/clipboard";
import { applyBrand } from "../shared/color";
import { formatDate, titleCase } from "../shared/format";
import { formatMoney } from "../shared/money";
import type { Commission, Payout, PortalMe, PortalStats } from "../shared/types";
import { barChart } from "../shared/chart";
import { browserCountry, countries, countryName } from "./country";

type Metric = "clicks" | "leads" | "sales" | "earnings";
const METRICS: [Metric, string][] = [
  ["clicks", "Clicks"],
  ["leads", "Leads"],
  ["sales", "Sales"],
  ["earnings", "Earnings"],
];

const params = new URLSearchParams(location.search);
const token = params.get("token") ?? "";
const onboarding = params.get("onboarding");
const app = $("#app");
const live = $("#live");

const state = {
  me: null as PortalMe | null,
  stats: null as PortalStats | null,
  days: 30 as 30 | 90,
  metric: "clicks" as Metric,
  commissions: [] as Commission[],
  commissionsNext: null as string | null,
  payouts: [] as Payout[],
  payoutsNext: null as string | null,
  loadedAt: 0,
};

const get = <T>(path: string) => api<T>(path, token);
const money = (minor: number) => formatMoney(minor, state.me?.program.payout_currency ?? "usd");

// Sections are rendered into these holders so a partial refresh keeps the rest (and focus).
const holders = {
  totals: h("div", { id: "totals" }),
  chart: h("div", { id: "chart" }),
  subIds: h("div", { id: "sub-ids" }),
  commissions: h("div", { id: "commissions-body" }),
  payoutStatus: h("div", { id: "payout-status" }),
  payouts: h("div", { id: "payouts-body" }),
};

function section(id: string, title: string, ...children: (Node | null)[]): HTMLElement {
  const hid = `${id}-title`;
  return h("section", { id, class: "card", "aria-labelledby": hid }, h("h2", { id: hid }, title), ...children);
}

function fatal(err: unknown): void {
  const expired = err instanceof ApiError && err.status === 401;
  app.setAttribute("aria-busy", "false");
  clear(
    app,
    h(
      "div",
      { class: "alert error", role: "alert" },
      h("strong", null, expired ? "Your portal session has expired." : "The portal could not be loaded."),
      " ",
      expired ? "Reload the page that shows this portal to continue." : err instanceof Error ? err.message : String(err),
    ),
  );
}

async function load(): Promise<void> {
  const [me, stats, cms, pos] = await Promise.all([
    get<PortalMe>("/api/v1/portal/me"),
    get<PortalStats>(`/api/v1/portal/stats?days=${state.days}`),
    get<List<Commission>>("/api/v1/portal/commissions?limit=20"),
    get<List<Payout>>("/api/v1/portal/payouts?limit=20"),
  ]);
  state.me = me;
  state.stats = stats;
  state.commissions = cms.data;
  state.commissionsNext = cms.next_cursor;
  state.payouts = pos.data;
  state.payoutsNext = pos.next_cursor;
  state.loadedAt = Date.now();
}

// ---- header, links, terms ----------------------------------------------------------------

function header(me: PortalMe): HTMLElement {
  const p = me.program;
  return h(
    "header",
    { class: "portal-header" },
    p.logo_url ? h("img", { class: "logo", src: p.logo_url, alt: `${p.name} logo`, width: 48, height: 48, referrerpolicy: "no-referrer" }) : null,
    h(
      "div",
      null,
      h("h1", { id: "program-name" }, p.name),
      p.description ? h("p", { class: "description" }, p.description) : null,
      h("p", { class: "muted whoami" }, "Signed in as ", h("strong", null, me.partner.name), ` (${me.partner.email})`),
    ),
  );
}

function linksSection(me: PortalMe): HTMLElement {
  const rows = me.links.map((l, i) => {
    const id = `link-${i}`;
    const hint = `${id}-dest`;
    const input = h("input", { id, type: "text", readonly: true, value: l.short_url, "aria-describedby": hint, spellcheck: "false" });
    const btn = h("button", { type: "button", class: "copy-btn", "data-url": l.short_url, "aria-describedby": id }, "Copy");
    btn.addEventListener("click", async () => {
      const ok = await copyText(l.short_url);
      if (ok) {
        btn.textContent = "Copied";
        announce(live, "Link copied to the clipboard.");
        window.setTimeout(() => (btn.textContent = "Copy"), 2000);
      } else {
        input.focus();
        input.select();
        announce(live, "Copying is blocked here: the link is selected, press Control+C (or Command+C) to copy it.");
      }
    });
    input.addEventListener("focus", () => input.select());
    return h(
      "div",
      { class: "link-row" },
      h("label", { for: id }, me.links.length > 1 ? `Referral link ${i + 1}` : "Your referral link"),
      h("div", { class: "copy" }, input, btn),
      h("p", { class: "hint muted", id: hint }, "Sends visitors to ", h("span", { class: "mono" }, l.url)),
    );
  });
  return section(
    "links",
    "Share your links",
    rows.length ? h("div", { class: "stack" }, rows) : h("p", { class: "empty" }, "You have no referral links yet."),
  );
}

function renderTotals(): void {
  const me = state.me!;
  const t = me.totals;
  const stat = (label: string, value: string, key: string, extra?: Node | null) =>
    h("div", { class: "stat", "data-stat": key }, h("span", { class: "stat-label" }, label), h("span", { class: "stat-value" }, value), extra ?? null);
  clear(
    holders.totals,
    h(
      "div",
      { class: "stats" },
      stat("Clicks", t.clicks.toLocaleString(), "clicks"),
      stat("Leads", t.leads.toLocaleString(), "leads"),
      stat("Sales", t.sales.toLocaleString(), "sales"),
      stat(
        "Earnings",
        money(t.earnings.total),
        "earnings",
        h("span", { class: "stat-sub" }, `${money(t.earnings.pending)} pending · ${money(t.earnings.approved)} approved · ${money(t.earnings.paid)} paid`),
      ),
    ),
  );
}

function renderChart(): void {
  const st = state.stats!;
  const metric = state.metric;
  const label = METRICS.find((m) => m[0] === metric)![1];
  const money = (n: number) => formatMoney(n, st.currency);
  const fmt = metric === "earnings" ? money : (n: number) => n.toLocaleString();
  chartWidth = holders.chart.clientWidth || 640;
  clear(holders.chart, barChart(st.data.map((d) => ({ date: d.date, value: d[metric] })), label, fmt, metric !== "earnings", chartWidth));
}

/** The period's clicks by sub-ID, and how to tag a link. */
function renderSubIds(): void {
  const st = state.stats!;
  const example = state.me?.links[0]?.short_url ?? "https://…/your-link";
  const sub = (v: string | null) => h("td", v === null ? { class: "muted" } : null, v ?? "—");
  const num = (n: number) => h("td", { class: "num" }, n.toLocaleString());
  const rows = st.sub_ids.map((r) => h("tr", { "data-sub1": r.sub1 ?? "" }, sub(r.sub1), sub(r.sub2), sub(r.sub3), num(r.clicks), num(r.leads), num(r.sales)));
  // The period's other clicks carried no sub-ID.
  type Count = "clicks" | "leads" | "sales";
  const sum = (k: Count, v: Record<Count, number>[]) => v.reduce((n, d) => n + d[k], 0);
  const rest = (k: Count) => Math.max(0, sum(k, st.data) - sum(k, st.sub_ids));
  if (rows.length && rest("clicks") + rest("leads") + rest("sales") > 0) {
    rows.push(h("tr", { class: "untagged" }, h("td", { colspan: 3, class: "muted" }, "No sub-ID"), num(rest("clicks")), num(rest("leads")), num(rest("sales"))));
  }
  clear(
    holders.subIds,
    h("h3", { id: "sub-ids-title" }, "By sub-ID"),
    h(
      "p",
      { class: "hint muted" },
      "Tag a link to see where its clicks come from: add ",
      h("code", null, "?sub1="),
      " (and ",
      h("code", null, "sub2"),
      ", ",
      h("code", null, "sub3"),
      ", up to 64 characters each) to it, e.g. ",
      h("span", { class: "mono" }, `${example}?sub1=tiktok&sub2=bio`),
      ".",
    ),
    table(`Your clicks by sub-ID, last ${st.days} days`, ["sub1", "sub2", "sub3", "Clicks", "Leads", "Sales"], [3, 4, 5], rows, `No clicks with a sub-ID in the last ${st.days} days.`),
  );
}

// The chart is drawn at the container's width (1 unit = 1 CSS pixel): redraw when it changes.
let chartWidth = 0;
new ResizeObserver(() => {
  if (state.stats && Math.abs(holders.chart.clientWidth - chartWidth) > 24) renderChart();
}).observe(holders.chart);

function toggleGroup<T extends string | number>(label: string, options: [T, string][], current: () => T, pick: (v: T) => Promise<void> | void): HTMLElement {
  const buttons = options.map(([v, text]) => {
    const b = h("button", { type: "button", class: "seg", "aria-pressed": String(v === current()), "data-value": String(v) }, text);
    b.addEventListener("click", async () => {
      if (v === current()) return;
      await pick(v);
      for (const o of buttons) o.setAttribute("aria-pressed", String(o.dataset.value === String(current())));
    });
    return b;
  });
  return h("div", { class: "segmented", role: "group", "aria-label": label }, buttons);
}

function performanceSection(): HTMLElement {
  renderTotals();
  renderChart();
  renderSubIds();
  const metric = toggleGroup<Metric>("Chart metric", METRICS, () => state.metric, (m) => {
    state.metric = m;
    renderChart();
  });
  const range = toggleGroup<30 | 90>("Chart period", [[30, "30 days"], [90, "90 days"]], () => state.days, async (d) => {
    holders.chart.setAttribute("aria-busy", "true");
    try {
      state.stats = await get<PortalStats>(`/api/v1/portal/stats?days=${d}`);
      state.days = d;
      renderChart();
      renderSubIds();
      announce(live, `Showing the last ${d} days.`);
    } catch (e) {
      announce(live, e instanceof Error ? e.message : "Could not load the chart.");
    } finally {
      holders.chart.setAttribute("aria-busy", "false");
    }
  });
  return section("performance", "Performance", holders.totals, h("div", { class: "chart-controls" }, metric, range), holders.chart, holders.subIds);
}

function termsSection(me: PortalMe): HTMLElement {
  return section("terms", "Commission terms", h("p", { id: "terms-text" }, me.program.terms));
}

// ---- commissions and payouts -------------------------------------------------------------

function statusBadge(status: string): HTMLElement {
  return h("span", { class: `badge ${status}` }, titleCase(status));
}

function moreButton(label: string, load: () => Promise<void>): HTMLElement {
  const b = h("button", { type: "button", class: "secondary small more" }, label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await load();
    } catch (e) {
      b.disabled = false;
      announce(live, e instanceof Error ? e.message : "Could not load more.");
    }
  });
  return b;
}

function renderCommissions(): void {
  const rows = state.commissions.map((c) =>
    h(
      "tr",
      { "data-id": c.id, "data-status": c.status },
      h("td", null, formatDate(c.created_at)),
      h("td", null, c.kind === "bonus" && c.description ? `Bonus: ${c.description}` : titleCase(c.kind)),
      h("td", { class: "num" }, c.kind === "sale" ? formatMoney(c.sale_amount, c.currency) : "—"),
      h("td", { class: "num" }, formatMoney(c.amount, c.currency)),
      h("td", null, statusBadge(c.status), c.reason ? h("span", { class: "reason muted" }, ` ${titleCase(c.reason)}`) : null),
    ),
  );
  clear(
    holders.commissions,
    table(
      "Your commissions, newest first",
      ["Date", "Type", "Sale", "Commission", "Status"],
      [2, 3],
      rows,
      "No commissions yet. They appear here as soon as someone you referred signs up or buys.",
    ),
    state.commissionsNext
      ? moreButton("Show more commissions", async () => {
          const next = await get<List<Commission>>(`/api/v1/portal/commissions?limit=20&cursor=${encodeURIComponent(state.commissionsNext!)}`);
          state.commissions.push(...next.data);
          state.commissionsNext = next.next_cursor;
          renderCommissions();
        })
      : null,
  );
}

/** A captioned table (numeric columns right-aligned), or the empty-state text when no rows. */
function table(caption: string, headers: string[], numeric: number[], rows: HTMLElement[], empty: string): HTMLElement {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  const head = headers.map((t, i) => h("th", { scope: "col", class: numeric.includes(i) ? "num" : null }, t));
  return h(
    "div",
    { class: "table-wrap" },
    h("table", null, h("caption", { class: "visually-hidden" }, caption), h("thead", null, h("tr", null, head)), h("tbody", null, rows)),
  );
}

let pendingWindow: Window | null = null;

/** The country picked in the select, kept across re-renders (e.g. a refresh on tab switch). */
let pickedCountry: string | null = null;

/** `country` (ISO alpha-2) is sent only when the portal asked for it; a server error about it is
 * shown through `countryError`. */
async function connectPayouts(btn: HTMLButtonElement, msg: HTMLElement, country?: string, countryError?: (m: string) => void): Promise<void> {
  // Open the tab inside the click (popup blockers), then send it to Stripe's page: Stripe's
  // onboarding cannot run inside an iframe.
  pendingWindow = window.open("", "_blank");
  if (pendingWindow) pendingWindow.opener = null;
  btn.disabled = true;
  msg.className = "alert info";
  clear(msg);
  const back = `${location.origin}/embed/referrals?token=${encodeURIComponent(token)}`;
  try {
    const link = await api<{ url: string }>("/api/v1/portal/onboard", token, "POST", {
      return_url: `${back}&onboarding=done`,
      refresh_url: `${back}&onboarding=refresh`,
      ...(country ? { country } : {}),
    });
    if (pendingWindow) {
      pendingWindow.location.href = link.url;
      clear(msg, "Stripe opened in a new tab. Come back here when you have finished.");
    } else {
      clear(msg, "Your browser blocked the new tab. ", h("a", { href: link.url, target: "_blank", rel: "noopener noreferrer" }, "Continue to Stripe"), ".");
    }
  } catch (e) {
    pendingWindow?.close();
    if (e instanceof ApiError && e.field === "country" && countryError) {
      countryError(e.message);
    } else {
      msg.className = "alert error";
      clear(msg, e instanceof Error ? e.message : "Could not start the onboarding.");
    }
  } finally {
    pendingWindow = null;
    btn.disabled = false;
  }
}

const DISABLED_REASONS: Record<string, string> = {
  stripe_requirements: "Stripe needs more information",
  deauthorized: "Your Stripe account was disconnected",
};

/** Why payouts are disabled, in words (Stripe's refusal codes as they are). */
function disabledReason(code: string): HTMLElement {
  const words = DISABLED_REASONS[code];
  return h(
    "p",
    { class: "alert error", id: "payouts-disabled-reason" },
    h("strong", null, "Payouts are paused: "),
    words ? `${words}.` : h("code", null, code),
  );
}

/** The country select asked before the first onboarding: Stripe creates the payout account in
 * that country (cross-border partners need it), so it is required and cannot change later. */
function countryForm(btn: HTMLButtonElement, msg: HTMLElement): HTMLFormElement {
  const id = "payout-country";
  const hint = `${id}-hint`;
  const errId = `${id}-err`;
  const initial = pickedCountry ?? browserCountry();
  const select = h(
    "select",
    { id, name: "country", required: true, autocomplete: "country", "aria-describedby": `${hint} ${errId}` },
    h("option", { value: "" }, "Choose your country"),
    countries().map(([code, name]) => h("option", { value: code }, name)),
  );
  select.value = initial;
  const err = h("p", { class: "err", id: errId });
  const setError = (m: string) => {
    err.textContent = m;
    select.setAttribute("aria-invalid", "true");
    select.focus();
  };
  select.addEventListener("change", () => {
    pickedCountry = select.value;
    if (select.value) {
      err.textContent = "";
      select.removeAttribute("aria-invalid");
    }
  });
  const form = h(
    "form",
    { id: "connect-form", novalidate: true },
    h(
      "div",
      { class: "field" },
      h("label", { for: id }, "Your country"),
      select,
      h("p", { class: "hint", id: hint }, "Where you or your business are based. Stripe sets up your payout account for this country; it cannot be changed later."),
      err,
    ),
    btn,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!select.value) return setError("Choose your country to connect payouts.");
    void connectPayouts(btn, msg, select.value, setError);
  });
  return form;
}

function renderPayoutStatus(): void {
  const me = state.me!;
  const p = me.partner;
  const msg = h("div", { class: "alert info", role: "status" });
  const country = p.country
    ? h("p", { id: "partner-country" }, "Country: ", h("strong", null, countryName(p.country)))
    : null;
  let body: HTMLElement;
  if (p.payouts_enabled) {
    body = h(
      "p",
      { class: "payouts-enabled" },
      h("span", { class: "badge enabled" }, "Payouts enabled"),
      " Your Stripe account is connected; approved commissions are paid to it.",
    );
    if (country) body = h("div", null, body, country);
  } else {
    // A partner without an account and without a country picks one first; an existing account
    // already has its country.
    const ask = !p.stripe_connected && !p.country;
    const btn = h("button", { type: ask ? "submit" : "button", id: "connect-payouts" }, p.stripe_connected ? "Continue Stripe onboarding" : "Connect payouts");
    if (!ask) btn.addEventListener("click", () => void connectPayouts(btn, msg));
    body = h(
      "div",
      null,
      p.payouts_disabled_reason ? disabledReason(p.payouts_disabled_reason) : null,
      h(
        "p",
        null,
        p.stripe_connected
          ? p.payouts_disabled_reason
            ? "Continue the onboarding to update your details with Stripe. Payouts start again once Stripe confirms your account."
            : "Stripe is checking your details, or the onboarding is not finished yet. Payouts start once Stripe confirms your account."
          : "Connect a Stripe account to receive your earnings.",
      ),
      country,
      ask ? countryForm(btn, msg) : btn,
    );
  }
  const notice =
    onboarding === "done" && !p.payouts_enabled
      ? h("div", { class: "alert success", role: "status" }, "Thanks! Your details were sent to Stripe. Payouts are enabled as soon as Stripe confirms your account.")
      : onboarding === "refresh" && !p.payouts_enabled
        ? h("div", { class: "alert info", role: "status" }, "That onboarding link expired. Use the button below to continue.")
        : null;
  clear(
    holders.payoutStatus,
    notice,
    body,
    h("p", { class: "muted min-payout" }, `Payouts are sent once your approved balance reaches ${money(me.program.min_payout)}.`),
    msg,
  );
}

function renderPayouts(): void {
  const rows = state.payouts.map((p) =>
    h(
      "tr",
      { "data-id": p.id, "data-status": p.status },
      h("td", null, formatDate(p.created_at)),
      h("td", { class: "num" }, formatMoney(p.amount, p.currency)),
      h("td", null, statusBadge(p.status), p.failure_message ? h("span", { class: "reason muted" }, ` ${p.failure_message}`) : null),
      h("td", { class: "num" }, String(p.commission_count)),
      h("td", null, formatDate(p.paid_at)),
    ),
  );
  clear(
    holders.payouts,
    table("Your payouts, newest first", ["Date", "Amount", "Status", "Commissions", "Paid on"], [1, 3], rows, "No payouts yet."),
    state.payoutsNext
      ? moreButton("Show more payouts", async () => {
          const next = await get<List<Payout>>(`/api/v1/portal/payouts?limit=20&cursor=${encodeURIComponent(state.payoutsNext!)}`);
          state.payouts.push(...next.data);
          state.payoutsNext = next.next_cursor;
          renderPayouts();
        })
      : null,
  );
}

// ---- page ----------------------------------------------------------------------------------

function render(): void {
  const me = state.me!;
  applyBrand(document.documentElement, me.program.brand_color);
  document.title = `${me.program.name} — referral portal`;
  renderCommissions();
  renderPayoutStatus();
  renderPayouts();
  clear(
    app,
    header(me),
    h(
      "div",
      { class: "grid" },
      linksSection(me),
      termsSection(me),
      performanceSection(),
      section("commissions", "Commissions", holders.commissions),
      section("payouts", "Payouts", holders.payoutStatus, holders.payouts),
    ),
  );
  app.setAttribute("aria-busy", "false");
}

/** Re-reads the partner (payout state, totals) when the page comes back into view, e.g. after
 * Stripe's onboarding tab. */
async function refreshMe(): Promise<boolean> {
  try {
    state.me = await get<PortalMe>("/api/v1/portal/me");
    state.loadedAt = Date.now();
    renderTotals();
    renderPayoutStatus();
    return state.me.partner.payouts_enabled;
  } catch {
    return false;
  }
}

function reportHeight(): void {
  if (window.parent === window) return;
  const post = () => window.parent.postMessage({ type: "refport:height", height: document.documentElement.scrollHeight }, "*");
  new ResizeObserver(post).observe(document.body);
}

async function main(): Promise<void> {
  if (!token) return fatal(new ApiError(401, "unauthorized", "missing token"));
  try {
    await load();
  } catch (e) {
    return fatal(e);
  }
  render();
  reportHeight();
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && Date.now() - state.loadedAt > 2000) void refreshMe();
  });
  // Back from Stripe: the webhook that enables payouts may land a little later.
  if (onboarding === "done" && !state.me!.partner.payouts_enabled) {
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => window.setTimeout(r, 3000));
      if (await refreshMe()) {
        announce(live, "Payouts are now enabled.");
        break;
      }
    }
  }
}

void main();
