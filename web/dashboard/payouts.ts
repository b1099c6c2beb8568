// Payouts tab: the program's payouts with their status (the cron creates them). In payout
// review mode the run awaiting approval comes first, as one batch: partners, amounts, currency
// totals and fraud holds, with Approve all and per-row Approve / Cancel.
import { ApiError, withQuery, type List } from "../shared/api";
import { announce, clear, h } from "../shared/dom";
import { formatDate } from "../shared/format";
import { formatMoney } from "../shared/money";
import type { Commission, Partner, Payout, Program } from "../shared/types";
import type { Ctx } from "./ctx";
import { reasonBadge } from "./fraud";
import { exportButton } from "./csv";
import { partnerNames } from "./partners";
import { field, live, loadMore, openDialog, statusBadge, table } from "./ui";

/** Per currency, e.g. "1,250.00 USD · 300 JPY". */
const totals = (rows: Payout[]): string => {
  const by = new Map<string, number>();
  for (const p of rows) by.set(p.currency, (by.get(p.currency) ?? 0) + p.amount);
  return [...by].map(([c, a]) => formatMoney(a, c)).join(" · ");
};

/** The fraud holds a merchant weighs before approving a partner's payout: rules holding its
 * payout account, commissions of this payout a rule had held (then approved), and commissions
 * of the partner still held for review. */
function holds(p: Payout, partner: Partner | undefined, inPayout: Commission[], heldNow: Commission[]): HTMLElement {
  const past = inPayout.filter((c) => c.hold_reasons.length);
  const codes = [...new Set(past.flatMap((c) => c.hold_reasons))];
  const now = heldNow.filter((c) => c.partner_id === p.partner_id);
  const items = [
    partner?.payout_hold_reasons?.length ? h("li", null, "Payout account held: ", partner.payout_hold_reasons.map(reasonBadge)) : null,
    past.length ? h("li", null, `${past.length} of its commissions ${past.length === 1 ? "was" : "were"} held, then approved: `, codes.map(reasonBadge)) : null,
    now.length ? h("li", null, `${now.length} other commission${now.length === 1 ? "" : "s"} held for review`) : null,
  ].filter(Boolean);
  return items.length ? h("ul", { class: "reasons holds" }, items) : h("span", { class: "muted" }, "None");
}

/** The run awaiting approval, or nothing when none waits. `done` redraws the whole tab. */
async function reviewBatch(ctx: Ctx, program: Program, names: Map<string, string>, done: () => Promise<void>): Promise<HTMLElement | null> {
  const page = await ctx.call<List<Payout>>(withQuery("/api/v1/payouts", { program_id: program.id, status: "awaiting_approval", limit: 100 }));
  const rows = page.data;
  if (!rows.length) return null;
  const [partners, held, ...mine] = await Promise.all([
    ctx.call<List<Partner>>(`/api/v1/programs/${program.id}/partners?limit=100`),
    ctx.call<List<Commission>>(withQuery("/api/v1/commissions", { program_id: program.id, held: "true", limit: 100 })),
    ...rows.map((p) => ctx.call<List<Commission>>(withQuery("/api/v1/commissions", { partner_id: p.partner_id, status: "approved", limit: 100 }))),
  ]);
  const byId = new Map(partners.data.map((p) => [p.id, p]));
  const act = async (p: Payout, action: "approve" | "cancel") => {
    await ctx.call<Payout>(`/api/v1/payouts/${p.id}/${action}`, "POST", {});
    announce(live(), `Payout to ${names.get(p.partner_id) ?? p.partner_id} ${action === "approve" ? "approved" : "canceled"}.`);
  };
  const rowButton = (p: Payout, action: "approve" | "cancel") => {
    const who = names.get(p.partner_id) ?? p.partner_id;
    const b = h("button", { type: "button", class: `small ${action === "cancel" ? "secondary" : ""}`, "aria-label": `${action === "approve" ? "Approve" : "Cancel"} the payout to ${who}`, "data-action": action }, action === "approve" ? "Approve" : "Cancel");
    b.addEventListener("click", () =>
      openDialog({
        title: action === "approve" ? "Approve this payout?" : "Cancel this payout?",
        body: h(
          "p",
          null,
          action === "approve"
            ? `${formatMoney(p.amount, p.currency)} is sent to ${who} now, through Stripe.`
            : `Nothing is sent to ${who}. Its ${p.commission_count} commissions (${formatMoney(p.amount, p.currency)}) go back to the approved balance, and the next payout run may include them again.`,
        ),
        confirm: action === "approve" ? "Approve and send" : "Cancel payout",
        danger: action === "cancel",
        onConfirm: async () => {
          await act(p, action);
          await done();
        },
      }),
    );
    return b;
  };
  const approveAll = h("button", { type: "button", id: "approve-all" }, `Approve all (${rows.length})`);
  approveAll.addEventListener("click", () =>
    openDialog({
      title: "Approve the whole run?",
      body: h("p", null, `${rows.length} payout${rows.length === 1 ? "" : "s"} totalling ${totals(rows)} ${rows.length === 1 ? "is" : "are"} sent now, through Stripe.`),
      confirm: "Approve all and send",
      onConfirm: async () => {
        // One at a time: each is sent once; a payout already decided (409) is skipped.
        for (const p of rows) {
          try {
            await act(p, "approve");
          } catch (e) {
            if (!(e instanceof ApiError && e.status === 409)) throw e;
          }
        }
        await done();
      },
    }),
  );
  return h(
    "section",
    { class: "card review-batch", id: "payout-review", "aria-labelledby": "review-title" },
    h("h2", { id: "review-title" }, "Payout run awaiting approval"),
    h(
      "p",
      { class: "batch-summary" },
      h("strong", null, `${rows.length} payout${rows.length === 1 ? "" : "s"}`),
      " · ",
      h("span", { id: "review-totals" }, totals(rows)),
      h("span", { class: "muted" }, ` · prepared ${formatDate(rows[0].created_at)}; nothing is sent until you approve.`),
    ),
    table<Payout>(
      "Payouts awaiting approval",
      [
        { title: "Partner", cell: (p) => h("a", { href: `#/programs/${program.id}/partners/${p.partner_id}` }, names.get(p.partner_id) ?? p.partner_id) },
        { title: "Amount", num: true, cell: (p) => formatMoney(p.amount, p.currency) },
        { title: "Commissions", num: true, cell: (p) => String(p.commission_count) },
        { title: "Fraud holds", cell: (p) => holds(p, byId.get(p.partner_id), (mine[rows.indexOf(p)]?.data ?? []).filter((c) => c.payout_id === p.id), held.data) },
        { title: "Actions", cell: (p) => h("div", { class: "actions-cell" }, rowButton(p, "approve"), rowButton(p, "cancel")) },
      ],
      rows,
      (p) => ({ "data-id": p.id, "data-partner": p.partner_id }),
    ),
    h("div", { class: "actions" }, approveAll),
  );
}

export async function payoutsTab(ctx: Ctx, program: Program, host: HTMLElement): Promise<void> {
  const names = await partnerNames(ctx, program.id);
  const status = h("select", null, [["", "All statuses"], ["awaiting_approval", "Awaiting approval"], ["processing", "Processing"], ["paid", "Paid"], ["failed", "Failed"], ["canceled", "Canceled"]].map(([v, t]) => h("option", { value: v }, t)));
  const batchHost = h("div", { id: "review-host" });
  const listHost = h("div", { id: "payouts-list", "aria-live": "polite" });
  let rows: Payout[] = [];
  const query = (cursor?: string) => withQuery("/api/v1/payouts", { program_id: program.id, status: status.value, limit: 50, cursor });
  const draw = (cursor: string | null) =>
    clear(
      listHost,
      rows.length
        ? table<Payout>(
            "Payouts",
            [
              { title: "Date", cell: (p) => formatDate(p.created_at) },
              { title: "Partner", cell: (p) => names.get(p.partner_id) ?? p.partner_id },
              { title: "Amount", num: true, cell: (p) => formatMoney(p.amount, p.currency) },
              { title: "Status", cell: (p) => [statusBadge(p.status), p.failure_message ? h("span", { class: "muted reason" }, ` ${p.failure_message}`) : null] },
              { title: "Commissions", num: true, cell: (p) => String(p.commission_count) },
              { title: "Stripe transfer", cell: (p) => (p.stripe_transfer_id ? h("code", null, p.stripe_transfer_id) : "—") },
              { title: "Paid on", cell: (p) => formatDate(p.paid_at) },
            ],
            rows,
            (p) => ({ "data-id": p.id, "data-status": p.status }),
          )
        : h("p", { class: "empty" }, `No payouts yet. They are sent ${program.payout_schedule.every === "day" ? "daily" : "on the schedule"} to partners with payouts enabled whose approved balance reaches ${formatMoney(program.min_payout, program.payout_currency)}.`),
      cursor
        ? loadMore("Show more payouts", async () => {
            const more = await ctx.call<List<Payout>>(query(cursor));
            rows.push(...more.data);
            draw(more.next_cursor);
          })
        : null,
    );
  const reload = async () => {
    const page = await ctx.call<List<Payout>>(query());
    rows = page.data;
    draw(page.next_cursor);
  };
  status.addEventListener("change", () => void reload());
  const redraw = async (): Promise<void> => {
    clear(batchHost, await reviewBatch(ctx, program, names, redraw));
    await reload();
  };
  clear(
    host,
    batchHost,
    h(
      "section",
      { class: "card", "aria-labelledby": "payouts-title" },
      h("h2", { id: "payouts-title" }, "Payouts"),
      h("form", { class: "row filters", role: "search", "aria-label": "Filter payouts", onsubmit: (e: Event) => e.preventDefault() }, field("status", "Status", status), h("div", { class: "field export-field" }, exportButton(ctx, "payouts", () => withQuery("/api/v1/payouts/export", { program_id: program.id, status: status.value })))),
      listHost,
    ),
  );
  await redraw();
}
