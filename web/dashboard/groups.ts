// Partner groups (issue 16): a program's groups with their terms (rewards per kind, minimum
// payout, hold period), between the program's and a partner's own. List, create, edit, delete.
import type { List } from "../shared/api";
import { announce, clear, h } from "../shared/dom";
import { decimals, formatMoney, parseMajor, toMajor } from "../shared/money";
import type { Group, Program } from "../shared/types";
import type { Ctx } from "./ctx";
import { moneyHint, rewardsEditor, rewardText } from "./rewards";
import { field, FormErrors, group, live, openDialog, table } from "./ui";

export async function programGroups(ctx: Ctx, programId: string): Promise<Group[]> {
  return (await ctx.call<List<Group>>(`/api/v1/programs/${encodeURIComponent(programId)}/groups`)).data;
}

/** Per kind, the group's own reward in words or "the program's". */
function kindsText(g: Group, currency: string): [string, string, boolean][] {
  return (["sale", "lead"] as const).map((k) => {
    const r = g.rewards?.[k];
    return [k === "sale" ? "Sales" : "Leads", r ? rewardText(r, currency, k) : "the program's", !!r];
  });
}

export async function groupsTab(ctx: Ctx, program: Program, host: HTMLElement): Promise<void> {
  const cur = program.payout_currency;
  const money = (n: number) => formatMoney(n, cur);
  let rows = await programGroups(ctx, program.id);
  const listHost = h("div", { id: "groups-list" });
  const editHost = h("div", { id: "group-editor" });
  const newBtn = h("button", { type: "button", id: "new-group" }, "New group");

  const remove = (g: Group) =>
    openDialog({
      title: `Delete the group ${g.name}?`,
      body: h("p", null, g.partners ? `${g.partners} ${g.partners === 1 ? "partner is" : "partners are"} in this group: move them to another group (or to none) first.` : "Its terms are removed. No partner is in it."),
      confirm: "Delete group",
      danger: true,
      onConfirm: async () => {
        await ctx.call(`/api/v1/groups/${g.id}`, "DELETE");
        rows = rows.filter((r) => r.id !== g.id);
        draw();
        announce(live(), `Group ${g.name} deleted.`);
      },
    });

  const draw = () =>
    clear(
      listHost,
      rows.length
        ? table<Group>(
            "Partner groups",
            [
              { title: "Group", cell: (g) => h("strong", null, g.name) },
              { title: "Partners", num: true, cell: (g) => g.partners.toLocaleString() },
              { title: "Rewards", cell: (g) => kindsText(g, cur).map(([k, text, own]) => h("div", { class: own ? null : "muted" }, h("strong", null, `${k}: `), text)) },
              { title: "Minimum payout", num: true, cell: (g) => (g.min_payout === null ? h("span", { class: "muted" }, `The program's (${money(program.min_payout)})`) : money(g.min_payout)) },
              { title: "Hold period", num: true, cell: (g) => (g.hold_days === null ? h("span", { class: "muted" }, `The program's (${program.hold_days} days)`) : `${g.hold_days} ${g.hold_days === 1 ? "day" : "days"}`) },
              {
                title: "Actions",
                cell: (g) => {
                  const e = h("button", { type: "button", class: "secondary small", "aria-label": `Edit ${g.name}` }, "Edit");
                  e.addEventListener("click", () => edit(g));
                  const d = h("button", { type: "button", class: "danger small", "aria-label": `Delete ${g.name}` }, "Delete");
                  d.addEventListener("click", () => remove(g));
                  return h("div", { class: "actions-cell" }, e, d);
                },
              },
            ],
            rows,
            (g) => ({ "data-id": g.id, "data-name": g.name }),
          )
        : h("p", { class: "empty" }, "No groups yet. A group gives its partners other terms than the program's, e.g. a higher commission for your best partners."),
    );

  const edit = (existing?: Group) => {
    const g = existing;
    const name = h("input", { type: "text", autocomplete: "off", maxlength: 100, value: g?.name ?? "" });
    const minPayout = h("input", { type: "text", inputmode: "decimal", autocomplete: "off", class: "short", value: g?.min_payout === null || g?.min_payout === undefined ? "" : toMajor(g.min_payout, cur) });
    const holdDays = h("input", { type: "text", inputmode: "numeric", autocomplete: "off", class: "short", value: g?.hold_days === null || g?.hold_days === undefined ? "" : String(g.hold_days) });
    const ed = rewardsEditor({ value: g?.rewards, currency: () => cur, mode: "override", inherits: { lead: "the program's", sale: "the program's" } });
    const summary = h("div", { class: "alert", role: "alert" });
    const save = h("button", { type: "submit" }, g ? "Save group" : "Create group");
    const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
    const titleId = "group-form-title";
    const form = h(
      "form",
      { novalidate: true, class: "card group-form", "aria-labelledby": titleId, id: "group-form" },
      h("h2", { id: titleId, tabindex: -1 }, g ? `Edit ${g.name}` : "New group"),
      summary,
      h(
        "div",
        { class: "form-grid" },
        group(
          "group_terms",
          "Group",
          h(
            "div",
            { class: "group-fields" },
            field("name", "Group name", name, "Unique in the program, e.g. Gold."),
            field("min_payout", "Minimum payout", minPayout, `Empty: the program's (${money(program.min_payout)}). ${moneyHint(cur)}`),
            field("hold_days", "Hold period (days)", holdDays, `Empty: the program's (${program.hold_days} days). 0 to 365.`),
          ),
        ),
        group("rewards", "Commission rules", h("p", { class: "hint" }, "Per kind: the program's reward, or the group's own."), ed.el),
      ),
      h("div", { class: "actions" }, save, cancel),
    );
    const errors = new FormErrors(form, summary);
    cancel.addEventListener("click", () => {
      clear(editHost);
      (g ? listHost.querySelector<HTMLElement>(`tr[data-id="${g.id}"] button`) : newBtn)?.focus();
    });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const problems: [string, string][] = [];
      const n = name.value.trim();
      if (!n) problems.push(["name", "Enter a group name."]);
      let min_payout: number | null = null;
      if (minPayout.value.trim()) {
        min_payout = parseMajor(minPayout.value, cur);
        if (min_payout === null) problems.push(["min_payout", `Minimum payout must be an amount like ${decimals(cur) ? "25.00" : "2500"}, or empty.`]);
      }
      let hold_days: number | null = null;
      if (holdDays.value.trim()) {
        hold_days = Number(holdDays.value.trim());
        if (!/^\d+$/.test(holdDays.value.trim()) || hold_days > 365) problems.push(["hold_days", "Hold period must be a whole number from 0 to 365, or empty."]);
      }
      const rewards = ed.read(problems);
      if (problems.length) return errors.show(problems);
      save.disabled = true;
      errors.clear();
      try {
        const body = { name: n, min_payout, hold_days, rewards };
        const saved = g ? await ctx.call<Group>(`/api/v1/groups/${g.id}`, "PATCH", body) : await ctx.call<Group>(`/api/v1/programs/${program.id}/groups`, "POST", body);
        rows = g ? rows.map((r) => (r.id === saved.id ? saved : r)) : [...rows, saved].sort((a, b) => a.name.localeCompare(b.name));
        draw();
        clear(editHost);
        announce(live(), g ? `Group ${saved.name} saved.` : `Group ${saved.name} created.`);
        listHost.querySelector<HTMLElement>(`tr[data-id="${saved.id}"] button`)?.focus();
      } catch (err) {
        errors.showApi(err);
      } finally {
        save.disabled = false;
      }
    });
    form.addEventListener("change", ed.sync);
    clear(editHost, form);
    ed.sync();
    form.querySelector<HTMLElement>("h2")?.focus();
  };
  newBtn.addEventListener("click", () => edit());

  draw();
  clear(
    host,
    h(
      "section",
      { class: "card", "aria-labelledby": "groups-title" },
      h("div", { class: "section-head" }, h("h2", { id: "groups-title" }, "Partner groups"), newBtn),
      h("p", { class: "muted" }, "A group's terms apply to its partners instead of the program's. A partner's own terms win over its group's. Assign partners to a group on their page."),
      listHost,
    ),
    editHost,
  );
}

/** `#/groups` (main navigation): the groups of one program, picked from a select when there are
 * several (`#/groups?program=prog_…` keeps the choice in the address). */
export async function groupsPage(ctx: Ctx, programId?: string): Promise<void> {
  const programs = (await ctx.call<List<Program>>("/api/v1/programs?limit=100")).data;
  // A program past the first page, named in the address: fetched on its own.
  if (programId && !programs.some((p) => p.id === programId)) programs.unshift(await ctx.call<Program>(`/api/v1/programs/${encodeURIComponent(programId)}`));
  const program = programs.find((p) => p.id === programId) ?? programs[0];
  const body = h("div", { id: "tab" });
  const pick = h("select", { id: "groups-program" }, programs.map((p) => h("option", { value: p.id, selected: p.id === program?.id }, p.name)));
  pick.addEventListener("change", () => ctx.go(`#/groups?program=${encodeURIComponent(pick.value)}`));
  clear(
    ctx.main,
    h("h1", { tabindex: -1 }, "Groups"),
    programs.length ? h("div", { class: "row filters" }, field("program", "Program", pick)) : null,
    body,
  );
  if (!program) return void clear(body, h("p", { class: "empty" }, "No programs yet. ", h("a", { href: "#/programs/new" }, "Create one"), " first."));
  document.title = `Groups · ${program.name} — Refport dashboard`;
  await groupsTab(ctx, program, body);
}
