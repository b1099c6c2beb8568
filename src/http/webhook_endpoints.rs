//! Outgoing webhooks, the merchant's side of the API (`/api/v1/webhooks`, `/api/v1/webhooks/{id}`):
//! register an endpoint (its signing secret shown once), list, delete, and an endpoint's delivery
//! log. Delivery itself is `src/webhook_delivery.rs`; incoming Stripe webhooks are
//! `stripe_webhooks.rs`.

use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{body, created, ok, path_id, Call, Page};
use crate::state::new_id;
use crate::store::webhook_deliveries;
use crate::store::webhook_endpoints::{self, Endpoint};
use crate::webhook_delivery::endpoint_secret;
use refport_core::error::Invalid;
use refport_core::weburl::{HttpUrl, ParseError};
use serde_json::json;
use worker::{Request, Response};

/// Every event an endpoint can subscribe to (each documented with its payload in the OpenAPI
/// document's `webhooks`).
pub const EVENTS: &[&str] = &[
    "partner.enrolled",
    "partner.updated",
    "partner.banned",
    "lead.created",
    "sale.created",
    "commission.created",
    "commission.updated",
    "commission.approved",
    "commission.paid",
    "payout.paid",
    "payout.failed",
    "payout.reversed",
    "payout.awaiting_approval",
];

refport_core::from_json! {
    deny_unknown_fields
    struct CreateIn {
        url: String,
        events: Vec<String>,
        description: Option<String>,
    }
}

fn parse_url(s: &str) -> Result<String, Invalid> {
    let bad = |m: &str| Invalid::new("url", "invalid_url", m.to_string());
    let u = match HttpUrl::parse(s) {
        Ok(u) => u,
        Err(ParseError::NotHttp) => return Err(bad("url must use https")),
        Err(_) => return Err(bad("url must be an absolute https URL")),
    };
    let local = matches!(u.host(), "127.0.0.1" | "localhost");
    if !(u.scheme() == "https" || (u.scheme() == "http" && local)) {
        return Err(bad("url must use https"));
    }
    if u.has_credentials() || s.len() > 2048 {
        return Err(bad("url must not contain credentials and be at most 2048 characters"));
    }
    Ok(u.to_string())
}

pub async fn create(req: &mut Request, c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let input = body::<CreateIn>(req).await?;
    let url = parse_url(&input.url)?;
    if input.events.is_empty() || input.events.len() > EVENTS.len() {
        return Err(Invalid::new(
            "events",
            "invalid_events",
            format!("events must list 1 to {} of {}", EVENTS.len(), EVENTS.join(", ")),
        )
        .into());
    }
    let mut events: Vec<&str> = Vec::new();
    for e in &input.events {
        let known = EVENTS.iter().find(|k| *k == e).ok_or_else(|| {
            Invalid::new("events", "invalid_events", format!("`{e}` is not one of {}", EVENTS.join(", ")))
        })?;
        if events.contains(known) {
            return Err(Invalid::new("events", "invalid_events", format!("`{e}` is listed twice")).into());
        }
        events.push(known);
    }
    let description = input.description.map(|d| d.trim().to_string()).filter(|d| !d.is_empty());
    if description.as_ref().is_some_and(|d| d.chars().count() > 200) {
        return Err(
            Invalid::new("description", "invalid_description", "description must be at most 200 characters").into()
        );
    }
    let id = new_id(refport_core::ids::WEBHOOK, c.now)?;
    let secret = endpoint_secret(&c.state, &id).ok_or_else(|| {
        ApiError::unprocessable("webhooks_not_configured", "WEBHOOK_SIGNING_KEY is not set for this deployment")
    })?;
    let endpoint = Endpoint {
        id,
        url,
        events: events.iter().map(|e| e.to_string()).collect(),
        description,
        program_id: c.who.program_id.clone(),
        created_at: c.now,
    };
    webhook_endpoints::insert(&c.state.db, &endpoint).await?;
    let mut out = serde_json::to_value(&endpoint)?;
    out["secret"] = json!(secret);
    created(&out)
}

pub async fn list(c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let page = Page::from_query(&c.query)?;
    let rows = webhook_endpoints::list(&c.state.db, c.who.program_id.as_deref(), &page.before(), page.limit).await?;
    page.respond(rows, |r| r.id.clone())
}

async fn load(c: &Call, id: &str) -> ApiResult<Endpoint> {
    let id = path_id(id, refport_core::ids::WEBHOOK, "webhook endpoint")?;
    webhook_endpoints::get(&c.state.db, c.who.program_id.as_deref(), &id)
        .await?
        .ok_or(ApiError::NotFound("webhook endpoint"))
}

pub async fn delete(c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let endpoint = load(c, id).await?;
    webhook_endpoints::delete(&c.state.db, &endpoint.id, c.now).await?;
    ok(&json!({"id": endpoint.id, "deleted": true}))
}

/// `POST /api/v1/webhook-deliveries/{id}/resend`: sends the delivery's event again now (same
/// event id and body, signed anew), whatever its status; answers the delivery after the attempt.
pub async fn resend(c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let id = path_id(id, "wd", "webhook delivery")?;
    let program = c.who.program_id.as_deref();
    webhook_deliveries::get(&c.state.db, program, &id).await?.ok_or(ApiError::NotFound("webhook delivery"))?;
    crate::webhook_delivery::resend(&c.state, &id, c.now).await?;
    ok(&webhook_deliveries::get(&c.state.db, program, &id).await?.ok_or(ApiError::NotFound("webhook delivery"))?)
}

pub async fn deliveries(c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let endpoint = load(c, id).await?;
    let page = Page::from_query(&c.query)?;
    let rows = webhook_deliveries::list_for_endpoint(&c.state.db, &endpoint.id, &page.before(), page.limit).await?;
    page.respond(rows, |d| d.id.clone())
}
