//! Partner invitations: created with `invite: true` on partner creation, emailed with a
//! single-use expiring link; accepting enrols the partner and opens the portal.

use super::error::{ApiError, ApiResult};
use super::portal::{ensure_default_link, mint};
use super::{body, ok};
use crate::email::{self, Email};
use crate::state::{new_id, random, AppState};
use crate::store::{invites, partners, programs};
use refport_core::crypto::sha256_hex;
use refport_core::ids::{random_chars, BASE62};
use refport_core::time::{rfc3339, DAY_MS};
use serde_json::{json, Value};
use worker::{Request, Response};

pub const INVITE_TTL_MS: i64 = 7 * DAY_MS;

/// Creates the invitation and emails it; answers the invitation part of the response.
pub async fn invite(
    state: &AppState,
    origin: &str,
    program: &programs::Program,
    p: &partners::Partner,
    now: i64,
) -> ApiResult<Value> {
    let (token, hash) = token()?;
    let expires_at = now + INVITE_TTL_MS;
    let invitation =
        invites::Invite { id: new_id("inv", now)?, program_id: program.id.clone(), partner_id: p.id.clone() };
    invites::insert(&state.db, &invitation, &hash, expires_at, now).await?;
    let accept_url = format!("{origin}/invite?token={token}");
    let sent = send(state, &accept_url, program, &p.email, &p.name, expires_at).await;
    Ok(json!({"accept_url": accept_url, "expires_at": rfc3339(expires_at), "email_sent": sent}))
}

/// A new invitation's token: (token, its SHA-256, the only form stored).
pub fn token() -> ApiResult<(String, String)> {
    let token = random_chars(BASE62, &random::<32>()?);
    let hash = sha256_hex(token.as_bytes());
    Ok((token, hash))
}

/// Emails an invitation; answers whether the email API accepted it.
pub async fn send(
    state: &AppState,
    accept_url: &str,
    program: &programs::Program,
    to: &str,
    partner_name: &str,
    expires_at: i64,
) -> bool {
    let name = &program.settings.name;
    email::send(
        state,
        &Email {
            to,
            subject: &format!("You're invited to {name}"),
            text: format!("Hi {partner_name},\n\nYou are invited to join {name}'s partner program.\nAccept the invitation: {accept_url}\n\nThe link expires on {}.\n", rfc3339(expires_at)),
            html: format!(
                "<p>Hi {},</p><p>You are invited to join <b>{}</b>'s partner program.</p><p><a href=\"{accept_url}\">Accept the invitation</a></p><p>The link expires on {}.</p>",
                html_escape(partner_name),
                html_escape(name),
                rfc3339(expires_at)
            ),
        },
    )
    .await
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

refport_core::from_json! {
    deny_unknown_fields
    struct AcceptIn {
        token: String,
    }
}

/// `POST /api/v1/invites/accept {token}` (no API key: the token is the credential) ->
/// `{partner_id, program_id, embed: {token, expires_at}}`. Single use: a second accept is 409.
pub async fn accept(req: &mut Request, state: AppState, ctx: &worker::Context, now: i64) -> ApiResult<Response> {
    let input = body::<AcceptIn>(req).await?;
    let hash = sha256_hex(input.token.trim().as_bytes());
    let db = &state.db;
    let inv = invites::find_unexpired(db, &hash, now).await?.ok_or(ApiError::NotFound("invitation"))?;
    if !invites::accept(db, &inv, now).await? {
        return Err(ApiError::conflict("invitation_used", "this invitation was already accepted"));
    }
    crate::webhook_delivery::deliver_soon(ctx, &state);
    let partner = partners::get(db, &inv.partner_id).await?.ok_or(ApiError::NotFound("partner"))?;
    if partner.status == refport_core::partner::PartnerStatus::Banned {
        return Err(ApiError::conflict("partner_banned", "this partner can no longer join"));
    }
    let program = programs::get(db, &inv.program_id).await?.ok_or(ApiError::NotFound("program"))?;
    ensure_default_link(&state, &program, &partner, now).await?;
    let (token, expires_at) = mint(&state, &program.id, &partner.id, now, None)?;
    ok(&json!({
        "partner_id": partner.id, "program_id": program.id,
        "embed": {"token": token, "expires_at": rfc3339(expires_at)},
        "portal_url": format!("/embed/referrals?token={token}"),
    }))
}
