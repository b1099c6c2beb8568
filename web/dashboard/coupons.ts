// A partner's coupon codes (issue 16): list, add, delete. A conversion whose `coupon_code` names
// one is attributed to the partner (see the README's "Coupon codes").
import type { List } from "../shared/api";
import { announce, clear, h } from "../shared/dom";
import { formatDate } from "../shared/format";
import type { Partner } from "../shared/types";
import type { Ctx } from "./ctx";
import { field, FormErrors, live, loadMore, openDialog, table } from "./ui";

interface Coupon {
  id: string;
  partner_id: string;
  code: string;
  created_at: string;
}

const CODE = /^[A-Za-z0-9_-]{3,40}$/;

/** Renders the coupons card of `partner` into `host` (replacing what it held). */
export async function couponsPanel(ctx: Ctx, partner: Partner, host: HTMLElement): Promise<void> {
  const rows: Coupon[] = [];
  const titleId = "coupons-title";
  const listHost = h("div", { id: "coupons-list", "aria-busy": "true" });
  let next: string | null = null;

  const remove = (c: Coupon) =>
    openDialog({
      title: `Delete the code ${c.code}?`,
      body: h("p", null, "Conversions that carry it from now on are no longer attributed to ", h("strong", null, partner.name), ". Commissions it earned stay."),
      confirm: "Delete code",
      danger: true,
      onConfirm: async () => {
        await ctx.call(`/api/v1/coupons/${c.id}`, "DELETE");
        rows.splice(rows.findIndex((r) => r.id === c.id), 1);
        draw(next);
        announce(live(), `Code ${c.code} deleted.`);
      },
    });

  const draw = (cursor: string | null) => {
    next = cursor;
    clear(
      listHost,
      rows.length
        ? table<Coupon>(
            `Coupon codes of ${partner.name}`,
            [
              { title: "Code", cell: (c) => h("code", null, c.code) },
              { title: "Created", cell: (c) => formatDate(c.created_at) },
              {
                title: "Actions",
                cell: (c) => {
                  const b = h("button", { type: "button", class: "danger small", "aria-label": `Delete code ${c.code}` }, "Delete");
                  b.addEventListener("click", () => remove(c));
                  return b;
                },
              },
            ],
            rows,
            (c) => ({ "data-id": c.id, "data-code": c.code }),
          )
        : h("p", { class: "empty" }, "No coupon codes yet."),
      cursor
        ? loadMore("Show more codes", async () => {
            const more = await ctx.call<List<Coupon>>(`/api/v1/partners/${partner.id}/coupons?limit=50&cursor=${encodeURIComponent(cursor)}`);
            rows.push(...more.data);
            draw(more.next_cursor);
          })
        : null,
    );
  };

  const code = h("input", { type: "text", autocomplete: "off", spellcheck: "false", maxlength: 40 });
  const summary = h("div", { class: "alert", role: "alert" });
  const add = h("button", { type: "submit" }, "Add code");
  const form = h(
    "form",
    { novalidate: true, id: "coupon-form", "aria-label": `Add a coupon code for ${partner.name}` },
    summary,
    h("div", { class: "row" }, field("code", "New code", code, "3 to 40 letters, digits, _ or -. Matched without regard to case."), h("div", { class: "field" }, add)),
  );
  const errors = new FormErrors(form, summary);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = code.value.trim();
    if (!CODE.test(value)) return errors.show([["code", "Use 3 to 40 letters, digits, _ or -."]]);
    add.disabled = true;
    errors.clear();
    try {
      const c = await ctx.call<Coupon>(`/api/v1/partners/${partner.id}/coupons`, "POST", { code: value });
      rows.unshift(c);
      draw(next);
      announce(live(), `Code ${c.code} added for ${partner.name}.`);
      form.reset();
      code.focus();
    } catch (err) {
      errors.showApi(err);
    } finally {
      add.disabled = false;
    }
  });

  clear(
    host,
    h(
      "section",
      { class: "card", "aria-labelledby": titleId, id: "coupons", "data-partner": partner.id },
      h("h2", { id: titleId, tabindex: "-1" }, `Coupon codes of ${partner.name}`),
      h("p", { class: "muted" }, "A sale or lead tracked with one of these codes (", h("code", null, "coupon_code"), ") is attributed to this partner."),
      partner.status === "banned" ? null : form,
      listHost,
    ),
  );
  const page = await ctx.call<List<Coupon>>(`/api/v1/partners/${partner.id}/coupons?limit=50`);
  rows.push(...page.data);
  draw(page.next_cursor);
  listHost.setAttribute("aria-busy", "false");
}
