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
//! The platform endpoint also receives the merchant's own payments (checkout, invoices, refunds,
//! customers): zero-code tracking, `stripe_tracking.rs`. Each event's outcome is recorded with it
//! and listed by `GET /api/v1/integrations/stripe` (the dashboard's Integrations page).
//! Outgoing webhooks to merchants are `webhook_endpoints.rs` and `src/webhook_delivery.rs`.

use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{ok, stripe_tracking, Call, MAX_BODY};
use crate::state::{new_id, AppState, Secret};
use crate::store::payouts;
use crate::store::stripe_webhooks::{self, Effect, Outcome};
use crate::stripe::Stripe;
use refport_core::ids;
use refport_core::stripe_tracking::CONVERSION_EVENTS;
use refport_core::time::rfc3339;
use refport_core::token::{verify_stripe_signature, DEFAULT_TOLERANCE_SECS};
use serde_json::{json, Value};
use worker::{Context, Request, Response};

/// `POST /api/v1/webhooks/stripe`: the platform account's endpoint (its own payments, which
/// zero-code tracking turns into conversions, and its transfers and balance).
pub async fn platform(req: &mut Request, state: &AppState, ctx: &Context, now: i64) -> ApiResult<Response> {
    let secrets = &state.secrets.stripe_webhook;
    receive(req, state, ctx, now, secrets, Endpoint::Platform).await
}

/// `POST /api/v1/webhooks/stripe/connect`: the Connect endpoint (events of connected accounts).
pub async fn connect(req: &mut Request, state: &AppState, ctx: &Context, now: i64) -> ApiResult<Response> {
    let secrets = &state.secrets.stripe_connect_webhook;
    receive(req, state, ctx, now, secrets, Endpoint::Connect).await
}

/// The two endpoints, as the merchant configures them in Stripe.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Platform,
    Connect,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Platform => "platform",
            Endpoint::Connect => "connect",
        }
    }
    fn secret_name(self) -> &'static str {
        match self {
            Endpoint::Platform => "STRIPE_WEBHOOK_SECRET",
            Endpoint::Connect => "STRIPE_CONNECT_WEBHOOK_SECRET",
        }
    }
    fn path(self) -> &'static str {
        match self {
            Endpoint::Platform => "/api/v1/webhooks/stripe",
            Endpoint::Connect => "/api/v1/webhooks/stripe/connect",
        }
    }
    /// The events to select in Stripe for this endpoint.
    fn events(self) -> Vec<&'static str> {
        match self {
            Endpoint::Platform => {
                let mut e = CONVERSION_EVENTS.to_vec();
                e.extend(["transfer.reversed", "transfer.updated", "balance.available"]);
                e
            }
            Endpoint::Connect => ACCOUNT_EVENTS.to_vec(),
        }
    }
}

const ACCOUNT_EVENTS: [&str; 3] = ["account.updated", "capability.updated", "account.application.deauthorized"];

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
    refport_core::wire::from_text(&payload).map_err(|_| ApiError::bad_request("invalid_json", "malformed event"))
}

async fn receive(
    req: &mut Request,
    state: &AppState,
    ctx: &Context,
    now: i64,
    secrets: &[Secret],
    endpoint: Endpoint,
) -> ApiResult<Response> {
    let event = verified(req, secrets, endpoint.secret_name(), now).await?;
    let id = event["id"]
        .as_str()
        .filter(|s| s.starts_with("evt_"))
        .ok_or(ApiError::bad_request("invalid_request", "event without id"))?;
    let kind = event["type"].as_str().unwrap_or_default();
    let object = &event["data"]["object"];
    // The merchant's payments (events of its own account, not of a connected one).
    if CONVERSION_EVENTS.contains(&kind) && event["account"].is_null() {
        if stripe_webhooks::seen(&state.db, id).await? {
            return ok(&json!({"received": true, "duplicate": true, "effect": "none"}));
        }
        let tracked = stripe_tracking::track(state, now, kind, object).await?;
        if tracked.deliveries > 0 {
            crate::webhook_delivery::deliver_soon(ctx, state);
        }
        let o = Outcome { endpoint: endpoint.name(), ..tracked.outcome };
        let token = hex::encode(crate::state::random::<16>()?);
        let first = stripe_webhooks::record(&state.db, id, kind, &token, None, &o, now).await?;
        return ok(&json!({
            "received": true,
            "duplicate": !first,
            "outcome": o.outcome,
            "effect": o.effect,
            "reason": o.reason,
            "partner_id": o.partner_id,
        }));
    }
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
    let outcome = Outcome {
        endpoint: endpoint.name(),
        outcome: if effect.is_some() { "applied" } else { "ignored" },
        effect: effect.is_some().then_some(label),
        reason: effect.is_none().then_some("event_not_handled"),
        object_id: object["id"].as_str().map(str::to_string),
        ..Outcome::default()
    };
    let token = hex::encode(crate::state::random::<16>()?);
    let first = stripe_webhooks::record(&state.db, id, kind, &token, effect, &outcome, now).await?;
    ok(&json!({"received": true, "duplicate": !first, "effect": if first { label } else { "none" }}))
}

/// `GET /api/v1/integrations/stripe`: what to paste into Stripe (the two webhook URLs on this
/// Worker's origin, whether their secrets are set, the events to select) and the newest 50
/// events received with what each did. A key bound to a program sees its program's events only.
pub async fn integration(req: &Request, c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    // The runtime's URL parser (`HttpUrl`), not `Request::url()`: that one is the `url` crate,
    // whose IDNA tables would add ~70 KB of gzip to the wasm.
    let origin = refport_core::weburl::HttpUrl::parse(&req.inner().url())
        .map_err(|_| ApiError::bad_request("invalid_request", "bad URL"))?
        .origin();
    let secrets = &c.state.secrets;
    let webhooks: Vec<Value> = [Endpoint::Platform, Endpoint::Connect]
        .into_iter()
        .map(|e| {
            let configured = match e {
                Endpoint::Platform => !secrets.stripe_webhook.is_empty(),
                Endpoint::Connect => !secrets.stripe_connect_webhook.is_empty(),
            };
            json!({"endpoint": e.name(), "url": format!("{origin}{}", e.path()), "secret_configured": configured,
                   "events": e.events()})
        })
        .collect();
    let events: Vec<Value> = stripe_webhooks::recent(&c.state.db, c.who.program_id.as_deref(), 50)
        .await?
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id, "type": e.kind, "endpoint": e.endpoint, "received_at": rfc3339(e.received_at),
                "outcome": e.outcome, "effect": e.effect, "reason": e.reason, "program_id": e.program_id,
                "partner_id": e.partner_id, "partner_name": e.partner_name, "customer": e.stripe_customer_id,
                "object_id": e.object_id, "amount": e.amount, "currency": e.currency,
            })
        })
        .collect();
    ok(&json!({"webhooks": webhooks, "api_key_configured": secrets.stripe_key.is_some(), "events": events}))
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
