//! Stripe Connect: partner onboarding (Express account + account link) and Stripe's webhooks.

use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{ok, optional_body, partners, Call, MAX_BODY};
use crate::state::AppState;
use crate::store::{self, stripe_webhooks, stripe_webhooks::Effect};
use crate::stripe::{Stripe, StripeError};
use refport_core::token::{verify_stripe_signature, DEFAULT_TOLERANCE_SECS};
use serde::Deserialize;
use serde_json::{json, Value};
use worker::{Request, Response};

fn stripe_error(e: StripeError) -> ApiError {
    match e {
        StripeError::NotConfigured => {
            ApiError::unprocessable("stripe_not_configured", "Stripe is not configured for this deployment")
        }
        StripeError::Permanent { message, .. } => {
            ApiError::unprocessable("stripe_error", format!("Stripe refused: {message}"))
        }
        StripeError::Transient(m) => {
            worker::console_error!("stripe: {m}");
            ApiError::conflict("stripe_unavailable", "Stripe did not answer; try again")
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OnboardIn {
    return_url: Option<String>,
    refresh_url: Option<String>,
}

fn https_url(field: &'static str, s: &str) -> ApiResult<String> {
    let u = url::Url::parse(s).map_err(|_| {
        ApiError::Invalid(refport_core::error::Invalid::new(
            field,
            "invalid_url",
            format!("{field} must be an absolute https URL"),
        ))
    })?;
    let local = u.host_str().is_some_and(|h| h == "127.0.0.1" || h == "localhost");
    if u.scheme() != "https" && !(u.scheme() == "http" && local) {
        return Err(refport_core::error::Invalid::new(
            field,
            "invalid_url",
            format!("{field} must be an absolute https URL"),
        )
        .into());
    }
    Ok(u.to_string())
}

/// `POST /api/v1/partners/{id}/stripe/onboard` -> `{url, expires_at, account_id}`.
pub async fn onboard(req: &mut Request, c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let partner = partners::load(c, id).await?;
    onboard_partner(req, &c.state, &partner, c.now).await
}

/// Creates the partner's Express account if it has none and answers an account link. Shared by
/// the management API and the partner portal.
pub async fn onboard_partner(
    req: &mut Request,
    state: &AppState,
    partner: &store::partners::Partner,
    now: i64,
) -> ApiResult<Response> {
    let input: OnboardIn = optional_body(req).await?;
    let origin = req.url().map(|u| u.origin().ascii_serialization()).unwrap_or_default();
    let return_url =
        https_url("return_url", &input.return_url.unwrap_or_else(|| format!("{origin}/embed/onboarding?status=done")))?;
    let refresh_url = https_url(
        "refresh_url",
        &input.refresh_url.unwrap_or_else(|| format!("{origin}/embed/onboarding?status=refresh")),
    )?;
    if partner.status == refport_core::partner::PartnerStatus::Banned {
        return Err(ApiError::conflict("partner_banned", "a banned partner cannot be onboarded"));
    }
    let stripe = Stripe::from_state(state).map_err(stripe_error)?;
    let account = match &partner.stripe_account_id {
        Some(a) => a.clone(),
        None => {
            let a = stripe.create_account(&partner.id, &partner.email).await.map_err(stripe_error)?;
            // First writer wins; the account idempotency key makes a racing twin get the same id.
            store::partners::set_stripe_account_once(&state.db, &partner.id, &a.id, now).await?;
            let p = store::partners::get(&state.db, &partner.id).await?.ok_or(ApiError::NotFound("partner"))?;
            p.stripe_account_id.unwrap_or(a.id)
        }
    };
    // Account links are single-use and carry no money: every request gets a fresh one.
    let key = format!("link-{}-{}", partner.id, hex_token()?);
    let link = stripe.account_link(&account, &refresh_url, &return_url, &key).await.map_err(stripe_error)?;
    ok(
        &json!({"url": link.url, "expires_at": refport_core::time::rfc3339(link.expires_at * 1000), "account_id": account}),
    )
}

/// `POST /api/v1/webhooks/stripe`: signature checked before anything is read or written; a
/// replayed event id changes nothing (the event id is recorded in the same batch as its effect).
pub async fn webhook(req: &mut Request, state: &AppState, now: i64) -> ApiResult<Response> {
    let secrets = &state.secrets.stripe_webhook;
    if secrets.is_empty() {
        return Err(ApiError::unprocessable("stripe_not_configured", "STRIPE_WEBHOOK_SECRET is not set"));
    }
    let header = req.headers().get("stripe-signature")?.unwrap_or_default();
    let payload =
        req.bytes().await.map_err(|_| ApiError::bad_request("invalid_body", "could not read the request body"))?;
    if payload.len() > MAX_BODY {
        return Err(ApiError::PayloadTooLarge);
    }
    // Any of the configured secrets (two during a rotation) may have signed it.
    let mut verdict = Ok(0);
    for s in secrets {
        verdict = verify_stripe_signature(s.expose(), &header, &payload, now / 1000, DEFAULT_TOLERANCE_SECS);
        if verdict.is_ok() {
            break;
        }
    }
    verdict.map_err(|e| {
        ApiError::bad_request("invalid_signature", format!("Stripe-Signature rejected: {}", e.as_str()))
    })?;
    let event: Value =
        serde_json::from_slice(&payload).map_err(|_| ApiError::bad_request("invalid_json", "malformed event"))?;
    let id = event["id"]
        .as_str()
        .filter(|s| s.starts_with("evt_"))
        .ok_or(ApiError::bad_request("invalid_request", "event without id"))?;
    let kind = event["type"].as_str().unwrap_or_default();
    let object = &event["data"]["object"];
    // A fresh token marks this delivery: effects below apply only if this delivery recorded the
    // event (a replay leaves the first delivery's token in place, so its effects are skipped).
    let token = hex_token()?;
    let effect = match kind {
        "account.updated" => {
            let transfers = object["capabilities"]["transfers"].as_str();
            Some(Effect::PayoutsEnabled {
                account: object["id"].as_str().unwrap_or_default(),
                enabled: object["payouts_enabled"].as_bool().unwrap_or(false)
                    && transfers.is_none_or(|t| t == "active"),
            })
        }
        "transfer.reversed" | "transfer.updated" => {
            let reversed = object["amount_reversed"].as_i64().unwrap_or(0);
            (reversed > 0).then(|| Effect::TransferReversed {
                transfer: object["id"].as_str().unwrap_or_default(),
                amount_reversed: reversed,
            })
        }
        _ => None,
    };
    let duplicate = !stripe_webhooks::record(&state.db, id, kind, &token, effect, now).await?;
    let effect = match effect {
        _ if duplicate => "none",
        Some(Effect::PayoutsEnabled { .. }) => "account_updated",
        Some(Effect::TransferReversed { .. }) => "transfer_reversed",
        None => "ignored",
    };
    ok(&json!({"received": true, "duplicate": duplicate, "effect": effect}))
}

fn hex_token() -> Result<String, crate::state::RandomUnavailable> {
    Ok(hex::encode(crate::state::random::<16>()?))
}
