// Performance over a chosen range (issue 17): clicks, leads, sales, revenue and commissions per
// day as a chart (with its table), the range's totals, and the top partners and links. Every
// number comes from `GET /api/v1/programs/{id}/stats` (the daily rollups: three requests whatever
// the program's number of clicks); a partner's page shows the same for one partner.
import { ApiError } from "../shared/api";
import { barChart } from "../shared/chart";
import { clear, h } from "../shared/dom";
import { formatDay } from "../shared/format";
import { formatMoney } from "../shared/money";
import type { Link, Partner, Program } from "../shared/types";
import type { Ctx } from "./ctx";
import { table } from "./ui";

interface Earnings {
  pending: number;
  approved: number;
  paid: number;
  rejected: number;
  total: number;
}
interface Amounts {
  currency: string;
  sale_amount: number;
  earnings: Earnings;
}
interface Row {
  clicks: number;
  leads: number;
  sales: number;
  amounts: Amounts[];
  date?: string;
  partner_id?: string | null;
  link_id?: string | null;
}
interface Stats {
  from: string;
  to: string;
  totals: Row;
  data: Row[];
  has_more: boolean;
}

type Metric = "clicks" | "leads" | "sales" | "revenue" | "commissions";
const METRICS: [Metric, string][] = [
  ["clicks", "Clicks"],
  ["leads", "Leads"],
  ["sales", "Sales"],
  ["revenue", "Revenue"],
  ["commissions", "Commissions"],
];
const RANGES = [7, 30, 90];
const DAY = 86_400_000;
const TOP = 10;

const ymd = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** The range in the page's address (`?days=7` or `?from=…&to=…`), 30 days by default. */
export interface Range {
  from: string;
  to: string;
  days: number | null;
}

export function parseRange(search: URLSearchParams, now = Date.now()): Range {
  const from = search.get("from");
  const to = search.get("to");
  const iso = /^\d{4}-\d{2}-\d{2}$/;
  if (from && to && iso.test(from) && iso.test(to)) return { from, to, days: null };
  const days = RANGES.includes(Number(search.get("days"))) ? Number(search.get("days")) : 30;
  return { from: ymd(now - (days - 1) * DAY), to: ymd(now), days };
}

function inCurrency(r: Row, currency: string): Amounts {
  return r.amounts.find((a) => a.currency === currency) ?? { currency, sale_amount: 0, earnings: { pending: 0, approved: 0, paid: 0, rejected: 0, total: 0 } };
}

function value(r: Row, m: Metric, currency: string): number {
  if (m === "revenue") return inCurrency(r, currency).sale_amount;
  if (m === "commissions") return inCurrency(r, currency).earnings.total;
  return r[m];
}

/** Renders the analytics section for `program` (or one partner of it) into `host`. `hash` is
 * the page's address without its query: the range links keep the merchant on the same page. */
export async function analytics(ctx: Ctx, program: Program, host: HTMLElement, hash: string, search: URLSearchParams, partner?: Partner): Promise<void> {
  const range = parseRange(search);
  const currency = program.payout_currency;
  const base = `/api/v1/programs/${encodeURIComponent(program.id)}/stats?from=${range.from}&to=${range.to}${partner ? `&partner_id=${encodeURIComponent(partner.id)}` : ""}`;
  const section = h("section", { class: "card analytics", "aria-labelledby": "analytics-title", id: "analytics", "aria-busy": "true" });
  clear(host, section);
  const period = range.days ? `over the last ${range.days} days` : `from ${formatDay(range.from)} to ${formatDay(range.to)}`;
  const head = h("div", { class: "analytics-head" }, h("h2", { id: "analytics-title" }, partner ? `Performance of ${partner.name}` : "Performance"), rangePicker(range, hash));
  let days: Stats, byPartner: Stats | null, byLink: Stats;
  try {
    [days, byPartner, byLink] = await Promise.all([
      ctx.call<Stats>(`${base}&group_by=day`),
      partner ? Promise.resolve(null) : ctx.call<Stats>(`${base}&group_by=partner&limit=${TOP}`),
      ctx.call<Stats>(`${base}&group_by=link&limit=${TOP}`),
    ]);
  } catch (e) {
    // A bad custom range is the merchant's to fix here, not a broken page.
    if (!(e instanceof ApiError) || e.status !== 400) throw e;
    clear(section, head, h("div", { class: "alert error", role: "alert" }, e.message));
    section.setAttribute("aria-busy", "false");
    return;
  }
  const totals = days.totals;
  const main = inCurrency(totals, currency);
  const others = totals.amounts.filter((a) => a.currency !== currency && (a.sale_amount || a.earnings.total));
  const money = (n: number) => formatMoney(n, currency);
  const rate = totals.clicks ? `${((totals.sales / totals.clicks) * 100).toFixed(1)} % of clicks` : "no clicks";
  const kpi = (id: string, label: string, v: string, sub?: string) => h("div", { class: "kpi", id: `kpi-${id}` }, h("span", { class: "kpi-label" }, label), h("span", { class: "kpi-value" }, v), sub ? h("span", { class: "kpi-sub" }, sub) : null);
  const chartHost = h("div", { id: "analytics-chart" });
  let metric: Metric = "clicks";
  const draw = () => {
    const label = METRICS.find((m) => m[0] === metric)![1];
    const isMoney = metric === "revenue" || metric === "commissions";
    const fmt = isMoney ? money : (n: number) => n.toLocaleString();
    const points = days.data.map((d) => ({ date: d.date!, value: value(d, metric, currency) }));
    clear(chartHost, barChart(points, isMoney ? `${label} (${currency.toUpperCase()})` : label, fmt, !isMoney, chartHost.clientWidth || 720, period));
  };
  const tabs = h(
    "div",
    { class: "metric-tabs", role: "group", "aria-label": "Chart" },
    METRICS.map(([m, label]) => {
      const b = h("button", { type: "button", class: "secondary", "aria-pressed": m === metric ? "true" : "false", "data-metric": m }, label);
      b.addEventListener("click", () => {
        metric = m;
        for (const x of tabs.querySelectorAll("button")) x.setAttribute("aria-pressed", x === b ? "true" : "false");
        draw();
      });
      return b;
    }),
  );
  const names = await topNames(ctx, byPartner, byLink);
  clear(
    section,
    head,
    h(
      "div",
      { class: "kpis" },
      kpi("clicks", "Clicks", totals.clicks.toLocaleString()),
      kpi("leads", "Leads", totals.leads.toLocaleString()),
      kpi("sales", "Sales", totals.sales.toLocaleString(), rate),
      kpi("revenue", "Revenue", money(main.sale_amount), others.length ? `+ ${others.map((a) => formatMoney(a.sale_amount, a.currency)).join(", ")}` : undefined),
      kpi("commissions", "Commissions", money(main.earnings.total), `${money(main.earnings.paid)} paid`),
    ),
    tabs,
    chartHost,
    h(
      "div",
      { class: "analytics-tops" },
      byPartner ? top("Top partners", "top-partners", byPartner, (r) => (r.partner_id ? h("a", { href: `#/programs/${program.id}/partners/${r.partner_id}` }, names.get(r.partner_id) ?? r.partner_id) : "No partner"), currency) : null,
      top("Top links", "top-links", byLink, (r) => (r.link_id ? names.get(r.link_id) ?? r.link_id : h("span", { class: "muted" }, "Without a link (API and coupon conversions)")), currency),
    ),
  );
  section.setAttribute("aria-busy", "false");
  draw();
}

/** The names of the top partners and the short links of the top links (ids when unreadable). */
async function topNames(ctx: Ctx, byPartner: Stats | null, byLink: Stats): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  const partners = (byPartner?.data ?? []).map((r) => r.partner_id).filter((x): x is string => !!x);
  const links = byLink.data.map((r) => r.link_id).filter((x): x is string => !!x);
  await Promise.all([
    ...partners.map((id) => ctx.call<Partner>(`/api/v1/partners/${encodeURIComponent(id)}`).then((p) => void names.set(id, p.name), () => {})),
    ...links.map((id) => ctx.call<Link>(`/api/v1/links/${encodeURIComponent(id)}`).then((l) => void names.set(id, `${l.domain}/${l.key}`), () => {})),
  ]);
  return names;
}

function top(title: string, id: string, st: Stats, name: (r: Row) => Node | string, currency: string): HTMLElement {
  const money = (n: number) => formatMoney(n, currency);
  return h(
    "div",
    { class: "top", id },
    h("h3", null, title),
    st.data.length
      ? table(
          title,
          [
            { title: title.replace("Top ", "").replace(/^./, (c) => c.toUpperCase()), cell: name },
            { title: "Clicks", num: true, cell: (r) => r.clicks.toLocaleString() },
            { title: "Sales", num: true, cell: (r) => r.sales.toLocaleString() },
            { title: "Revenue", num: true, cell: (r) => money(inCurrency(r, currency).sale_amount) },
            { title: "Commissions", num: true, cell: (r) => money(inCurrency(r, currency).earnings.total) },
          ],
          st.data,
        )
      : h("p", { class: "empty" }, "No activity in this period."),
  );
}

/** 7 / 30 / 90 days as links (the range lives in the address: back, reload and share keep it),
 * and a custom range form. */
function rangePicker(r: Range, hash: string): HTMLElement {
  const from = h("input", { type: "date", value: r.from, "aria-label": "From (UTC day)", required: true });
  const to = h("input", { type: "date", value: r.to, "aria-label": "To (UTC day)", required: true });
  const form = h("form", { class: "range-custom", "aria-label": "Custom range" }, from, h("span", { "aria-hidden": "true" }, "–"), to, h("button", { type: "submit", class: "secondary" }, "Apply"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (from.value && to.value) location.hash = `${hash}?from=${from.value}&to=${to.value}`;
  });
  return h(
    "div",
    { class: "range" },
    h(
      "nav",
      { class: "range-presets", "aria-label": "Range" },
      RANGES.map((d) => h("a", { href: `${hash}?days=${d}`, class: "chip", "aria-current": r.days === d ? "true" : null }, `${d} days`)),
    ),
    form,
  );
}
