// One partner's page (issue 16): its terms (group, own minimum payout, own rewards) and its
// commissions, with "Add commission" for a manual bonus. Other panels about one partner (coupon
// codes...) can be appended to the page's stack.
import { ApiError, type List } from "../shared/api";
import { announce, clear, h, nextId } from "../shared/dom";
import { formatDate } from "../shared/format";
import { decimals, formatMoney, parseMajor, toMajor } from "../shared/money";
import type { Commission, Group, Partner, Program } from "../shared/types";
import { analytics } from "./analytics";
import { kindCell, statusCell } from "./commissions";
import { couponsPanel } from "./coupons";
import type { Ctx } from "./ctx";
import { programGroups } from "./groups";
import { moneyHint, rewardsEditor, rewardText } from "./rewards";
import { field, FormErrors, group, live, loadMore, showModal, statusBadge, table } from "./ui";

export async function partnerPage(ctx: Ctx, program: Program, partnerId: string, host: HTMLElement, search: URLSearchParams): Promise<void> {
  const [partner, groups] = await Promise.all([ctx.call<Partner>(`/api/v1/partners/${encodeURIComponent(partnerId)}`), programGroups(ctx, program.id)]);
  if (partner.program_id !== program.id) throw new ApiError(404, "not_found", "No such partner in this program.");
  document.title = `${partner.name} · ${program.name} — Refport dashboard`;
  const commissions = h("section", { class: "card", "aria-labelledby": "partner-commissions-title", id: "partner-commissions" });
  const coupons = h("div", { id: "partner-coupons" });
  const perf = h("div", { id: "partner-analytics" });
  clear(
    host,
    h("p", { class: "crumbs" }, h("a", { href: `#/programs/${program.id}/partners` }, "Partners"), " / "),
    h(
      "div",
      { class: "stack", id: "partner-page" },
      h(
        "section",
        { class: "card", "aria-labelledby": "partner-title" },
        h("h2", { id: "partner-title" }, partner.name, " ", statusBadge(partner.status)),
        h("p", { class: "muted" }, partner.email, " · Partner ID ", h("code", null, partner.id), partner.created_at ? ` · joined ${formatDate(partner.created_at)}` : ""),
        termsForm(ctx, program, partner, groups),
      ),
      perf,
      commissions,
      coupons,
    ),
  );
  await Promise.all([
    analytics(ctx, program, perf, `#/programs/${program.id}/partners/${partner.id}`, search, partner),
    commissionsPanel(ctx, program, partner, commissions),
    couponsPanel(ctx, partner, coupons),
  ]);
}

// ---- terms: group, minimum payout, own rewards -------------------------------------------------

function termsForm(ctx: Ctx, program: Program, partner: Partner, groups: Group[]): HTMLElement {
  let p = partner;
  const cur = program.payout_currency;
  const money = (n: number) => formatMoney(n, cur);
  const groupSel = h("select", null, h("option", { value: "" }, "No group"), groups.map((g) => h("option", { value: g.id, selected: g.id === p.group_id }, g.name)));
  const minPayout = h("input", { type: "text", inputmode: "decimal", autocomplete: "off", class: "short", value: p.min_payout === null || p.min_payout === undefined ? "" : toMajor(p.min_payout, cur) });
  const ed = rewardsEditor({ value: p.rewards, currency: () => cur, mode: "override" });
  // "Same as Gold's" / "Same as the program's": whose reward applies when the partner has none.
  const inherits = () => {
    const g = groups.find((x) => x.id === groupSel.value);
    const from = (k: "lead" | "sale") => (g?.rewards?.[k] ? `${g.name}'s` : "the program's");
    ed.setInherits(from("lead"), from("sale"));
    // What the partner earns with the saved own rules and the selected group, in words.
    const line = (k: "lead" | "sale") => {
      const [r, whose] = p.rewards?.[k] ? [p.rewards[k], "own"] : g?.rewards?.[k] ? [g.rewards[k], `${g.name}'s`] : [program.rewards[k], "the program's"];
      return h("li", null, h("strong", null, k === "sale" ? "Sales: " : "Leads: "), r ? rewardText(r, cur, k) : "nothing", h("span", { class: "muted" }, ` (${whose})`));
    };
    clear(effective, h("p", { class: "hint" }, "Paid now (saved rules, the selected group):"), h("ul", { class: "effective-list" }, line("sale"), line("lead")));
  };
  const effective = h("div", { class: "effective", id: "partner-effective", "aria-live": "polite" });
  const minHint = () => {
    const g = groups.find((x) => x.id === groupSel.value);
    const from = g && g.min_payout !== null ? `${g.name}'s (${money(g.min_payout)})` : `the program's (${money(program.min_payout)})`;
    return `Empty: ${from}. ${moneyHint(cur)}`;
  };
  const summary = h("div", { class: "alert", role: "alert" });
  const save = h("button", { type: "submit" }, "Save terms");
  const form = h(
    "form",
    { novalidate: true, id: "partner-terms", "aria-label": `Terms of ${p.name}` },
    summary,
    h(
      "div",
      { class: "form-grid" },
      group(
        "terms",
        "Group and payouts",
        field("group_id", "Group", groupSel, "The group's terms apply where the partner has none of its own."),
        field("min_payout", "Own minimum payout", minPayout, minHint()),
      ),
      group("rewards", "Own commission rules", h("p", { class: "hint" }, "Per kind: the reward of the partner's group (else the program's), or the partner's own. Own terms win over the group's."), effective, ed.el),
    ),
    h("div", { class: "actions" }, save),
  );
  const errors = new FormErrors(form, summary);
  form.addEventListener("change", () => {
    ed.sync();
    inherits();
    const hint = document.getElementById(`${minPayout.id}-hint`);
    if (hint) hint.textContent = minHint();
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const problems: [string, string][] = [];
    let min_payout: number | null = null;
    if (minPayout.value.trim()) {
      min_payout = parseMajor(minPayout.value, cur);
      if (min_payout === null) problems.push(["min_payout", `Own minimum payout must be an amount like ${decimals(cur) ? "25.00" : "2500"}, or empty.`]);
    }
    const rewards = ed.read(problems);
    if (problems.length) return errors.show(problems);
    save.disabled = true;
    errors.clear();
    try {
      p = await ctx.call<Partner>(`/api/v1/partners/${p.id}`, "PATCH", { group_id: groupSel.value || null, min_payout, rewards });
      inherits();
      summary.className = "alert success";
      clear(summary, "Terms saved.");
      announce(live(), "Terms saved.");
    } catch (err) {
      errors.showApi(err);
    } finally {
      save.disabled = false;
    }
  });
  ed.sync();
  inherits();
  return form;
}

// ---- commissions, Add commission ---------------------------------------------------------------

async function commissionsPanel(ctx: Ctx, program: Program, partner: Partner, host: HTMLElement): Promise<void> {
  let rows: Commission[] = [];
  const listHost = h("div", { id: "partner-commissions-list", "aria-live": "polite" });
  const add = h("button", { type: "button", id: "add-commission" }, "Add commission");
  const query = (cursor?: string) => `/api/v1/commissions?partner_id=${encodeURIComponent(partner.id)}&limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
  const draw = (cursor: string | null) =>
    clear(
      listHost,
      rows.length
        ? table<Commission>(
            `Commissions of ${partner.name}`,
            [
              { title: "Date", cell: (c) => formatDate(c.created_at) },
              { title: "Type", cell: kindCell },
              { title: "Sale", num: true, cell: (c) => (c.kind === "sale" ? formatMoney(c.sale_amount, c.currency) : "—") },
              { title: "Commission", num: true, cell: (c) => formatMoney(c.amount, c.currency) },
              { title: "Status", cell: statusCell },
            ],
            rows,
            (c) => ({ "data-id": c.id, "data-kind": c.kind, "data-status": c.status }),
          )
        : h("p", { class: "empty" }, "No commissions yet."),
      cursor
        ? loadMore("Show more commissions", async () => {
            const more = await ctx.call<List<Commission>>(query(cursor));
            rows.push(...more.data);
            draw(more.next_cursor);
          })
        : null,
    );
  add.disabled = partner.status === "banned";
  add.addEventListener("click", () =>
    addCommissionDialog(ctx, program, partner, (c) => {
      rows = [c, ...rows.filter((r) => r.id !== c.id)];
      draw(next);
    }),
  );
  let next: string | null = null;
  clear(host, h("div", { class: "section-head" }, h("h2", { id: "partner-commissions-title" }, "Commissions"), add), listHost);
  const page = await ctx.call<List<Commission>>(query());
  rows = page.data;
  next = page.next_cursor;
  draw(next);
}

/** A small modal form: amount, description, status. One Idempotency-Key per opening, so a
 * repeated submit (double click, retry after a network error) creates one commission. */
function addCommissionDialog(ctx: Ctx, program: Program, partner: Partner, done: (c: Commission) => void): void {
  const cur = program.payout_currency;
  const key = crypto.randomUUID();
  const titleId = nextId("dlg");
  const amount = h("input", { type: "text", inputmode: "decimal", autocomplete: "off", class: "short" });
  const description = h("textarea", { rows: 2, maxlength: 500 });
  const status = h("select", null, h("option", { value: "approved" }, "Approved: paid with the next payout"), h("option", { value: "pending" }, `Pending: approved after the hold period`));
  const summary = h("div", { class: "alert", role: "alert" });
  const submit = h("button", { type: "submit" }, "Add commission");
  const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
  const form = h(
    "form",
    { method: "dialog", novalidate: true, id: "add-commission-form" },
    h("h2", { id: titleId }, `Add a commission for ${partner.name}`),
    h("p", { class: "muted" }, "A one-off bonus, paid with the partner's next payout like any other commission. The partner sees the description in their portal."),
    summary,
    field("amount", "Amount", amount, moneyHint(cur)),
    field("description", "Description", description, "Up to 500 characters, e.g. Launch bonus."),
    field("status", "Status", status),
    h("div", { class: "actions" }, submit, cancel),
  );
  const errors = new FormErrors(form, summary);
  const close = showModal(form, titleId, cancel, amount);
  let busy = false;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (busy) return;
    const problems: [string, string][] = [];
    const minor = parseMajor(amount.value, cur);
    if (minor === null || minor < 1) problems.push(["amount", `Enter an amount above zero, like ${decimals(cur) ? "50.00" : "5000"}.`]);
    const text = description.value.trim();
    if (!text) problems.push(["description", "Enter a description, e.g. Launch bonus."]);
    if (problems.length) return errors.show(problems);
    busy = true;
    submit.disabled = true;
    try {
      const c = await ctx.call<Commission>("/api/v1/commissions", "POST", { partner_id: partner.id, amount: minor, description: text, status: status.value }, { "Idempotency-Key": key });
      close();
      done(c);
      announce(live(), `Commission of ${formatMoney(c.amount, c.currency)} added.`);
    } catch (err) {
      errors.showApi(err);
    } finally {
      busy = false;
      submit.disabled = false;
    }
  });
}
