//! Incoming Stripe webhooks (from Stripe to Refport). Stripe sends platform events (transfers,
//! balance) to an account endpoint and connected-account events (`account.updated`,
//! `capability.updated`, `account.application.deauthorized`) only to a Connect endpoint, each
//! with its own signing secret (https://docs.stripe.com/connect/webhooks):
//! `POST /api/v1/webhooks/stripe` verifies with `STRIPE_WEBHOOK_SECRET`,
//! `POST /api/v1/webhooks/stripe/connect` with `STRIPE_CONNECT_WEBHOOK_SECRET` (each may hold
//! several comma-separated secrets during a rotation). Either applies any event it understands.
//!
//! Stripe neither orders events nor delivers them once: an account's state is read fresh from
//! `GET /v1/accounts/{id}` (so a late, older event changes nothing), a reversal is recorded by
//! its cumulative `amount_reversed`, and each event id is recorded once (`store::stripe_webhooks`).
//! Outgoing webhooks to merchants are `webhook_endpoints.rs` and `src/webhook_delivery.rs`.

use super::error::{ApiError, ApiResult};
use super::{ok, MAX_BODY};
use crate::state::{new_id, AppState, Secret};
use crate::store::payouts;
use crate::store::stripe_webhooks::{self, Effect};
use crate::stripe::Stripe;
use refport_core::ids;
use refport_core::token::{verify_stripe_signature, DEFAULT_TOLERANCE_SECS};
use serde_json::{json, Value};
use worker::{Request, Response};

/// `POST /api/v1/webhooks/stripe`: the platform account's endpoint.
pub async fn platform(req: &mut Request, state: &AppState, now: i64) -> ApiResult<Response> {
    receive(req, state, now, &state.secrets.stripe_webhook, "STRIPE_WEBHOOK_SECRET").await
}

/// `POST /api/v1/webhooks/stripe/connect`: the Connect endpoint (events of connected accounts).
pub async fn connect(req: &mut Request, state: &AppState, now: i64) -> ApiResult<Response> {
    receive(req, state, now, &state.secrets.stripe_connect_webhook, "STRIPE_CONNECT_WEBHOOK_SECRET").await
}

/// The signed event, or why not: checked before anything is read or written.
async fn verified(req: &mut Request, secrets: &[Secret], name: &'static str, now: i64) -> ApiResult<Value> {
    if secrets.is_empty() {
        return Err(ApiError::unprocessable("stripe_not_configured", format!("{name} is not set")));
    }
    let header = req.headers().get("stripe-signature")?.unwrap_or_default();
    let payload =
        req.bytes().await.map_err(|_| ApiError::bad_request("invalid_body", "could not read the request body"))?;
    if payload.len() > MAX_BODY {
        return Err(ApiError::PayloadTooLarge);
    }
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
    serde_json::from_slice(&payload).map_err(|_| ApiError::bad_request("invalid_json", "malformed event"))
}

async fn receive(
    req: &mut Request,
    state: &AppState,
    now: i64,
    secrets: &[Secret],
    name: &'static str,
) -> ApiResult<Response> {
    let event = verified(req, secrets, name, now).await?;
    let id = event["id"]
        .as_str()
        .filter(|s| s.starts_with("evt_"))
        .ok_or(ApiError::bad_request("invalid_request", "event without id"))?;
    let kind = event["type"].as_str().unwrap_or_default();
    let object = &event["data"]["object"];
    let clawback_id = new_id(ids::COMMISSION, now)?;
    let (effect, label) = match kind {
        "account.updated" | "capability.updated" | "account.application.deauthorized" => {
            // The account is the event's `account` (Connect events), or the object itself.
            let account = event["account"].as_str().or(object["id"].as_str().filter(|a| a.starts_with("acct_")));
            match account {
                Some(account) => account_effect(state, kind, account).await?,
                None => (None, "ignored"),
            }
        }
        "transfer.reversed" | "transfer.updated" => {
            let transfer = object["id"].as_str().unwrap_or_default();
            let total_reversed = object["amount_reversed"].as_i64().unwrap_or(0);
            match payouts::by_transfer(&state.db, transfer).await? {
                Some(p) if total_reversed > 0 => (
                    Some(Effect::TransferReversed { payout_id: p.id, total_reversed, clawback_id }),
                    "transfer_reversed",
                ),
                _ => (None, "ignored"),
            }
        }
        "balance.available" => (Some(Effect::ResumePayouts), "payouts_resumed"),
        _ => (None, "ignored"),
    };
    let token = hex::encode(crate::state::random::<16>()?);
    let first = stripe_webhooks::record(&state.db, id, kind, &token, effect, now).await?;
    ok(&json!({"received": true, "duplicate": !first, "effect": if first { label } else { "none" }}))
}

/// What an account event means, from the account's current state at Stripe.
async fn account_effect(state: &AppState, kind: &str, account: &str) -> ApiResult<(Option<Effect>, &'static str)> {
    let account = account.to_string();
    if kind == "account.application.deauthorized" {
        let effect =
            Effect::AccountState { account, can_receive: false, reason: Some("deauthorized"), fingerprint: None };
        return Ok((Some(effect), "account_deauthorized"));
    }
    let stripe = Stripe::from_state(state)
        .map_err(|_| ApiError::unprocessable("stripe_not_configured", "STRIPE_SECRET_KEY is not set"))?;
    match stripe.account(&account).await {
        Ok(a) => {
            let can_receive = a.can_receive();
            let reason = (!can_receive).then_some("stripe_requirements");
            let fingerprint = a.payout_fingerprint();
            Ok((Some(Effect::AccountState { account, can_receive, reason, fingerprint }), "account_updated"))
        }
        // The platform may no longer read it (deauthorized, deleted): nothing can be paid to it.
        Err(r) if matches!(r.refusal.status, Some(401..=404)) && r.refusal.status != Some(401) => Ok((
            Some(Effect::AccountState { account, can_receive: false, reason: Some("deauthorized"), fingerprint: None }),
            "account_deauthorized",
        )),
        Err(r) => {
            worker::console_error!("stripe webhook: account {account} unreadable: {r}");
            Err(ApiError::Unavailable("Stripe did not answer; the event will be retried"))
        }
    }
}
