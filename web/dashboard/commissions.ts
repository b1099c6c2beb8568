// Commissions tab: filter by status (or held for review) and partner, approve, reject with a reason.
import { withQuery, type List } from "../shared/api";
import { announce, clear, h, type Child } from "../shared/dom";
import { formatDate, titleCase } from "../shared/format";
import { formatMoney } from "../shared/money";
import type { Commission, Program } from "../shared/types";
import type { Ctx } from "./ctx";
import { exportButton } from "./csv";
import { reasonBadge, ruleName, RULES } from "./fraud";
import { partnerNames } from "./partners";
import { field, live, loadMore, openDialog, statusBadge, table } from "./ui";

/** Held: a "Held" badge and the rules that held it. Decided: the status, a rule-rejected one's
 * rule by name (else the merchant's reason), and which rules had held it. */
export function statusCell(c: Commission): Child {
  if (c.held) return h("div", { class: "badges" }, h("span", { class: "badge held" }, "Held"), c.hold_reasons.map(reasonBadge));
  const byRule = c.reason && RULES.some((r) => r[0] === c.reason);
  return [
    statusBadge(c.status),
    c.reason ? h("span", { class: "muted reason" }, ` ${byRule ? `Fraud rule: ${ruleName(c.reason)}` : c.reason}`) : null,
    c.hold_reasons?.length ? h("div", { class: "muted reason" }, `Was held: ${c.hold_reasons.map(ruleName).join(", ")}`) : null,
  ];
}

/** The kind; a bonus (a manual commission) with its description under it. */
export function kindCell(c: Commission): Child {
  if (c.kind !== "bonus") return titleCase(c.kind);
  return [h("span", { class: "badge bonus" }, "Bonus"), c.description ? h("div", { class: "muted reason description" }, c.description) : null];
}

export async function commissionsTab(ctx: Ctx, program: Program, host: HTMLElement): Promise<void> {
  const names = await partnerNames(ctx, program.id);
  const status = h(
    "select",
    null,
    [["", "All statuses"], ["pending", "Pending"], ["held", "Held for review"], ["approved", "Approved"], ["paid", "Paid"], ["rejected", "Rejected"]].map(([v, t]) => h("option", { value: v }, t)),
  );
  const partner = h("select", null, h("option", { value: "" }, "All partners"), [...names].map(([id, n]) => h("option", { value: id }, n)));
  const listHost = h("div", { id: "commissions-list", "aria-live": "polite", "aria-busy": "true" });
  const msg = h("div", { class: "alert", role: "alert" });
  let rows: Commission[] = [];

  const update = (c: Commission) => {
    if (rows.some((r) => r.id === c.id && r.held && !c.held)) ctx.held?.(-1);
    rows = rows.map((r) => (r.id === c.id ? c : r));
    draw(next);
  };
  const approve = async (c: Commission, btn: HTMLButtonElement) => {
    btn.disabled = true;
    clear(msg);
    msg.className = "alert";
    try {
      update(await ctx.call<Commission>(`/api/v1/commissions/${c.id}/approve`, "POST", {}));
      announce(live(), "Commission approved.");
      listHost.querySelector<HTMLElement>(`tr[data-id="${c.id}"] button`)?.focus();
    } catch (e) {
      btn.disabled = false;
      msg.className = "alert error";
      clear(msg, e instanceof Error ? e.message : String(e));
    }
  };
  const reject = (c: Commission) =>
    openDialog({
      title: "Reject this commission?",
      body: h("p", null, `${titleCase(c.kind)} commission of ${formatMoney(c.amount, c.currency)} for ${names.get(c.partner_id) ?? c.partner_id}. The partner sees the reason in their portal.`),
      confirm: "Reject commission",
      danger: true,
      input: { name: "reason", label: "Reason", maxlength: 200, required: true },
      onConfirm: async (reason) => {
        update(await ctx.call<Commission>(`/api/v1/commissions/${c.id}/reject`, "POST", { reason }));
        announce(live(), "Commission rejected.");
      },
    });

  let next: string | null = null;
  const draw = (cursor: string | null) => {
    next = cursor;
    clear(
      listHost,
      rows.length
        ? table<Commission>(
            "Commissions",
            [
              { title: "Date", cell: (c) => formatDate(c.created_at) },
              { title: "Partner", cell: (c) => names.get(c.partner_id) ?? c.partner_id },
              { title: "Type", cell: kindCell },
              { title: "Sale", num: true, cell: (c) => (c.kind === "sale" ? formatMoney(c.sale_amount, c.currency) : "—") },
              { title: "Commission", num: true, cell: (c) => formatMoney(c.amount, c.currency) },
              { title: "Status", cell: statusCell },
              {
                title: "Actions",
                cell: (c) => {
                  const out: HTMLElement[] = [];
                  if (c.status === "pending" && !c.payout_id) {
                    const a = h("button", { type: "button", class: "small", "aria-label": `Approve commission ${c.id}` }, "Approve");
                    a.addEventListener("click", () => void approve(c, a));
                    out.push(a);
                  }
                  if ((c.status === "pending" || c.status === "approved") && !c.payout_id) {
                    const r = h("button", { type: "button", class: "secondary small", "aria-label": `Reject commission ${c.id}` }, "Reject");
                    r.addEventListener("click", () => reject(c));
                    out.push(r);
                  }
                  return out.length ? h("div", { class: "actions-cell" }, out) : h("span", { class: "muted" }, "—");
                },
              },
            ],
            rows,
            (c) => ({ "data-id": c.id, "data-status": c.status, "data-kind": c.kind, "data-held": String(c.held) }),
          )
        : h("p", { class: "empty" }, "No commissions match."),
      cursor
        ? loadMore("Show more commissions", async () => {
            const more = await ctx.call<List<Commission>>(query(cursor));
            rows.push(...more.data);
            draw(more.next_cursor);
          })
        : null,
    );
  };
  const query = (cursor?: string) =>
    withQuery("/api/v1/commissions", {
      program_id: program.id,
      ...(status.value === "held" ? { held: "true" } : { status: status.value }),
      partner_id: partner.value,
      limit: 50,
      cursor,
    });
  const reload = async () => {
    listHost.setAttribute("aria-busy", "true");
    const page = await ctx.call<List<Commission>>(query());
    rows = page.data;
    draw(page.next_cursor);
    listHost.setAttribute("aria-busy", "false");
  };
  status.addEventListener("change", () => void reload());
  partner.addEventListener("change", () => void reload());

  clear(
    host,
    h(
      "section",
      { class: "card", "aria-labelledby": "commissions-title" },
      h("h2", { id: "commissions-title" }, "Commissions"),
      h("form", { class: "row filters", role: "search", "aria-label": "Filter commissions", onsubmit: (e: Event) => e.preventDefault() }, field("status", "Status", status), field("partner_id", "Partner", partner), h("div", { class: "field export-field" }, exportButton(ctx, "commissions", () => query().replace("/api/v1/commissions?", "/api/v1/commissions/export?").replace(/&?limit=50/, "")))),
      msg,
      listHost,
    ),
  );
  await reload();
}
