//! Incoming Stripe webhooks (`POST /api/v1/webhooks/stripe`, from Stripe to Refport): the
//! signature is checked, then the event's effect on partners or payouts is recorded once
//! (`store::stripe_webhooks`). Outgoing webhooks to merchants are `webhook_endpoints.rs` and
//! `src/webhook_delivery.rs`.

use super::error::{ApiError, ApiResult};
use super::{ok, MAX_BODY};
use crate::state::AppState;
use crate::store::stripe_webhooks::{self, Effect};
use refport_core::token::{verify_stripe_signature, DEFAULT_TOLERANCE_SECS};
use serde_json::{json, Value};
use worker::{Request, Response};

/// `POST /api/v1/webhooks/stripe`: signature checked before anything is read or written; a
/// replayed event id changes nothing (the event id is recorded in the same batch as its effect).
pub async fn receive(req: &mut Request, state: &AppState, now: i64) -> ApiResult<Response> {
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
    let token = hex::encode(crate::state::random::<16>()?);
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
