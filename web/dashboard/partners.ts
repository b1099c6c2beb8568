// Partners tab: invite by email, list with stats, ban, preview a partner's portal.
import type { List } from "../shared/api";
import { announce, clear, h } from "../shared/dom";
import { formatDate } from "../shared/format";
import { formatMoney } from "../shared/money";
import type { Partner, PartnerStats, Program } from "../shared/types";
import { couponsPanel } from "./coupons";
import type { Ctx } from "./ctx";
import { exportButton, importPanel } from "./csv";
import { programGroups } from "./groups";
import { copyRow, field, FormErrors, live, loadMore, openDialog, statusBadge, table } from "./ui";

interface Invited extends Partner {
  invitation?: { accept_url: string; expires_at: string; email_sent: boolean };
}

export async function partnersTab(ctx: Ctx, program: Program, host: HTMLElement): Promise<void> {
  const rows: Partner[] = [];
  const stats = new Map<string, PartnerStats>();
  const listHost = h("div", { id: "partners-list" });
  const couponsHost = h("div", { id: "partner-coupons" });
  const money = (n: number) => formatMoney(n, program.payout_currency);

  const loadStats = async (ps: Partner[]) => {
    await Promise.all(
      ps.map(async (p) => {
        try {
          stats.set(p.id, await ctx.call<PartnerStats>(`/api/v1/partners/${p.id}/stats`));
        } catch {
          // a missing stat shows as a dash
        }
      }),
    );
  };

  // Each partner's group, by name (issue 16).
  const groupNames = new Map<string, string>();
  const loadGroups = async () => {
    for (const g of await programGroups(ctx, program.id).catch(() => [])) groupNames.set(g.id, g.name);
  };

  const previewPortal = async (p: Partner, btn: HTMLButtonElement) => {
    const w = window.open("", "_blank");
    if (w) w.opener = null;
    btn.disabled = true;
    try {
      const t = await ctx.call<{ token: string }>("/api/v1/embed-tokens", "POST", { program_id: program.id, partner_id: p.id });
      const url = `/embed/referrals?token=${encodeURIComponent(t.token)}`;
      if (w) w.location.href = url;
      else window.location.href = url;
    } catch (e) {
      w?.close();
      announce(live(), e instanceof Error ? e.message : String(e));
    } finally {
      btn.disabled = false;
    }
  };

  const ban = (p: Partner) =>
    openDialog({
      title: `Ban ${p.name}?`,
      body: h("p", null, "Their links stop earning at once and their pending and approved commissions are rejected. This cannot be undone here."),
      confirm: "Ban partner",
      danger: true,
      onConfirm: async () => {
        const updated = await ctx.call<Partner>(`/api/v1/partners/${p.id}`, "PATCH", { status: "banned" });
        rows.splice(rows.findIndex((r) => r.id === p.id), 1, updated);
        draw(next);
        announce(live(), `${p.name} is banned.`);
      },
    });

  let next: string | null = null;
  const draw = (cursor: string | null) => {
    next = cursor;
    const st = (p: Partner) => stats.get(p.id);
    clear(
      listHost,
      rows.length
        ? table<Partner>(
            "Partners",
            [
              { title: "Partner", cell: (p) => [h("strong", null, h("a", { href: `#/programs/${program.id}/partners/${p.id}` }, p.name)), h("br"), h("span", { class: "muted" }, p.email)] },
              { title: "Status", cell: (p) => statusBadge(p.status) },
              { title: "Group", cell: (p) => (p.group_id ? (groupNames.get(p.group_id) ?? "—") : h("span", { class: "muted" }, "None")) },
              { title: "Clicks", num: true, cell: (p) => st(p)?.clicks.toLocaleString() ?? "—" },
              { title: "Leads", num: true, cell: (p) => st(p)?.leads.toLocaleString() ?? "—" },
              { title: "Sales", num: true, cell: (p) => st(p)?.sales.toLocaleString() ?? "—" },
              { title: "Earnings", num: true, cell: (p) => (st(p) ? money(st(p)!.earnings.total) : "—") },
              { title: "Payouts", cell: (p) => (p.payouts_enabled ? statusBadge("enabled") : h("span", { class: "muted" }, "Not set up")) },
              { title: "Joined", cell: (p) => formatDate(p.created_at) },
              {
                title: "Actions",
                cell: (p) => {
                  if (p.status === "banned") return h("span", { class: "muted" }, "—");
                  const prev = h("button", { type: "button", class: "secondary small", "aria-label": `Open ${p.name}'s portal` }, "Portal");
                  prev.addEventListener("click", () => void previewPortal(p, prev));
                  const b = h("button", { type: "button", class: "danger small", "aria-label": `Ban ${p.name}` }, "Ban");
                  b.addEventListener("click", () => ban(p));
                  const cp = h("button", { type: "button", class: "secondary small", "aria-label": `Coupon codes of ${p.name}` }, "Coupon codes");
                  cp.addEventListener("click", () =>
                    void couponsPanel(ctx, p, couponsHost)
                      .then(() => couponsHost.querySelector<HTMLElement>("#coupons-title")?.focus())
                      .catch((e) => announce(live(), e instanceof Error ? e.message : String(e))),
                  );
                  return h("div", { class: "actions-cell" }, prev, cp, b);
                },
              },
            ],
            rows,
            (p) => ({ "data-id": p.id, "data-email": p.email, "data-status": p.status }),
          )
        : h("p", { class: "empty" }, "No partners yet. Invite your first partner above."),
      cursor
        ? loadMore("Show more partners", async () => {
            const more = await ctx.call<List<Partner>>(`/api/v1/programs/${program.id}/partners?limit=50&cursor=${encodeURIComponent(cursor)}`);
            await loadStats(more.data);
            rows.push(...more.data);
            draw(more.next_cursor);
          })
        : null,
    );
  };

  // invite form
  const name = h("input", { type: "text", autocomplete: "off", maxlength: 200 });
  const email = h("input", { type: "email", autocomplete: "off", spellcheck: "false" });
  const summary = h("div", { class: "alert", role: "alert" });
  const result = h("div", { id: "invite-result", "aria-live": "polite" });
  const send = h("button", { type: "submit" }, "Send invitation");
  const form = h(
    "form",
    { novalidate: true, "aria-labelledby": "invite-title", id: "invite-form" },
    h("h2", { id: "invite-title" }, "Invite a partner"),
    summary,
    h("div", { class: "row" }, field("name", "Name", name), field("email", "Email", email), h("div", { class: "field" }, send)),
  );
  const errors = new FormErrors(form, summary);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const problems: [string, string][] = [];
    if (!name.value.trim()) problems.push(["name", "Enter the partner's name."]);
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email.value.trim())) problems.push(["email", "Enter an email address like jane@example.com."]);
    if (problems.length) return errors.show(problems);
    send.disabled = true;
    errors.clear();
    try {
      const p = await ctx.call<Invited>(`/api/v1/programs/${program.id}/partners`, "POST", { name: name.value.trim(), email: email.value.trim(), invite: true });
      rows.unshift(p);
      draw(next);
      const inv = p.invitation;
      clear(
        result,
        h(
          "div",
          { class: `alert ${inv?.email_sent ? "success" : "info"}` },
          h("p", null, inv?.email_sent ? `Invitation emailed to ${p.email}.` : `The email to ${p.email} could not be sent; share the link below yourself.`, inv ? ` The link works once, until ${formatDate(inv.expires_at)}.` : ""),
          inv ? copyRow("Invitation link", inv.accept_url, { id: "invite-url" }) : null,
        ),
      );
      form.reset();
      name.focus();
    } catch (err) {
      errors.showApi(err);
    } finally {
      send.disabled = false;
    }
  });

  // Export (every partner of the program) and import (issue 17).
  const exp = exportButton(ctx, "partners", () => `/api/v1/partners/export?program_id=${program.id}`);
  const load = async () => {
    listHost.setAttribute("aria-busy", "true");
    const page = await ctx.call<List<Partner>>(`/api/v1/programs/${program.id}/partners?limit=50`);
    await Promise.all([loadStats(page.data), loadGroups()]);
    rows.splice(0, rows.length, ...page.data);
    draw(page.next_cursor);
    listHost.setAttribute("aria-busy", "false");
  };
  const imported = () => void load().catch((e) => announce(live(), e instanceof Error ? e.message : String(e)));
  clear(
    host,
    h("section", { class: "card" }, form, result),
    importPanel(ctx, program, imported),
    h("section", { class: "card", "aria-labelledby": "partners-title" }, h("div", { class: "card-head" }, h("h2", { id: "partners-title" }, "Partners"), exp), listHost),
    couponsHost,
  );
  await load();
}

/** id -> name of the program's partners (first 100), for tables of commissions and payouts. */
export async function partnerNames(ctx: Ctx, programId: string): Promise<Map<string, string>> {
  const page = await ctx.call<List<Partner>>(`/api/v1/programs/${programId}/partners?limit=100`);
  return new Map(page.data.map((p) => [p.id, p.name]));
}
