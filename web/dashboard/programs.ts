// Programs: list, New Program / Settings form (every setting of SPEC 1), overview with the
// program ID and the embed snippet.
import { ApiError, type List } from "../shared/api";
import { clear, h, type Child } from "../shared/dom";
import { formatDate } from "../shared/format";
import { decimals, formatMoney, parseMajor, toMajor } from "../shared/money";
import type { FraudAction, FraudRule, Program, Schedule } from "../shared/types";
import type { Ctx } from "./ctx";
import { ruleName, RULES } from "./fraud";
import { moneyHint, rewardsEditor, rewardsText as rewardsTextOf } from "./rewards";
import { copyRow, field, FormErrors, group, loadMore, table } from "./ui";

const WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const DEFAULT_ACTIONS: Record<FraudRule, FraudAction> = {
  self_referral: "reject",
  email_domain_match: "hold",
  disposable_email: "hold",
  paid_traffic: "hold",
  click_spam: "hold",
  duplicate_payout_account: "hold",
  banned_referrer: "off",
};
const ACTION_TEXT: Record<FraudAction, string> = { hold: "Hold for review", reject: "Reject", off: "Off" };
const CURRENCIES = ["usd", "eur", "gbp", "cad", "aud", "chf", "sek", "nok", "dkk", "pln", "jpy", "inr", "brl", "mxn", "sgd", "nzd", "kwd", "bhd"];

// ---- wording -------------------------------------------------------------------------------

export function scheduleText(s: Schedule): string {
  if (s.every === "day") return "daily";
  if (s.every === "week") return `weekly on ${WEEKDAYS[s.weekday - 1] ?? `weekday ${s.weekday}`}`;
  return `monthly on day ${s.day}`;
}

export function rewardsText(p: Program): string {
  return rewardsTextOf(p.rewards, p.payout_currency);
}

// ---- list ----------------------------------------------------------------------------------

export async function programsList(ctx: Ctx): Promise<void> {
  const page = await ctx.call<List<Program>>("/api/v1/programs?limit=50");
  const rows = [...page.data];
  const body = h("div");
  const draw = (next: string | null) =>
    clear(
      body,
      rows.length
        ? table<Program>(
            "Programs",
            [
              { title: "Name", cell: (p) => h("a", { href: `#/programs/${p.id}` }, p.name) },
              { title: "Program ID", cell: (p) => h("code", null, p.id) },
              { title: "Branded domains", cell: (p) => p.domains.join(", ") },
              { title: "Rewards", cell: (p) => rewardsText(p) },
              { title: "Currency", cell: (p) => p.payout_currency.toUpperCase() },
              { title: "Created", cell: (p) => formatDate(p.created_at) },
            ],
            rows,
            (p) => ({ "data-id": p.id }),
          )
        : h("p", { class: "empty" }, "No programs yet. Create your first one."),
      next
        ? loadMore("Show more programs", async () => {
            const more = await ctx.call<List<Program>>(`/api/v1/programs?limit=50&cursor=${encodeURIComponent(next)}`);
            rows.push(...more.data);
            draw(more.next_cursor);
          })
        : null,
    );
  draw(page.next_cursor);
  clear(
    ctx.main,
    h("div", { class: "page-head" }, h("h1", { tabindex: -1 }, "Programs"), h("a", { class: "button", href: "#/programs/new" }, "New program")),
    body,
  );
}

// ---- form ----------------------------------------------------------------------------------

const HOST = /^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$/i;

function lines(text: string): string[] {
  return text
    .split(/[\n,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

function input(attrs: Record<string, string | number | boolean> = {}): HTMLInputElement {
  return h("input", { type: "text", autocomplete: "off", spellcheck: "false", ...attrs });
}

function select(options: [string, string][], value: string): HTMLSelectElement {
  return h(
    "select",
    null,
    options.map(([v, t]) => h("option", { value: v, selected: v === value }, t)),
  );
}

/** New Program (no `existing`) or Settings (PATCH) form. */
export function programForm(ctx: Ctx, existing?: Program): HTMLElement {
  const p = existing;
  const cur0 = p?.payout_currency ?? "usd";
  const f = {
    name: input({ maxlength: 100, required: true, value: p?.name ?? "" }),
    description: h("textarea", { maxlength: 1000, rows: 3 }),
    logo_url: input({ type: "url", placeholder: "https://acme.com/logo.png", value: p?.logo_url ?? "" }),
    brand_color: input({ value: p?.brand_color ?? "#4f46e5", maxlength: 7, placeholder: "#4f46e5" }),
    domains: h("textarea", { rows: 2, spellcheck: "false", placeholder: "go.acme.com" }),
    allowed_hosts: h("textarea", { rows: 3, spellcheck: "false", placeholder: "acme.com\nwww.acme.com" }),
    cookie_domain: input({ value: p?.cookie_domain ?? "", placeholder: "acme.com" }),
    payout_currency: input({ value: cur0.toUpperCase(), maxlength: 3, list: "currencies", class: "short", autocapitalize: "characters" }),
    min_payout: input({ inputmode: "decimal", value: toMajor(p?.min_payout ?? 5000, cur0), class: "short" }),
    every: select([["day", "Daily"], ["week", "Weekly"], ["month", "Monthly"]], p?.payout_schedule.every ?? "month"),
    weekday: select(WEEKDAYS.map((d, i) => [String(i + 1), d]), String(p?.payout_schedule.every === "week" ? p.payout_schedule.weekday : 1)),
    day: input({ inputmode: "numeric", value: String(p?.payout_schedule.every === "month" ? p.payout_schedule.day : 1), class: "short" }),
    payout_mode: select([["automatic", "Send automatically"], ["review", "Review each run before sending"]], p?.payout_mode ?? "automatic"),
    attribution_window_days: input({ inputmode: "numeric", value: String(p?.attribution_window_days ?? 90), class: "short" }),
    attribution_model: select([["last_click", "Last click wins"], ["first_click", "First click wins"]], p?.attribution_model ?? "last_click"),
    hold_days: input({ inputmode: "numeric", value: String(p?.hold_days ?? 30), class: "short" }),
    click_spam_threshold: input({ inputmode: "numeric", value: String(p?.click_spam_threshold ?? 20), class: "short" }),
    banned_referrers: h("textarea", { rows: 3, spellcheck: "false", placeholder: "coupons.example.com\ndeals.example.net" }),
  };
  f.banned_referrers.value = (p?.banned_referrers ?? []).join("\n");
  // One select per rule; duplicate_payout_account judges payouts, which cannot be created rejected.
  const rules = RULES.map(([code, name, desc]) => {
    const acts: FraudAction[] = code === "duplicate_payout_account" ? ["hold", "off"] : ["hold", "reject", "off"];
    const sel = select(acts.map((a) => [a, ACTION_TEXT[a]]), p?.fraud_rules?.[code] ?? DEFAULT_ACTIONS[code]);
    sel.classList.add("short");
    return [code, sel, field(`fraud_rules.${code}`, name, sel, desc)] as const;
  });
  for (const [, , el] of rules) el.classList.add("rule");
  f.description.value = p?.description ?? "";
  f.domains.value = (p?.domains ?? []).join("\n");
  f.allowed_hosts.value = (p?.allowed_hosts ?? []).join("\n");

  const swatch = h("span", { class: "swatch", "aria-hidden": "true" });
  const weekdayField = field("payout_schedule.weekday", "Weekday", f.weekday);
  const dayField = field("payout_schedule.day", "Day of the month (1–28)", f.day);
  const cur = () => f.payout_currency.value.trim().toLowerCase() || "usd";
  const rewardsEd = rewardsEditor({ value: p?.rewards, currency: cur, mode: "program", isNew: !existing });
  const sync = () => {
    const c = cur();
    const hintOf = (el: HTMLElement) => form.querySelector<HTMLElement>(`[id="${el.id}-hint"]`);
    const hint = hintOf(f.min_payout);
    if (hint) hint.textContent = moneyHint(c);
    swatch.style.background = /^#[0-9a-f]{6}$/i.test(f.brand_color.value.trim()) ? f.brand_color.value.trim() : "transparent";
    weekdayField.hidden = f.every.value !== "week";
    dayField.hidden = f.every.value !== "month";
    rewardsEd.sync();
  };

  const summary = h("div", { class: "alert", role: "alert", tabindex: -1 });
  const submit = h("button", { type: "submit" }, existing ? "Save settings" : "Create program");
  const form = h(
    "form",
    { novalidate: true, class: "program-form", "aria-label": existing ? "Program settings" : "New program" },
    summary,
    h(
      "div",
      { class: "form-grid" },
      group(
        "branding",
        "Branding (shown in the partner portal)",
        field("name", "Program name", f.name),
        field("description", "Description", f.description, "Optional, up to 1000 characters."),
        field("logo_url", "Logo URL", f.logo_url, "Optional; an https:// image."),
        h("div", { class: "with-swatch" }, field("brand_color", "Brand colour", f.brand_color, "Hex, like #4f46e5."), swatch),
      ),
      group(
        "domains_group",
        "Links",
        field("domains", "Branded domains", f.domains, "One per line, e.g. go.acme.com. Referral links live on these domains."),
        field("allowed_hosts", "Allowed hosts", f.allowed_hosts, "One per line. Link destinations must be on these hosts, and only these sites may embed the partner portal."),
        field("cookie_domain", "Cookie domain", f.cookie_domain, "Optional: a parent of every branded domain (e.g. acme.com) so your site can read the refport_id cookie."),
      ),
      group(
        "payouts_group",
        "Payouts",
        field("payout_currency", "Payout currency", f.payout_currency, "ISO 4217 code, e.g. USD, EUR, JPY."),
        field("min_payout", "Minimum payout", f.min_payout, moneyHint(cur0)),
        group("payout_schedule", "Payout schedule", field("payout_schedule.every", "Pay", f.every), weekdayField, dayField),
        field("payout_mode", "Payout mode", f.payout_mode, "Review: on a due day the run waits on the Payouts tab until you approve it; nothing is sent before."),
      ),
      group(
        "attribution_group",
        "Attribution",
        field("attribution_window_days", "Attribution window (days)", f.attribution_window_days, "1 to 365: how long after a click a sign-up is credited."),
        field("attribution_model", "Attribution model", f.attribution_model),
        field("hold_days", "Hold period (days)", f.hold_days, "0 to 365: commissions stay pending this long before approval."),
      ),
      group(
        "rewards",
        "Commission rules",
        rewardsEd.el,
      ),
      group(
        "fraud_group",
        "Fraud rules",
        h(
          "p",
          { class: "hint" },
          "What happens to a commission when a rule matches. ",
          h("strong", null, "Hold for review"),
          ": it stays pending under Needs review until you approve or reject it. ",
          h("strong", null, "Reject"),
          ": it is created rejected, with the rule as its reason. ",
          h("strong", null, "Off"),
          ": the rule is not checked.",
        ),
        h("div", { class: "rules" }, rules.map((r) => r[2])),
        h(
          "div",
          { class: "rules" },
          field("click_spam_threshold", "Click spam threshold", f.click_spam_threshold, "1 to 10000: more visits than this by one visitor to the partner's links within 24 hours is click spam."),
          field("banned_referrers", "Banned referrers", f.banned_referrers, "Hostnames, one per line or comma-separated (up to 100), e.g. coupons.example.com. Checked by the Banned referrer rule."),
        ),
      ),
    ),
    h("div", { class: "actions" }, submit, existing ? null : h("a", { href: "#/programs", class: "button secondary" }, "Cancel")),
    h("datalist", { id: "currencies" }, CURRENCIES.map((c) => h("option", { value: c.toUpperCase() }))),
  );
  form.addEventListener("input", sync);
  form.addEventListener("change", sync);
  const errors = new FormErrors(form, summary);

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const problems: [string, string][] = [];
    const c = cur();
    const num = (el: HTMLInputElement, name: string, lo: number, hi: number, label: string): number => {
      const v = el.value.trim();
      if (!/^\d+$/.test(v) || Number(v) < lo || Number(v) > hi) problems.push([name, `${label} must be a whole number from ${lo} to ${hi}.`]);
      return Number(v);
    };
    const money = (el: HTMLInputElement, name: string, label: string): number => {
      const v = parseMajor(el.value, c);
      if (v === null) problems.push([name, `${label} must be an amount like ${decimals(c) ? `12.${"5".padEnd(decimals(c), "0")}` : "1200"} (at most ${decimals(c)} decimals).`]);
      return v ?? 0;
    };

    const name = f.name.value.trim();
    if (!name) problems.push(["name", "Enter a program name."]);
    const logo = f.logo_url.value.trim();
    if (logo && !/^https:\/\/[^\s/]+\.[^\s]+$/i.test(logo)) problems.push(["logo_url", "The logo URL must start with https://."]);
    const color = f.brand_color.value.trim();
    if (!/^#[0-9a-f]{6}$/i.test(color)) problems.push(["brand_color", "Use a hex colour like #4f46e5."]);
    const domains = lines(f.domains.value);
    if (!domains.length) problems.push(["domains", "Add at least one branded domain."]);
    domains.forEach((d, i) => HOST.test(d) || problems.push([`domains[${i}]`, `“${d}” is not a hostname like go.acme.com.`]));
    const hosts = lines(f.allowed_hosts.value);
    if (!hosts.length) problems.push(["allowed_hosts", "Add at least one allowed host."]);
    hosts.forEach((d, i) => HOST.test(d) || problems.push([`allowed_hosts[${i}]`, `“${d}” is not a hostname like acme.com.`]));
    const cookie = f.cookie_domain.value.trim();
    if (cookie && !HOST.test(cookie)) problems.push(["cookie_domain", "Enter a hostname like acme.com, or leave it empty."]);
    if (!/^[a-z]{3}$/i.test(c)) problems.push(["payout_currency", "Use a three-letter currency code like USD."]);
    const min_payout = money(f.min_payout, "min_payout", "Minimum payout");
    let payout_schedule: Schedule = { every: "day" };
    if (f.every.value === "week") payout_schedule = { every: "week", weekday: Number(f.weekday.value) };
    if (f.every.value === "month") payout_schedule = { every: "month", day: num(f.day, "payout_schedule.day", 1, 28, "Day of the month") };
    const attribution_window_days = num(f.attribution_window_days, "attribution_window_days", 1, 365, "Attribution window");
    const hold_days = num(f.hold_days, "hold_days", 0, 365, "Hold period");
    const rewards = rewardsEd.read(problems) ?? {};
    const click_spam_threshold = num(f.click_spam_threshold, "click_spam_threshold", 1, 10000, "Click spam threshold");
    const banned_referrers = lines(f.banned_referrers.value).map((d) => d.toLowerCase());
    if (banned_referrers.length > 100) problems.push(["banned_referrers", "At most 100 banned referrers."]);
    banned_referrers.forEach((d, i) => HOST.test(d) || problems.push([`banned_referrers[${i}]`, `“${d}” is not a hostname like coupons.example.com.`]));
    const fraud_rules = Object.fromEntries(rules.map(([code, sel]) => [code, sel.value]));
    if (problems.length) return errors.show(problems);

    const body: Record<string, unknown> = {
      name,
      description: f.description.value.trim(),
      logo_url: logo || (existing ? null : undefined),
      brand_color: color.toLowerCase(),
      domains,
      allowed_hosts: hosts,
      cookie_domain: cookie || (existing ? null : undefined),
      payout_currency: c,
      min_payout,
      payout_schedule,
      payout_mode: f.payout_mode.value,
      attribution_window_days,
      attribution_model: f.attribution_model.value,
      hold_days,
      rewards,
      fraud_rules,
      click_spam_threshold,
      banned_referrers,
    };
    submit.disabled = true;
    errors.clear();
    try {
      const saved = existing
        ? await ctx.call<Program>(`/api/v1/programs/${existing.id}`, "PATCH", body)
        : await ctx.call<Program>("/api/v1/programs", "POST", body);
      ctx.go(`#/programs/${saved.id}`, existing ? "Settings saved." : `Program “${saved.name}” created.`);
    } catch (err) {
      // A refused rule: its name, not its code, in the message ("paid_traffic must be..." -> "Paid ad click must be...").
      const code = err instanceof ApiError && err.field?.startsWith("fraud_rules.") ? err.field.slice(12) : "";
      errors.showApi(code && err instanceof ApiError ? new ApiError(err.status, err.code, err.message.replace(new RegExp(`(?<![.\\w])${code}\\b`), ruleName(code)), err.field) : err);
    } finally {
      submit.disabled = false;
    }
  });
  sync();
  return form;
}

export function newProgram(ctx: Ctx): void {
  clear(ctx.main, h("h1", { tabindex: -1 }, "New program"), h("p", { class: "muted" }, "Every setting can be changed later under Settings."), programForm(ctx));
}

// ---- overview ------------------------------------------------------------------------------

function dl(items: [string, Child][]): HTMLElement {
  return h("dl", { class: "facts" }, items.map(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
}

function fraudText(p: Program): string {
  const by = (a: FraudAction) => RULES.filter(([c]) => p.fraud_rules?.[c] === a).map(([c]) => ruleName(c));
  const hold = by("hold");
  const reject = by("reject");
  const parts = [hold.length ? `held for review: ${hold.join(", ")}` : "", reject.length ? `rejected: ${reject.join(", ")}` : ""].filter(Boolean);
  return parts.length ? parts.join("; ").replace(/^./, (c) => c.toUpperCase()) : "All off";
}

export function programOverview(p: Program): HTMLElement {
  const origin = location.origin;
  const tokenCall = `curl -X POST ${origin}/api/v1/embed-tokens \\
  -H "Authorization: Bearer $REFPORT_SECRET_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{"program_id":"${p.id}","partner_id":"PARTNER_ID"}'`;
  const iframe = `<iframe src="${origin}/embed/referrals?token=TOKEN"
  title="${p.name.replace(/"/g, "&quot;")} referral portal"
  style="width:100%;height:1100px;border:0"
  allow="clipboard-write"></iframe>`;
  return h(
    "div",
    { class: "stack" },
    h(
      "section",
      { class: "card", "aria-labelledby": "embed-title" },
      h("h2", { id: "embed-title" }, "Embed the partner portal"),
      copyRow("Program ID", p.id, { id: "program-id" }),
      h(
        "ol",
        { class: "steps" },
        h(
          "li",
          null,
          h("p", null, "On your server, mint a token for the signed-in partner (valid up to 2 hours). To enrol a new partner in the same call, send ", h("code", null, '"partner":{"email","name"}'), " instead of ", h("code", null, "partner_id"), "."),
          copyRow("Token request", tokenCall, { multiline: true, id: "token-snippet" }),
        ),
        h(
          "li",
          null,
          h("p", null, "Put the token into this iframe on a page of your site. Only your allowed hosts may embed it: ", h("strong", null, p.allowed_hosts.join(", ")), "."),
          copyRow("Iframe snippet", iframe, { multiline: true, id: "iframe-snippet" }),
          h(
            "p",
            { class: "muted" },
            "The portal needs no cookies. To fit the iframe to its content, listen for ",
            h("code", null, '{type: "refport:height", height}'),
            " messages from it and set the iframe's height.",
          ),
        ),
      ),
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "summary-title" },
      h("h2", { id: "summary-title" }, "Settings"),
      dl([
        ["Branded domains", p.domains.join(", ")],
        ["Allowed hosts", p.allowed_hosts.join(", ")],
        ["Cookie domain", p.cookie_domain ?? "—"],
        ["Rewards", rewardsText(p)],
        ["Payouts", `${formatMoney(p.min_payout, p.payout_currency)} minimum, ${scheduleText(p.payout_schedule)}`],
        ["Attribution", `${p.attribution_window_days} days, ${p.attribution_model === "first_click" ? "first" : "last"} click wins`],
        ["Hold period", `${p.hold_days} days`],
        ["Fraud rules", fraudText(p)],
        ["Brand colour", h("span", null, h("span", { class: "swatch inline", style: `background:${p.brand_color}`, "aria-hidden": "true" }), ` ${p.brand_color}`)],
      ]),
    ),
  );
}
