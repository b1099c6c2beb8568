// The reward rule editor (issue 16), used by the program's settings, a partner group and a
// partner's own terms: per event kind the base terms, the sale reward's per-customer caps, and a
// list of modifiers (conditions -> other terms; of the matching ones the best paying wins).
// Every control sits in a `field()` named by its API path (`rewards.sale.modifiers[2].conditions[0].op`),
// so a 422 naming that path shows next to it.
import { clear, h } from "../shared/dom";
import { bpsToPercent, decimals, formatMoney, parseMajor, parsePercent, toMajor } from "../shared/money";
import type { Reward, RewardCondition, RewardModifier, Rewards } from "../shared/types";
import { field } from "./ui";

type Kind = "lead" | "sale";
type Op = RewardCondition["op"];
type Problems = [string, string][];

/** The condition fields: API name (metadata: `metadata.<key>`), label, the ops that apply. */
const FIELDS: [string, string, Op[]][] = [
  ["country", "Country", ["eq", "neq", "in", "not_in"]],
  ["product_id", "Product", ["eq", "neq", "in", "not_in", "contains"]],
  ["sale_amount", "Sale amount", ["gte", "lte", "eq", "neq", "in", "not_in"]],
  ["customer_type", "Customer type", ["eq", "neq"]],
  ["event_name", "Event name", ["eq", "neq", "in", "not_in", "contains"]],
  ["metadata", "Metadata key…", ["eq", "neq", "in", "not_in", "contains", "gte", "lte"]],
];
/** A lead is judged on its click's country and its event name only. */
const LEAD_FIELDS = ["country", "event_name"];
const OPS: Record<Op, string> = { eq: "is", neq: "is not", in: "is one of", not_in: "is not one of", gte: "is at least", lte: "is at most", contains: "contains" };
const LIST: Op[] = ["in", "not_in"];
const MAX_MODIFIERS = 20;
const MAX_CONDITIONS = 10;

export function moneyHint(c: string): string {
  const d = decimals(c);
  return `In ${c.toUpperCase()}, e.g. ${d ? `50.${"0".repeat(d)}` : "5000"}.`;
}

function moneyProblem(c: string, label: string): string {
  return `${label} must be an amount like ${decimals(c) ? `12.${"5".padEnd(decimals(c), "0")}` : "1200"} (at most ${decimals(c)} decimals).`;
}

function input(attrs: Record<string, string | number | boolean> = {}): HTMLInputElement {
  return h("input", { type: "text", autocomplete: "off", spellcheck: "false", ...attrs });
}

function select(options: [string, string][], value: string): HTMLSelectElement {
  return h("select", null, options.map(([v, t]) => h("option", { value: v, selected: v === value }, t)));
}

function button(text: string, cls: string, label?: string): HTMLButtonElement {
  return h("button", { type: "button", class: cls, "aria-label": label ?? null }, text);
}

/** A `field()` whose label starts (visually hidden) with where it is, "Sale modifier 2, condition 1: ",
 * so every control has its own name and the error summary names the path in words. */
function fieldAt(where: string, name: string, label: string, control: HTMLInputElement | HTMLSelectElement, hint?: string): HTMLElement {
  const f = field(name, label, control, hint);
  f.querySelector("label")!.prepend(h("span", { class: "visually-hidden" }, `${where}: `));
  return f;
}

// ---- wording -------------------------------------------------------------------------------

function valueText(c: RewardCondition, currency: string): string {
  const one = (v: string | number | boolean) => (c.field === "sale_amount" && typeof v === "number" ? formatMoney(v, currency) : String(v));
  return Array.isArray(c.value) ? c.value.map(one).join(", ") : one(c.value);
}

export function conditionText(c: RewardCondition, currency: string): string {
  const name = c.field.startsWith("metadata.") ? `metadata ${c.field.slice(9)}` : (FIELDS.find((f) => f[0] === c.field)?.[1] ?? c.field).toLowerCase();
  return `${name} ${OPS[c.op] ?? c.op} ${valueText(c, currency)}`;
}

function termsText(t: { type: string; amount: number }, currency: string): string {
  return t.type === "flat" ? formatMoney(t.amount, currency) : `${bpsToPercent(t.amount)}%`;
}

export function modifierText(m: RewardModifier, currency: string): string {
  return `${termsText(m, currency)} when ${m.conditions.map((c) => conditionText(c, currency)).join(m.match === "any" ? " or " : " and ")}`;
}

/** "20% of each sale, for 12 months; 30% when country is one of DE, AT; at most $100.00 per customer". */
export function rewardText(r: Reward, currency: string, kind: Kind): string {
  const amount = termsText(r, currency);
  let text: string;
  if (kind === "lead") text = `${amount} per lead`;
  else {
    const what = r.type === "flat" ? `${amount} per sale` : `${amount} of each sale`;
    const when = r.duration_months === null || r.duration_months === undefined ? ", for the customer's lifetime" : r.duration_months === 0 ? ", first purchase only" : `, for ${r.duration_months} months`;
    text = what + when;
  }
  const parts = [text, ...(r.modifiers ?? []).map((m) => modifierText(m, currency))];
  if (r.max_amount_per_customer) parts.push(`at most ${formatMoney(r.max_amount_per_customer, currency)} per customer`);
  if (r.max_sales_per_customer) parts.push(`at most ${r.max_sales_per_customer} ${r.max_sales_per_customer === 1 ? "sale" : "sales"} per customer`);
  return parts.join("; ");
}

export function rewardsText(r: Rewards | null | undefined, currency: string, none = "No rewards"): string {
  const parts: string[] = [];
  if (r?.sale) parts.push(rewardText(r.sale, currency, "sale"));
  if (r?.lead) parts.push(rewardText(r.lead, currency, "lead"));
  return parts.length ? parts.join(". ") : none;
}

// ---- modifiers -----------------------------------------------------------------------------

interface CondState {
  field: string;
  key: string;
  op: Op;
  value: string;
}
interface ModState {
  conds: CondState[];
  match: "all" | "any";
  type: "flat" | "percentage";
  amount: string;
  duration: "forever" | "first" | "months";
  months: string;
}

function condState(c: RewardCondition, currency: string): CondState {
  const meta = c.field.startsWith("metadata.");
  const one = (v: string | number | boolean) => (c.field === "sale_amount" && typeof v === "number" ? toMajor(v, currency) : String(v));
  return { field: meta ? "metadata" : c.field, key: meta ? c.field.slice(9) : "", op: c.op, value: Array.isArray(c.value) ? c.value.map(one).join(", ") : one(c.value) };
}

function modState(m: RewardModifier, currency: string): ModState {
  return {
    conds: m.conditions.map((c) => condState(c, currency)),
    match: m.match ?? "all",
    type: m.type,
    amount: m.type === "flat" ? toMajor(m.amount, currency) : bpsToPercent(m.amount),
    duration: m.duration_months === null || m.duration_months === undefined ? "forever" : m.duration_months === 0 ? "first" : "months",
    months: String(m.duration_months || 12),
  };
}

const newCond = (): CondState => ({ field: "country", key: "", op: "in", value: "" });

/** The modifiers of one reward kind: a list of small fieldsets, rebuilt from its state on every
 * structural change (so the paths in the `data-field`s always carry the current indices). */
function modifiersEditor(kind: Kind, initial: RewardModifier[] | undefined, currency: () => string) {
  const base = `rewards.${kind}.modifiers`;
  const titleKind = kind === "sale" ? "Sale" : "Lead";
  let mods: ModState[] = (initial ?? []).map((m) => modState(m, currency()));
  const list = h("div", { class: "modifiers" });
  const add = button("Add modifier", "secondary small", `Add modifier for ${kind}s`);
  const el = h(
    "fieldset",
    { class: "group field modifiers-group", "data-field": base },
    h("legend", null, kind === "sale" ? "Sale modifiers" : "Lead modifiers"),
    h("p", { class: "hint" }, `Other terms for ${kind === "sale" ? "sales" : "leads"} that meet conditions. When several match, the one paying the most wins; when none does, the terms above apply.`),
    list,
    add,
    h("p", { class: "err" }),
  );
  // Controls of the rendered state, read back by collect().
  let controls: { field: HTMLSelectElement; key: HTMLInputElement; op: HTMLSelectElement; value: HTMLInputElement | HTMLSelectElement }[][] = [];
  let terms: { match: HTMLSelectElement; type: HTMLSelectElement; amount: HTMLInputElement; duration: HTMLSelectElement; months: HTMLInputElement }[] = [];

  const collect = () => {
    mods = mods.map((_m, i) => ({
      conds: controls[i].map((c) => ({ field: c.field.value, key: c.key.value, op: c.op.value as Op, value: c.value.value })),
      match: terms[i].match.value as "all" | "any",
      type: terms[i].type.value as "flat" | "percentage",
      amount: terms[i].amount.value,
      duration: terms[i].duration.value as ModState["duration"],
      months: terms[i].months.value,
    }));
  };

  const valueHint = (c: CondState): string => {
    const many = LIST.includes(c.op);
    if (c.field === "country") return many ? "Two-letter codes, comma-separated: DE, AT" : "A two-letter code, e.g. DE";
    if (c.field === "sale_amount") return `${many ? "Amounts, comma-separated, " : "An amount "}in ${currency().toUpperCase()}`;
    if (c.field === "metadata" && (c.op === "gte" || c.op === "lte")) return "A number";
    return many ? "Comma-separated values" : c.field === "product_id" ? "e.g. prod_pro" : "";
  };

  const render = (focusId?: string) => {
    controls = [];
    terms = [];
    clear(
      list,
      mods.map((m, i) => {
        const mp = `${base}[${i}]`;
        const ctl: (typeof controls)[number] = [];
        controls.push(ctl);
        const rows = m.conds.map((c, j) => {
          const cp = `${mp}.conditions[${j}]`;
          const fieldSel = select(FIELDS.filter(([v]) => kind === "sale" || LEAD_FIELDS.includes(v) || v === c.field).map(([v, t]) => [v, t]), c.field);
          const ops = FIELDS.find((f) => f[0] === c.field)?.[2] ?? FIELDS[0][2];
          const op = ops.includes(c.op) ? c.op : ops[0];
          const opSel = select(ops.map((o) => [o, OPS[o]]), op);
          const key = input({ value: c.key, maxlength: 255, placeholder: "plan", class: "short" });
          const value: HTMLInputElement | HTMLSelectElement =
            c.field === "customer_type" ? select([["new", "New (first purchase)"], ["recurring", "Recurring (later purchases)"]], c.value || "new") : input({ value: c.value, placeholder: valueHint({ ...c, op }) });
          for (const [el, id] of [[fieldSel, "field"], [opSel, "op"], [key, "key"], [value, "value"]] as const) el.id = `f-${kind}-m${i}-c${j}-${id}`;
          ctl.push({ field: fieldSel, key, op: opSel, value });
          const rebuild = (ctl: HTMLElement) => () => {
            collect();
            render(ctl.id);
          };
          fieldSel.addEventListener("change", rebuild(fieldSel));
          opSel.addEventListener("change", rebuild(opSel));
          const remove = button("Remove", "secondary small", `Remove condition ${j + 1} of modifier ${i + 1}`);
          remove.addEventListener("click", () => {
            collect();
            mods[i].conds.splice(j, 1);
            render(`f-${kind}-m${i}-add-cond`);
          });
          const meta = c.field === "metadata";
          const where = `${titleKind} modifier ${i + 1}, condition ${j + 1}`;
          const keyField = fieldAt(where, meta ? `${cp}.field` : `${cp}.key`, "Metadata key", key);
          keyField.hidden = !meta;
          return h(
            "div",
            { class: "field cond", "data-field": cp },
            h(
              "div",
              { class: "cond-row" },
              // The field select carries `.field` when no key input is shown; with metadata, the key does.
              fieldAt(where, meta ? `${cp}.field_name` : `${cp}.field`, "Condition", fieldSel),
              keyField,
              fieldAt(where, `${cp}.op`, "Operator", opSel),
              fieldAt(where, `${cp}.value`, "Value", value),
              remove,
            ),
            h("p", { class: "err" }),
          );
        });
        const addCond = button("Add condition", "secondary small", `Add a condition to modifier ${i + 1}`);
        addCond.id = `f-${kind}-m${i}-add-cond`;
        addCond.disabled = m.conds.length >= MAX_CONDITIONS;
        addCond.addEventListener("click", () => {
          collect();
          mods[i].conds.push(newCond());
          render(`f-${kind}-m${i}-c${mods[i].conds.length - 1}-field`);
        });
        const t = {
          match: select([["all", "All conditions match"], ["any", "Any condition matches"]], m.match),
          type: select(kind === "lead" ? [["flat", "Fixed amount"]] : [["percentage", "Percentage of the sale"], ["flat", "Fixed amount per sale"]], m.type),
          amount: input({ inputmode: "decimal", value: m.amount, class: "short" }),
          duration: select([["forever", "For the customer's lifetime"], ["first", "First purchase only"], ["months", "For a number of months"]], m.duration),
          months: input({ inputmode: "numeric", value: m.months, class: "short" }),
        };
        for (const [k, el] of Object.entries(t)) el.id = `f-${kind}-m${i}-${k}`;
        terms.push(t);
        const at = `${titleKind} modifier ${i + 1}`;
        const monthsField = fieldAt(at, `${mp}.duration_months`, "Months", t.months);
        const durationField = fieldAt(at, `${mp}.duration`, "Recurring", t.duration);
        const amountLabel = () => (t.type.value === "flat" ? `Amount (${currency().toUpperCase()})` : "Percentage (%)");
        const amountField = fieldAt(at, `${mp}.amount`, amountLabel(), t.amount);
        const syncTerms = () => {
          amountField.querySelector("label")!.lastChild!.textContent = amountLabel();
          monthsField.hidden = t.duration.value !== "months";
        };
        t.type.addEventListener("change", syncTerms);
        t.duration.addEventListener("change", syncTerms);
        const removeMod = button("Remove modifier", "secondary small", `Remove modifier ${i + 1}`);
        removeMod.addEventListener("click", () => {
          collect();
          mods.splice(i, 1);
          render(add.id);
        });
        const fs = h(
          "fieldset",
          { class: "group field modifier", "data-field": mp },
          h("legend", null, `Modifier ${i + 1}`),
          h("div", { class: "conds", "data-field": `${mp}.conditions` }, h("p", { class: "cond-when" }, "When"), rows, h("p", { class: "err" })),
          h("div", { class: "cond-actions" }, addCond, fieldAt(at, `${mp}.match`, "Apply when", t.match)),
          h("div", { class: "cond-row terms" }, h("p", { class: "cond-when" }, "Pay"), kind === "sale" ? fieldAt(at, `${mp}.type`, "Commission", t.type) : null, amountField, kind === "sale" ? durationField : null, kind === "sale" ? monthsField : null),
          h("div", { class: "actions" }, removeMod),
          h("p", { class: "err" }),
        );
        syncTerms();
        return fs;
      }),
    );
    add.disabled = mods.length >= MAX_MODIFIERS;
    if (focusId) document.getElementById(focusId)?.focus();
  };
  add.id = `f-${kind}-add-modifier`;
  add.addEventListener("click", () => {
    collect();
    mods.push({ conds: [newCond()], match: "all", type: kind === "lead" ? "flat" : "percentage", amount: "", duration: "forever", months: "12" });
    render(`f-${kind}-m${mods.length - 1}-c0-field`);
  });
  render();

  const read = (problems: Problems): RewardModifier[] => {
    collect();
    const c = currency();
    return mods.map((m, i) => {
      const mp = `${base}[${i}]`;
      if (!m.conds.length) problems.push([`${mp}.conditions`, "Add at least one condition, or remove the modifier."]);
      const conditions = m.conds.map((cs, j): RewardCondition => {
        const cp = `${mp}.conditions[${j}]`;
        const fieldName = cs.field === "metadata" ? `metadata.${cs.key.trim()}` : cs.field;
        if (cs.field === "metadata" && !cs.key.trim()) problems.push([`${cp}.field`, "Enter the metadata key."]);
        const many = LIST.includes(cs.op);
        const texts = many ? cs.value.split(",").map((s) => s.trim()).filter(Boolean) : [cs.value.trim()].filter(Boolean);
        if (!texts.length) {
          problems.push([`${cp}.value`, many ? "Enter one or more values, comma-separated." : "Enter a value."]);
          return { field: fieldName, op: cs.op, value: many ? [] : "" };
        }
        let values: (string | number)[] = texts;
        if (cs.field === "sale_amount") {
          values = texts.map((t) => parseMajor(t, c) ?? NaN);
          if (values.some((v) => Number.isNaN(v))) problems.push([`${cp}.value`, moneyProblem(c, "The sale amount")]);
        } else if (cs.field === "metadata" && (cs.op === "gte" || cs.op === "lte")) {
          values = texts.map((t) => (/^-?\d+(\.\d+)?$/.test(t) ? Number(t) : NaN));
          if (values.some((v) => Number.isNaN(v))) problems.push([`${cp}.value`, "Enter a number, like 3 or 2.5."]);
        } else if (cs.field === "country") {
          values = texts.map((t) => t.toUpperCase());
          if (values.some((v) => !/^[A-Z]{2}$/.test(String(v)))) problems.push([`${cp}.value`, "Use two-letter country codes, like DE."]);
        }
        return { field: fieldName, op: cs.op, value: many ? values : values[0] };
      });
      let amount = 0;
      if (m.type === "flat") {
        const v = parseMajor(m.amount, c);
        if (v === null) problems.push([`${mp}.amount`, moneyProblem(c, "The amount")]);
        amount = v ?? 0;
      } else {
        const v = parsePercent(m.amount);
        if (v === null) problems.push([`${mp}.amount`, "The percentage must be from 0 to 100, with at most two decimals."]);
        amount = v ?? 0;
      }
      const mod: RewardModifier = { conditions, match: m.match, type: m.type, amount };
      if (kind === "sale") {
        if (m.duration === "first") mod.duration_months = 0;
        if (m.duration === "months") {
          const v = m.months.trim();
          if (!/^\d+$/.test(v) || Number(v) > 120) problems.push([`${mp}.duration_months`, "Months must be a whole number from 0 to 120."]);
          mod.duration_months = Number(v);
        }
      }
      return mod;
    });
  };
  return { el, read, rerender: () => (collect(), render()) };
}

// ---- the editor ----------------------------------------------------------------------------

export interface RewardsEditor {
  /** The controls, to place in the form's "Commission rules" fieldset. */
  el: HTMLElement[];
  /** Labels and hints after a change (of the currency, of a select). */
  sync(): void;
  /** Override mode: what the "Same as …" options name (a partner's group changed). */
  setInherits(lead: string, sale: string): void;
  /** The rewards to send; problems found are pushed. Override mode: `null` when every kind is
   * inherited (the API's "no override"). */
  read(problems: Problems): Rewards | null;
}

/**
 * `program`: the program's rewards (a lead reward on or off, a sale reward or none).
 * `override`: a group's or a partner's terms, each kind either inherited (`inherits` says from
 * whom: "the program's") or its own.
 */
export function rewardsEditor(o: { value: Rewards | null | undefined; currency: () => string; mode: "program" | "override"; isNew?: boolean; inherits?: { lead: string; sale: string } }): RewardsEditor {
  const cur0 = o.currency();
  const v = o.value ?? null;
  const program = o.mode === "program";
  const defaults = program && o.isNew;
  const lead = v?.lead ?? null;
  const sale = v?.sale ?? null;
  const f = {
    lead_on: h("input", { type: "checkbox", checked: defaults || !!lead }),
    lead_mode: select([["inherit", `Same as ${o.inherits?.lead ?? "the program"}`], ["flat", "Own amount per lead"]], lead ? "flat" : "inherit"),
    lead_amount: input({ inputmode: "decimal", value: lead ? toMajor(lead.amount, cur0) : defaults ? "5.00" : "", class: "short" }),
    sale_type: select(
      program ? [["percentage", "Percentage of the sale"], ["flat", "Fixed amount per sale"], ["none", "No sale reward"]] : [["inherit", `Same as ${o.inherits?.sale ?? "the program"}`], ["percentage", "Percentage of the sale"], ["flat", "Fixed amount per sale"]],
      sale?.type ?? (defaults ? "percentage" : program ? "none" : "inherit"),
    ),
    sale_amount: input({ inputmode: "decimal", class: "short", value: sale ? (sale.type === "flat" ? toMajor(sale.amount, cur0) : bpsToPercent(sale.amount)) : "20" }),
    sale_duration: select(
      [["forever", "For the customer's lifetime"], ["first", "First purchase only"], ["months", "For a number of months"]],
      sale ? (sale.duration_months === null || sale.duration_months === undefined ? "forever" : sale.duration_months === 0 ? "first" : "months") : "months",
    ),
    sale_months: input({ inputmode: "numeric", value: String(sale?.duration_months || 12), class: "short" }),
    max_amount: input({ inputmode: "decimal", class: "short", value: sale?.max_amount_per_customer ? toMajor(sale.max_amount_per_customer, cur0) : "" }),
    max_sales: input({ inputmode: "numeric", class: "short", value: sale?.max_sales_per_customer ? String(sale.max_sales_per_customer) : "" }),
  };
  const leadMods = modifiersEditor("lead", lead?.modifiers, o.currency);
  const saleMods = modifiersEditor("sale", sale?.modifiers, o.currency);
  const leadToggle = program
    ? h("div", { class: "field check", "data-field": "rewards.lead" }, h("label", null, f.lead_on, " Reward each lead (sign-up)"), h("p", { class: "err" }))
    : field("rewards.lead", "Lead reward", f.lead_mode);
  const leadAmountField = field("rewards.lead.amount", "Amount per lead", f.lead_amount, moneyHint(cur0));
  const saleAmountField = field("rewards.sale.amount", "Amount", f.sale_amount, " ");
  const durationField = field("rewards.sale.duration", "Recurring", f.sale_duration);
  const monthsField = field("rewards.sale.duration_months", "Months after the first purchase", f.sale_months, "0 to 120");
  const maxAmountField = field("rewards.sale.max_amount_per_customer", "Max commission per customer", f.max_amount, " ");
  const maxSalesField = field("rewards.sale.max_sales_per_customer", "Max commissioned sales per customer", f.max_sales, "Optional: later sales of the customer earn nothing.");
  const caps = h("div", { class: "caps" }, maxAmountField, maxSalesField);
  const leadBlock = h("div", { class: "reward-kind" }, leadAmountField, leadMods.el);
  const saleBlock = h("div", { class: "reward-kind" }, saleAmountField, durationField, monthsField, caps, saleMods.el);
  let lastCurrency = cur0;

  const leadOn = () => (program ? f.lead_on.checked : f.lead_mode.value === "flat");
  const saleOn = () => f.sale_type.value === "percentage" || f.sale_type.value === "flat";
  const sync = () => {
    const c = o.currency();
    const hint = (el: HTMLElement) => document.getElementById(`${el.id}-hint`);
    const lh = hint(f.lead_amount);
    if (lh) lh.textContent = moneyHint(c);
    const ch = hint(f.max_amount);
    if (ch) ch.textContent = `Optional, in ${c.toUpperCase()}: the most one customer can earn the partner in total.`;
    f.lead_amount.disabled = !leadOn();
    leadBlock.hidden = !program && !leadOn();
    leadMods.el.hidden = !leadOn();
    saleBlock.hidden = !saleOn();
    monthsField.hidden = f.sale_duration.value !== "months";
    saleAmountField.querySelector("label")!.textContent = f.sale_type.value === "flat" ? "Amount per sale" : "Percentage of the sale (%)";
    const sh = hint(f.sale_amount);
    if (sh) sh.textContent = f.sale_type.value === "flat" ? moneyHint(c) : "Up to two decimals, e.g. 20 or 12.5.";
    if (c !== lastCurrency) {
      lastCurrency = c;
      leadMods.rerender();
      saleMods.rerender();
    }
  };
  for (const el of Object.values(f)) {
    el.addEventListener("change", sync);
    el.addEventListener("input", sync);
  }

  const read = (problems: Problems): Rewards | null => {
    const c = o.currency();
    const money = (el: HTMLInputElement, name: string, label: string): number => {
      const m = parseMajor(el.value, c);
      if (m === null) problems.push([name, moneyProblem(c, label)]);
      return m ?? 0;
    };
    const rewards: Rewards = {};
    if (leadOn()) {
      const r: Reward = { type: "flat", amount: money(f.lead_amount, "rewards.lead.amount", "Amount per lead") };
      const mods = leadMods.read(problems);
      if (mods.length) r.modifiers = mods;
      rewards.lead = r;
    }
    if (saleOn()) {
      const flat = f.sale_type.value === "flat";
      let amount = 0;
      if (flat) amount = money(f.sale_amount, "rewards.sale.amount", "Amount per sale");
      else {
        const bps = parsePercent(f.sale_amount.value);
        if (bps === null) problems.push(["rewards.sale.amount", "The percentage must be from 0 to 100, with at most two decimals."]);
        amount = bps ?? 0;
      }
      const r: Reward = { type: flat ? "flat" : "percentage", amount };
      if (f.sale_duration.value === "first") r.duration_months = 0;
      if (f.sale_duration.value === "months") {
        const m = f.sale_months.value.trim();
        if (!/^\d+$/.test(m) || Number(m) > 120) problems.push(["rewards.sale.duration_months", "Months must be a whole number from 0 to 120."]);
        r.duration_months = Number(m);
      }
      if (f.max_amount.value.trim()) {
        const m = parseMajor(f.max_amount.value, c);
        if (m === null || m < 1) problems.push(["rewards.sale.max_amount_per_customer", moneyProblem(c, "Max commission per customer")]);
        r.max_amount_per_customer = m ?? 0;
      }
      if (f.max_sales.value.trim()) {
        const m = f.max_sales.value.trim();
        if (!/^\d{1,10}$/.test(m) || Number(m) < 1 || Number(m) > 4294967295) problems.push(["rewards.sale.max_sales_per_customer", "Max commissioned sales per customer must be a whole number, 1 or more."]);
        r.max_sales_per_customer = Number(m);
      }
      const mods = saleMods.read(problems);
      if (mods.length) r.modifiers = mods;
      rewards.sale = r;
    }
    if (!program && !rewards.lead && !rewards.sale) return null;
    return rewards;
  };

  const setInherits = (lead: string, sale: string) => {
    const l = f.lead_mode.querySelector<HTMLOptionElement>('option[value="inherit"]');
    const s = f.sale_type.querySelector<HTMLOptionElement>('option[value="inherit"]');
    if (l) l.textContent = `Same as ${lead}`;
    if (s) s.textContent = `Same as ${sale}`;
  };

  return {
    setInherits,
    el: [leadToggle, leadBlock, field("rewards.sale.type", "Sale reward", f.sale_type), saleBlock],
    sync,
    read,
  };
}
