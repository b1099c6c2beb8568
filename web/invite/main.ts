// /invite/?token=...: accepting enrols the partner (POST /api/v1/invites/accept) and opens the
// portal with the embed token that comes back. Accepting needs a click, so link scanners that
// prefetch the email's URL cannot use up the single-use invitation.
import { api, ApiError } from "../shared/api";
import { $, clear, h } from "../shared/dom";
import { applyBrand } from "../shared/color";
import type { PortalMe } from "../shared/types";

interface Accepted {
  partner_id: string;
  program_id: string;
  embed: { token: string; expires_at: string };
  portal_url: string;
}

const token = new URLSearchParams(location.search).get("token")?.trim() ?? "";
const status = $("#status");
const button = $<HTMLButtonElement>("#accept");
const next = $("#next");
const portal = $<HTMLAnchorElement>("#portal-link");
const title = $("#title");
const lead = $("#lead");

function show(kind: "error" | "success" | "info", ...text: (string | Node)[]): void {
  status.className = `alert ${kind}`;
  clear(status, ...text);
}

async function accept(): Promise<void> {
  button.disabled = true;
  show("info", "Accepting…");
  try {
    const res = await fetch("/api/v1/invites/accept", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ token }),
      credentials: "omit",
    });
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const e = data?.error;
      throw new ApiError(res.status, e?.code ?? "error", e?.message ?? `HTTP ${res.status}`);
    }
    const ok = data as Accepted;
    portal.href = ok.portal_url;
    button.hidden = true;
    next.hidden = false;
    let name = "the partner program";
    try {
      const me = await api<PortalMe>("/api/v1/portal/me", ok.embed.token);
      name = me.program.name;
      applyBrand(document.documentElement, me.program.brand_color);
      document.title = `Welcome to ${name}`;
    } catch {
      // the welcome still works without the program's name
    }
    title.textContent = `Welcome to ${name}!`;
    lead.textContent = "Your invitation is accepted and your referral link is ready.";
    show("success", "You are now a partner. Open your portal to copy your link and follow your earnings.");
    portal.focus();
  } catch (e) {
    button.disabled = false;
    if (e instanceof ApiError && e.status === 404) {
      button.hidden = true;
      show("error", "This invitation link is invalid or has expired. Ask the program for a new invitation.");
    } else if (e instanceof ApiError && e.status === 409) {
      button.hidden = true;
      show("error", e.code === "invitation_used" ? "This invitation was already accepted. Sign in where the program shows your partner portal." : e.message);
    } else {
      show("error", e instanceof Error ? e.message : String(e), " ", h("span", null, "Try again."));
    }
  }
}

if (!token) {
  button.hidden = true;
  show("error", "This page needs the invitation link from your email.");
} else {
  button.addEventListener("click", () => void accept());
}
