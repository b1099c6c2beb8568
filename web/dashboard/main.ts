// The merchant dashboard: sign in with an API key (kept in sessionStorage, sent as Bearer),
// then hash-routed views over the JSON API.
import { ApiError } from "../shared/api";
import { $, announce, clear, h } from "../shared/dom";
import type { Program } from "../shared/types";
import { analytics } from "./analytics";
import { commissionsTab } from "./commissions";
import { makeCall, makeRaw, type Ctx } from "./ctx";
import { heldCount, reviewTab } from "./fraud";
import { groupsPage, groupsTab } from "./groups";
import { integrationsPage } from "./integrations";
import { partnerPage } from "./partner";
import { partnersTab } from "./partners";
import { payoutsTab } from "./payouts";
import { newProgram, programForm, programOverview, programsList } from "./programs";
import { field, FormErrors, live } from "./ui";

const KEY = "refport.apiKey";
const main = $("#main");
const nav = $("#nav");
const signout = $<HTMLButtonElement>("#signout");
let flash: string | null = null;
let signinNotice: string | null = null;

function signOut(notice?: string): void {
  sessionStorage.removeItem(KEY);
  signinNotice = notice ?? null;
  if (location.hash && location.hash !== "#/") location.hash = "#/";
  else void route();
}

function ctx(key: string): Ctx {
  return {
    main,
    call: makeCall(key, () => signOut("Your API key was refused. Sign in again.")),
    raw: makeRaw(key, () => signOut("Your API key was refused. Sign in again.")),
    go(hash, message) {
      flash = message ?? null;
      if (location.hash === hash) void route();
      else location.hash = hash;
    },
  };
}

function signIn(): void {
  nav.hidden = true;
  signout.hidden = true;
  document.title = "Sign in — Refport dashboard";
  const key = h("input", { type: "password", autocomplete: "off", spellcheck: "false" });
  const summary = h("div", { class: "alert", role: "alert" });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { novalidate: true, class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title", tabindex: -1 }, "Sign in"),
    signinNotice ? h("div", { class: "alert info", role: "status" }, signinNotice) : null,
    summary,
    field("api_key", "API key", key, "A secret key (rp_live_…) with read and write permissions. It stays in this browser tab only."),
    submit,
  );
  signinNotice = null;
  const errors = new FormErrors(form, summary);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const k = key.value.trim();
    if (!k) return errors.show([["api_key", "Enter your API key."]]);
    submit.disabled = true;
    try {
      await makeCall(k, () => {})("/api/v1/programs?limit=1");
      sessionStorage.setItem(KEY, k);
      flash = null;
      // Stay on the page the merchant opened (a bookmarked #/integrations), else the programs.
      if (location.hash.startsWith("#/programs") || location.hash.startsWith("#/integrations") || location.hash.startsWith("#/groups")) void route();
      else location.hash = "#/programs";
    } catch (err) {
      const msg = err instanceof ApiError && err.status === 401 ? "This API key is not valid." : err instanceof ApiError && err.status === 403 ? "This key cannot read programs; use a key with read and write permissions." : String(err instanceof Error ? err.message : err);
      errors.show([["api_key", msg]], "Could not sign in:");
    } finally {
      submit.disabled = false;
    }
  });
  clear(main, form);
  main.setAttribute("aria-busy", "false");
  key.focus();
}

const TABS: [string, string][] = [
  ["", "Overview"],
  ["partners", "Partners"],
  ["groups", "Groups"],
  ["commissions", "Commissions"],
  ["review", "Needs review"],
  ["payouts", "Payouts"],
  ["settings", "Settings"],
];

/** The Needs review tab's count badge (hidden at zero); the link's name says it in words. */
function setCount(link: HTMLElement, n: string): void {
  const badge = link.querySelector<HTMLElement>(".count")!;
  badge.textContent = n;
  badge.hidden = !n;
  // The name starts with the visible text ("Needs review 3"), then says what the number counts.
  link.setAttribute("aria-label", n ? `Needs review ${n} (${n === "1" ? "commission" : "commissions"} held)` : "Needs review");
}

async function programPage(c: Ctx, id: string, tab: string, sub: string | undefined, search: URLSearchParams): Promise<void> {
  // The held count only decorates a tab: a failure to read it must not break the page.
  const [program, held] = await Promise.all([c.call<Program>(`/api/v1/programs/${encodeURIComponent(id)}`), heldCount(c, id).catch(() => "")]);
  const label = TABS.find((t) => t[0] === tab)?.[1] ?? "Overview";
  document.title = `${label} · ${program.name} — Refport dashboard`;
  const body = h("div", { id: "tab" });
  clear(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/programs" }, "Programs"), " / "),
    h("h1", { tabindex: -1 }, program.name),
    h("p", { class: "muted" }, "Program ID ", h("code", { id: "program-id-text" }, program.id)),
    h(
      "nav",
      { class: "tabs", "aria-label": "Program sections" },
      TABS.map(([t, text]) => h("a", { href: `#/programs/${program.id}${t ? `/${t}` : ""}`, "aria-current": t === tab ? "page" : null, id: `tab-${t || "overview"}` }, text, t === "review" ? [" ", h("span", { class: "count" })] : null)),
    ),
    body,
  );
  const reviewLink = $("#tab-review", main);
  setCount(reviewLink, held);
  let count = held;
  c = {
    ...c,
    held(delta) {
      if (count.endsWith("+")) return void heldCount(c, program.id).then((n) => setCount(reviewLink, (count = n)), () => {});
      const n = Math.max(0, Number(count || 0) + delta);
      setCount(reviewLink, (count = n ? String(n) : ""));
    },
  };
  if (tab === "") {
    const notice = held ? h("div", { class: "alert info review-notice" }, `${held} ${held === "1" ? "commission is" : "commissions are"} held by a fraud rule and ${held === "1" ? "waits" : "wait"} for your decision. `, h("a", { href: `#/programs/${program.id}/review` }, "Review them")) : null;
    const perf = h("div", { id: "overview-analytics" });
    clear(body, notice, h("div", { class: "stack" }, perf, programOverview(program)));
    await analytics(c, program, perf, `#/programs/${program.id}`, search);
  }
  else if (tab === "partners" && sub) await partnerPage(c, program, sub, body, search);
  else if (tab === "partners") await partnersTab(c, program, body);
  else if (tab === "groups") await groupsTab(c, program, body);
  else if (tab === "commissions") await commissionsTab(c, program, body);
  else if (tab === "review") await reviewTab(c, program, body);
  else if (tab === "payouts") await payoutsTab(c, program, body);
  else if (tab === "settings") clear(body, h("section", { class: "card", "aria-labelledby": "settings-title" }, h("h2", { id: "settings-title" }, "Settings"), programForm(c, program)));
  else throw new ApiError(404, "not_found", "No such page.");
}

let routing = 0;
async function route(): Promise<void> {
  const key = sessionStorage.getItem(KEY);
  if (!key) return signIn();
  nav.hidden = false;
  signout.hidden = false;
  const c = ctx(key);
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  // The main navigation marks its section (Programs for the programs and their pages).
  const section = parts[0] === "integrations" || parts[0] === "groups" ? parts[0] : "programs";
  for (const a of nav.querySelectorAll("a")) {
    if (a.dataset.section === section) a.setAttribute("aria-current", parts.length <= 1 ? "page" : "true");
    else a.removeAttribute("aria-current");
  }
  const mine = ++routing;
  main.setAttribute("aria-busy", "true");
  const message = flash;
  flash = null;
  try {
    if (parts.length === 0 || (parts[0] === "programs" && parts.length === 1)) {
      document.title = "Programs — Refport dashboard";
      await programsList(c);
    } else if (parts[0] === "programs" && parts[1] === "new") {
      document.title = "New program — Refport dashboard";
      newProgram(c);
    } else if (parts[0] === "programs") {
      await programPage(c, parts[1], parts[2] ?? "", parts[3], new URLSearchParams(search ?? ""));
    } else if (parts[0] === "groups" && parts.length === 1) {
      document.title = "Groups — Refport dashboard";
      await groupsPage(c, new URLSearchParams(search ?? "").get("program") ?? undefined);
    } else if (parts[0] === "integrations" && parts.length === 1) {
      document.title = "Integrations — Refport dashboard";
      await integrationsPage(c);
    } else {
      throw new ApiError(404, "not_found", "No such page.");
    }
  } catch (e) {
    if (mine !== routing) return;
    if (e instanceof ApiError && e.status === 401) return;
    clear(main, h("h1", { tabindex: -1 }, e instanceof ApiError && e.status === 404 ? "Not found" : "Something went wrong"), h("div", { class: "alert error", role: "alert" }, e instanceof Error ? e.message : String(e)), h("p", null, h("a", { href: "#/programs" }, "Back to programs")));
  }
  if (mine !== routing) return;
  if (message) {
    main.prepend(h("div", { class: "alert success flash", role: "status" }, message));
    announce(live(), message);
  }
  main.setAttribute("aria-busy", "false");
  // Move focus to the new page's heading so keyboard and screen-reader users start there.
  const heading = main.querySelector<HTMLElement>("h1");
  if (!main.contains(document.activeElement) || document.activeElement === main || document.activeElement === document.body) heading?.focus();
}

signout.addEventListener("click", () => signOut("You are signed out."));
window.addEventListener("hashchange", () => void route());
void route();
