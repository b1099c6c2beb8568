// CSV export buttons (commissions, payouts, partners) and the partner import with its dry-run
// report (issue 17). The API key travels in a header, so a download is fetch + Blob, not a link.
import { ApiError } from "../shared/api";
import { announce, clear, h } from "../shared/dom";
import type { Program } from "../shared/types";
import type { Ctx } from "./ctx";
import { live, statusBadge, table } from "./ui";

/** An "Export CSV" button: downloads `path()` (the page's current filters) as a file. */
export function exportButton(ctx: Ctx, what: string, path: () => string): HTMLButtonElement {
  const b = h("button", { type: "button", class: "secondary small export", "aria-label": `Export CSV of ${what}` }, "Export CSV");
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      const res = await ctx.raw!(path());
      const name = /filename="([^"]+)"/.exec(res.headers.get("content-disposition") ?? "")?.[1] ?? `${what}.csv`;
      const url = URL.createObjectURL(await res.blob());
      const a = h("a", { href: url, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
      const more = res.headers.get("refport-next-cursor") ? " (the first 100,000 rows; export again from the API to continue)" : "";
      announce(live(), `Downloaded ${name}${more}.`);
    } catch (e) {
      announce(live(), e instanceof Error ? e.message : String(e));
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

interface ImportRow {
  row: number;
  email: string;
  result: "created" | "updated" | "error";
  partner_id?: string;
  changes?: string[];
  error?: { code: string; message: string; field: string };
}
interface ImportReport {
  dry_run: boolean;
  summary: { created: number; updated: number; errors: number; invited?: number; emails_sent?: number };
  rows: ImportRow[];
}

const REPORT_ROWS = 500;

function report(r: ImportReport): HTMLElement {
  const s = r.summary;
  const verb = r.dry_run ? ["would be created", "would be updated", "have errors and would be skipped"] : ["created", "updated", "had errors and were skipped"];
  const shown = [...r.rows.filter((x) => x.result === "error"), ...r.rows.filter((x) => x.result !== "error")].slice(0, REPORT_ROWS);
  return h(
    "div",
    { id: "import-report" },
    h(
      "p",
      { class: "import-summary" },
      `${s.created} ${s.created === 1 ? "partner" : "partners"} ${verb[0]}, ${s.updated} ${verb[1]}, ${s.errors} ${s.errors === 1 ? "row" : "rows"} ${verb[2]}.`,
      s.invited ? ` ${s.invited} invited (${s.emails_sent ?? 0} emails sent).` : "",
    ),
    shown.length
      ? table<ImportRow>(
          "Import report",
          [
            { title: "Row", num: true, cell: (x) => String(x.row) },
            { title: "Email", cell: (x) => x.email },
            { title: "Result", cell: (x) => (x.result === "error" ? h("span", { class: "badge failed" }, "Error") : statusBadge(x.result)) },
            {
              title: "Details",
              cell: (x) =>
                x.error
                  ? [h("strong", null, x.error.field ? `${x.error.field}: ` : ""), x.error.message]
                  : x.changes?.length
                    ? `${x.result === "updated" ? "Changes: " : "With: "}${x.changes.join(", ").replace("link", "new link").replace("coupon_code", "new coupon code")}`
                    : h("span", { class: "muted" }, x.result === "updated" ? "Already up to date" : "—"),
            },
          ],
          shown,
          (x) => ({ "data-row": String(x.row), "data-result": x.result }),
        )
      : null,
    r.rows.length > shown.length ? h("p", { class: "muted" }, `Errors first; ${r.rows.length - shown.length} more rows not shown.`) : null,
  );
}

/** "Import from a CSV file" (the partner import): choose a CSV file, see what each row would do (a dry run), then confirm. */
export function importPanel(ctx: Ctx, program: Program, onImported: () => void): HTMLElement {
  const file = h("input", { type: "file", id: "import-file", accept: ".csv,text/csv" });
  const invite = h("input", { type: "checkbox", id: "import-invite" });
  const check = h("button", { type: "submit" }, "Check file");
  const out = h("div", { id: "import-result", "aria-live": "polite" });
  const msg = h("div", { class: "alert", role: "alert" });
  let text = "";
  const run = (dry: boolean) =>
    ctx.raw!(`/api/v1/programs/${program.id}/partners/import?dry_run=${dry}${invite.checked ? "&invite=true" : ""}`, "POST", text).then(
      (r) => r.json() as Promise<ImportReport>,
    );
  const fail = (e: unknown) => {
    msg.className = "alert error";
    clear(msg, e instanceof ApiError || e instanceof Error ? e.message : String(e));
  };
  const form = h(
    "form",
    { novalidate: true, "aria-labelledby": "import-title", id: "import-form" },
    h("h2", { id: "import-title" }, "Import from a CSV file"),
    h(
      "p",
      { class: "muted" },
      "A CSV file with a header row: email and name, and optionally link_key, link_url, group_id, coupon_code, country. Partners are matched by email, so importing a file twice creates nobody twice. You see what each row does before anything is saved.",
    ),
    msg,
    h(
      "div",
      { class: "row" },
      h("div", { class: "field" }, h("label", { for: "import-file" }, "CSV file"), file),
      h("div", { class: "field check" }, h("label", null, invite, "Email an invitation to new partners")),
      h("div", { class: "field" }, check),
    ),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(msg);
    msg.className = "alert";
    clear(out);
    const f = file.files?.[0];
    if (!f) return fail(new Error("Choose a CSV file first."));
    check.disabled = true;
    try {
      text = await f.text();
      const dry = await run(true);
      const confirm = h("button", { type: "button", id: "import-confirm" }, `Confirm import`);
      const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
      confirm.disabled = dry.summary.created + dry.summary.updated === 0;
      cancel.addEventListener("click", () => {
        clear(out);
        file.focus();
      });
      confirm.addEventListener("click", async () => {
        confirm.disabled = true;
        cancel.disabled = true;
        try {
          const done = await run(false);
          clear(out, h("div", { class: `alert ${done.summary.errors ? "warn" : "success"}` }, h("h3", { tabindex: -1, id: "import-done" }, "Import finished")), report(done));
          out.querySelector<HTMLElement>("#import-done")?.focus();
          form.reset();
          onImported();
        } catch (err) {
          confirm.disabled = false;
          cancel.disabled = false;
          fail(err);
        }
      });
      clear(out, h("h3", { tabindex: -1, id: "import-preview" }, `Preview of ${f.name}`), report(dry), h("div", { class: "actions" }, confirm, cancel));
      out.querySelector<HTMLElement>("#import-preview")?.focus();
    } catch (err) {
      fail(err);
    } finally {
      check.disabled = false;
    }
  });
  return h("section", { class: "card" }, form, out);
}
