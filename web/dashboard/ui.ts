// Dashboard building blocks: labelled fields with inline errors, an error summary, dialogs,
// copy rows, tables.
import { ApiError } from "../shared/api";
import { announce, clear, h, nextId, type Child } from "../shared/dom";
import { copyText } from "../shared/clipboard";
import { titleCase } from "../shared/format";

export const live = (): HTMLElement => document.getElementById("live")!;

/** A labelled control. `name` is the API field path (e.g. `rewards.sale.amount`) that server
 * errors are matched against. */
export function field(name: string, label: string, control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement, hint?: Child): HTMLElement {
  const id = control.id || `f-${name.replace(/[^a-z0-9_]+/gi, "-")}`;
  control.id = id;
  if (!control.name) control.name = name;
  const hintId = `${id}-hint`;
  const errId = `${id}-err`;
  control.setAttribute("aria-describedby", hint ? `${errId} ${hintId}` : errId);
  return h(
    "div",
    { class: "field", "data-field": name },
    h("label", { for: id }, label),
    control,
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    h("p", { class: "err", id: errId }),
  );
}

/** A group of controls (fieldset) that server errors can also point at. */
export function group(name: string, legend: string, ...children: Child[]): HTMLElement {
  const errId = nextId("err");
  return h("fieldset", { class: "group field", "data-field": name, "aria-describedby": errId }, h("legend", null, legend), children, h("p", { class: "err", id: errId }));
}

/** Maps field paths to their inputs, shows messages next to them and in a summary. */
export class FormErrors {
  constructor(
    private form: HTMLElement,
    private summary: HTMLElement,
  ) {}

  clear(): void {
    for (const el of this.form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    for (const el of this.form.querySelectorAll(".err")) el.textContent = "";
    clear(this.summary);
    this.summary.className = "alert";
  }

  /** The field wrapper for `domains[2]` / `rewards.sale.amount`, trying shorter paths. */
  private wrapper(path: string): HTMLElement | null {
    let p = path;
    for (;;) {
      const el = this.form.querySelector<HTMLElement>(`[data-field="${CSS.escape(p)}"]`);
      if (el) return el;
      const shorter = p.replace(/(\[\d+\]|\.[^.[\]]+)$/, "");
      if (shorter === p) return null;
      p = shorter;
    }
  }

  /** Shows the errors; returns whether any was placed. Focuses the first field in error. */
  show(errors: [string | undefined, string][], intro = "Please correct the following:"): void {
    this.clear();
    const items: HTMLElement[] = [];
    let first: HTMLElement | null = null;
    for (const [path, message] of errors) {
      const w = path ? this.wrapper(path) : null;
      if (w) {
        const err = w.querySelector<HTMLElement>(":scope > .err");
        if (err) err.textContent = err.textContent ? `${err.textContent} ${message}` : message;
        const isGroup = w.matches("fieldset");
        const controls = [...w.querySelectorAll<HTMLElement>("input, select, textarea")].filter((c) => !c.closest("[hidden]"));
        const control = controls[0] ?? null;
        for (const c of isGroup ? controls : controls.slice(0, 1)) c.setAttribute("aria-invalid", "true");
        first ??= control;
        const label = w.querySelector(":scope > label, :scope > legend")?.textContent ?? path;
        const a = h("a", { href: `#${control?.id ?? ""}` }, label);
        a.addEventListener("click", (e) => {
          e.preventDefault();
          control?.focus();
        });
        items.push(h("li", null, a, `: ${message}`));
      } else {
        items.push(h("li", null, message));
      }
    }
    this.summary.className = "alert error";
    clear(this.summary, h("p", null, h("strong", null, intro)), h("ul", null, items));
    first?.focus();
  }

  /** An API error: a 422 with `field` goes next to its input; anything else to the summary. */
  showApi(e: unknown): void {
    if (e instanceof ApiError) {
      // The server's message may repeat the field path ("payout_currency: ..."): it is shown next to the field already.
      const msg = e.field && e.message.startsWith(`${e.field}: `) ? e.message.slice(e.field.length + 2) : e.message;
      this.show([[e.field, msg]], e.status === 422 ? "The server refused a value:" : "The request failed:");
    }
    else this.show([[undefined, String(e)]], "The request failed:");
  }
}

export function statusBadge(status: string): HTMLElement {
  return h("span", { class: `badge ${status}` }, titleCase(status));
}

/** A read-only value with a Copy button. */
export function copyRow(label: string, value: string, opts: { multiline?: boolean; id?: string; copyLabel?: string } = {}): HTMLElement {
  const id = opts.id ?? nextId("copy");
  const control = opts.multiline
    ? h("textarea", { id, readonly: true, rows: 4, spellcheck: "false", class: "mono" })
    : h("input", { id, type: "text", readonly: true, spellcheck: "false" });
  control.value = value;
  // `copyLabel` names the button when a page has several ("Copy platform endpoint URL").
  const btn = h("button", { type: "button", class: "secondary small", "aria-describedby": id, "aria-label": opts.copyLabel ?? null }, "Copy");
  btn.addEventListener("click", async () => {
    if (await copyText(value)) {
      btn.textContent = "Copied";
      announce(live(), `${label} copied.`);
      window.setTimeout(() => (btn.textContent = "Copy"), 2000);
    } else {
      control.focus();
      control.select();
      announce(live(), "Press Control+C to copy the selected text.");
    }
  });
  return h("div", { class: "field" }, h("label", { for: id }, label), h("div", { class: "copy" }, control, btn));
}

export interface Column<T> {
  title: string;
  num?: boolean;
  cell: (row: T) => Child;
}

export function table<T>(caption: string, cols: Column<T>[], rows: T[], rowAttrs?: (row: T) => Record<string, string>): HTMLElement {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      null,
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", null, h("tr", null, cols.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.title)))),
      h(
        "tbody",
        null,
        rows.map((r) => h("tr", rowAttrs?.(r) ?? null, cols.map((c) => h("td", { class: c.num ? "num" : null }, c.cell(r))))),
      ),
    ),
  );
}

export interface DialogOpts {
  title: string;
  body: Child;
  confirm: string;
  danger?: boolean;
  /** An optional text field (e.g. a rejection reason), its API field name and label. */
  input?: { name: string; label: string; maxlength: number; required: boolean };
  onConfirm: (value: string) => Promise<void>;
}

/** Shows `form` (titled by the element `titleId`) in a modal <dialog>: Esc and `cancel` close it,
 * and focus returns to the element that was focused before. Answers the function that closes it. */
export function showModal(form: HTMLFormElement, titleId: string, cancel: HTMLElement, focus: HTMLElement): () => void {
  const opener = document.activeElement as HTMLElement | null;
  const dlg = h("dialog", { "aria-labelledby": titleId }, form);
  const close = () => {
    dlg.close();
    dlg.remove();
    opener?.focus();
  };
  cancel.addEventListener("click", close);
  dlg.addEventListener("cancel", (e) => {
    e.preventDefault();
    close();
  });
  document.body.appendChild(dlg);
  dlg.showModal();
  focus.focus();
  return close;
}

/** A modal <dialog>: keyboard-native (Esc closes, focus stays inside), focus returns to the
 * element that opened it. Server errors stay inside the dialog. */
export function openDialog(o: DialogOpts): void {
  const titleId = nextId("dlg");
  const summary = h("div", { class: "alert", role: "alert" });
  const input = o.input ? h("textarea", { rows: 3, maxlength: o.input.maxlength, required: o.input.required }) : null;
  const confirm = h("button", { type: "submit", class: o.danger ? "danger" : null }, o.confirm);
  const cancel = h("button", { type: "button", class: "secondary", value: "cancel" }, "Cancel");
  const form = h(
    "form",
    { method: "dialog", novalidate: true },
    h("h2", { id: titleId }, o.title),
    h("div", { class: "dialog-body" }, o.body),
    summary,
    input && o.input ? field(o.input.name, o.input.label, input) : null,
    h("div", { class: "actions" }, confirm, cancel),
  );
  const errors = new FormErrors(form, summary);
  const close = showModal(form, titleId, cancel, input ?? confirm);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = input?.value.trim() ?? "";
    if (o.input?.required && !value) return errors.show([[o.input.name, `${o.input.label} is required.`]]);
    confirm.disabled = true;
    try {
      await o.onConfirm(value);
      close();
    } catch (err) {
      errors.showApi(err);
    } finally {
      confirm.disabled = false;
    }
  });
}

export function loadMore(label: string, next: () => Promise<void>): HTMLElement {
  const b = h("button", { type: "button", class: "secondary small more" }, label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await next();
    } catch (e) {
      b.disabled = false;
      announce(live(), e instanceof Error ? e.message : String(e));
    }
  });
  return b;
}
