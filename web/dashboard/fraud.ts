// Fraud rules: their names and descriptions, hold-reason badges, and the Needs review tab: held
// commissions (pending until the merchant approves or rejects them; the cron never approves one)
// and partners whose payouts wait for the merchant to approve their payout account.
import { withQuery, type List } from "../shared/api";
import { announce, clear, h, type Child } from "../shared/dom";
import { formatDate, titleCase } from "../shared/format";
import { formatMoney } from "../shared/money";
import type { Commission, FraudRule, Partner, Program } from "../shared/types";
import type { Ctx } from "./ctx";
import { live, loadMore, openDialog, table } from "./ui";

/** Every rule in the order the settings list them: code, short name, what it checks. */
export const RULES: [FraudRule, string, string][] = [
  ["self_referral", "Self-referral", "The customer's email is the partner's."],
  ["email_domain_match", "Same email domain", "The customer's email domain is the partner's (free-mail providers excepted)."],
  ["disposable_email", "Disposable email", "The customer used a disposable email address."],
  ["paid_traffic", "Paid ad click", "The click came from a paid ad (gclid, msclkid, ttclid…)."],
  ["click_spam", "Click spam", "The visitor clicked the partner's links unusually often."],
  ["duplicate_payout_account", "Shared payout account", "Another partner is paid to the same Stripe or bank account."],
  ["banned_referrer", "Banned referrer", "The click came from a banned referrer."],
];

const rule = (code: string) => RULES.find((r) => r[0] === code);

/** A rule's short name, or the code itself for one this dashboard does not know yet. */
export const ruleName = (code: string): string => rule(code)?.[1] ?? titleCase(code);

/** A compact badge; the description is its tooltip and, for screen readers, part of its text. */
export function reasonBadge(code: string): HTMLElement {
  const desc = rule(code)?.[2];
  return h("span", { class: "badge hold", title: desc ?? null, "data-reason": code }, ruleName(code), desc ? h("span", { class: "visually-hidden" }, `: ${desc}`) : null);
}

/** The reasons of a held commission with their descriptions written out (Needs review). */
function reasonList(codes: string[]): HTMLElement {
  return h(
    "ul",
    { class: "reasons" },
    codes.map((c) => h("li", { "data-reason": c }, h("span", { class: "badge hold" }, ruleName(c)), " ", h("span", { class: "muted" }, rule(c)?.[2] ?? ""))),
  );
}

const rel = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

/** How long ago: "today", "yesterday", "5 days ago", "2 months ago". */
export function age(iso: string): string {
  const days = Math.floor((Date.now() - new Date(iso).getTime()) / 86_400_000);
  if (!(days >= 0)) return formatDate(iso);
  if (days < 45) return rel.format(-days, "day");
  if (days < 730) return rel.format(-Math.round(days / 30.4), "month");
  return rel.format(-Math.round(days / 365), "year");
}

const partnersOf = (ctx: Ctx, programId: string) => ctx.call<List<Partner>>(`/api/v1/programs/${programId}/partners?limit=100`);
const payoutHeld = (p: Partner) => !!p.payout_hold_reasons?.length;

/** The Needs review tab's count: held commissions and partners with held payouts ("99+" past
 * one page of commissions). */
export async function heldCount(ctx: Ctx, programId: string): Promise<string> {
  const [page, partners] = await Promise.all([ctx.call<List<Commission>>(withQuery("/api/v1/commissions", { program_id: programId, held: "true", limit: 99 })), partnersOf(ctx, programId)]);
  const n = page.data.length + partners.data.filter(payoutHeld).length;
  return page.next_cursor ? "99+" : n ? String(n) : "";
}

export async function reviewTab(ctx: Ctx, program: Program, host: HTMLElement): Promise<void> {
  const [partners, page] = await Promise.all([partnersOf(ctx, program.id), ctx.call<List<Commission>>(withQuery("/api/v1/commissions", { program_id: program.id, held: "true", limit: 50 }))]);
  const names = new Map(partners.data.map((p) => [p.id, p.name]));
  let payoutHolds = partners.data.filter(payoutHeld);
  const listHost = h("div", { id: "review-list", "aria-busy": "true" });
  const accountsHost = h("div", { id: "review-accounts" });
  const msg = h("div", { class: "alert", role: "alert" });
  const heading = h("h2", { id: "review-title", tabindex: -1 }, "Needs review");
  let rows: Commission[] = [];
  let next: string | null = null;

  /** Drops a decided commission from the list; focus goes to the next one's Approve button. */
  const decided = (c: Commission, what: string) => {
    const i = rows.findIndex((r) => r.id === c.id);
    rows = rows.filter((r) => r.id !== c.id);
    ctx.held?.(-1);
    draw(next);
    const after = rows[Math.min(i, rows.length - 1)];
    (after ? listHost.querySelector<HTMLElement>(`tr[data-id="${after.id}"] button`) : heading)?.focus();
    const left = rows.length + payoutHolds.length;
    announce(live(), `${what} ${left ? `${left} left to review.` : "Nothing else needs review."}`);
  };
  const approve = async (c: Commission, btn: HTMLButtonElement) => {
    btn.disabled = true;
    clear(msg);
    msg.className = "alert";
    try {
      await ctx.call<Commission>(`/api/v1/commissions/${c.id}/approve`, "POST", {});
      decided(c, "Commission approved.");
    } catch (e) {
      btn.disabled = false;
      msg.className = "alert error";
      clear(msg, e instanceof Error ? e.message : String(e));
    }
  };
  const reject = (c: Commission) =>
    openDialog({
      title: "Reject this commission?",
      body: [
        h("p", null, `${titleCase(c.kind)} commission of ${formatMoney(c.amount, c.currency)} for ${names.get(c.partner_id) ?? c.partner_id}, held for: ${c.hold_reasons.map(ruleName).join(", ")}.`),
        h("p", null, "The partner sees the reason in their portal."),
      ],
      confirm: "Reject commission",
      danger: true,
      input: { name: "reason", label: "Reason", maxlength: 200, required: true },
      onConfirm: async (reason) => {
        await ctx.call<Commission>(`/api/v1/commissions/${c.id}/reject`, "POST", { reason });
        decided(c, "Commission rejected.");
      },
    });

  const who = (c: Commission) => names.get(c.partner_id) ?? c.partner_id;
  const draw = (cursor: string | null) => {
    next = cursor;
    clear(
      listHost,
      rows.length
        ? table<Commission>(
            "Commissions held for review",
            [
              { title: "Partner", cell: (c) => h("strong", null, who(c)) },
              { title: "Type", cell: (c) => titleCase(c.kind) },
              { title: "Commission", num: true, cell: (c) => [formatMoney(c.amount, c.currency), c.kind === "sale" ? h("div", { class: "muted sub" }, `on ${formatMoney(c.sale_amount, c.currency)}`) : null] },
              { title: "Age", cell: (c) => h("time", { datetime: c.created_at, title: formatDate(c.created_at) }, age(c.created_at)) },
              { title: "Why it is held", cell: (c) => reasonList(c.hold_reasons) },
              {
                title: "Decision",
                cell: (c) => {
                  const a = h("button", { type: "button", class: "small", "aria-label": `Approve ${c.kind} commission for ${who(c)}` }, "Approve");
                  a.addEventListener("click", () => void approve(c, a));
                  const r = h("button", { type: "button", class: "secondary small", "aria-label": `Reject ${c.kind} commission for ${who(c)}` }, "Reject");
                  r.addEventListener("click", () => reject(c));
                  return h("div", { class: "actions-cell" }, a, r);
                },
              },
            ],
            rows,
            (c) => ({ "data-id": c.id, "data-kind": c.kind, "data-reasons": c.hold_reasons.join(" ") }),
          )
        : payoutHolds.length
          ? h("p", { class: "empty" }, "No commissions are held.")
          : h("p", { class: "empty all-clear" }, h("strong", null, "Nothing needs review."), " Commissions a fraud rule holds appear here until you approve or reject them."),
      cursor
        ? loadMore("Show more", async () => {
            const more = await ctx.call<List<Commission>>(query(cursor));
            rows.push(...more.data);
            draw(more.next_cursor);
          })
        : null,
    );
  };
  const query = (cursor?: string) => withQuery("/api/v1/commissions", { program_id: program.id, held: "true", limit: 50, cursor });

  /** Partners paid to the same Stripe or bank account as another: payouts wait for approval. */
  const drawAccounts = () => {
    accountsHost.hidden = !payoutHolds.length;
    clear(
      accountsHost,
      h("h3", { id: "accounts-title", tabindex: -1 }, "Payouts on hold"),
      h("p", { class: "muted" }, "These partners are paid to the same Stripe or bank account as another partner. Their commissions still count, but no payout is sent until you approve the payout account."),
      table<Partner>(
        "Partners whose payouts are on hold",
        [
          { title: "Partner", cell: (p) => [h("strong", null, p.name), h("div", { class: "muted sub" }, p.email)] },
          { title: "Why it is held", cell: (p) => reasonList(p.payout_hold_reasons ?? []) },
          {
            title: "Decision",
            cell: (p) => {
              const b = h("button", { type: "button", class: "small", "aria-label": `Approve account of ${p.name}` }, "Approve account");
              b.addEventListener("click", () => approveAccount(p));
              return b;
            },
          },
        ],
        payoutHolds,
        (p) => ({ "data-id": p.id }),
      ),
    );
  };
  const approveAccount = (p: Partner) =>
    openDialog({
      title: `Approve ${p.name}'s payout account?`,
      body: h("p", null, `${p.name} (${p.email}) is paid to the same Stripe or bank account as another partner. Approve only if you know why, for example one business with two partner logins. Their payouts then follow the schedule again.`),
      confirm: "Approve account",
      onConfirm: async () => {
        await ctx.call<Partner>(`/api/v1/partners/${p.id}/approve_payout_account`, "POST", {});
        payoutHolds = payoutHolds.filter((x) => x.id !== p.id);
        ctx.held?.(-1);
        drawAccounts();
        draw(next);
        window.setTimeout(() => (payoutHolds.length ? accountsHost.querySelector<HTMLElement>("tbody button") : heading)?.focus(), 0);
        announce(live(), `Payout account approved. ${rows.length + payoutHolds.length ? `${rows.length + payoutHolds.length} left to review.` : "Nothing else needs review."}`);
      },
    });

  rows = page.data;
  const intro: Child = h(
    "p",
    { class: "muted" },
    "A fraud rule set to Hold stopped what is listed here. Nothing here is approved or paid automatically: approve what is genuine, reject the rest. ",
    h("a", { href: `#/programs/${program.id}/settings` }, "Change the fraud rules"),
    ".",
  );
  clear(host, h("section", { class: "card", "aria-labelledby": "review-title" }, heading, intro, msg, listHost, accountsHost));
  draw(page.next_cursor);
  drawAccounts();
  listHost.setAttribute("aria-busy", "false");
}
