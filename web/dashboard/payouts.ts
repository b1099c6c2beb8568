// Payouts tab: the program's payouts with their status (the cron creates them).
import { withQuery, type List } from "../shared/api";
import { clear, h } from "../shared/dom";
import { formatDate } from "../shared/format";
import { formatMoney } from "../shared/money";
import type { Payout, Program } from "../shared/types";
import type { Ctx } from "./ctx";
import { exportButton } from "./csv";
import { partnerNames } from "./partners";
import { field, loadMore, statusBadge, table } from "./ui";

export async function payoutsTab(ctx: Ctx, program: Program, host: HTMLElement): Promise<void> {
  const names = await partnerNames(ctx, program.id);
  const status = h("select", null, [["", "All statuses"], ["processing", "Processing"], ["paid", "Paid"], ["failed", "Failed"]].map(([v, t]) => h("option", { value: v }, t)));
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
  clear(
    host,
    h(
      "section",
      { class: "card", "aria-labelledby": "payouts-title" },
      h("h2", { id: "payouts-title" }, "Payouts"),
      h("form", { class: "row filters", role: "search", "aria-label": "Filter payouts", onsubmit: (e: Event) => e.preventDefault() }, field("status", "Status", status), h("div", { class: "field export-field" }, exportButton(ctx, "payouts", () => withQuery("/api/v1/payouts/export", { program_id: program.id, status: status.value })))),
      listHost,
    ),
  );
  await reload();
}
