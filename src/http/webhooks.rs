//! Outgoing webhook endpoints: create (the signing secret shown once), list, delete, and the
//! delivery log of an endpoint.

use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{body, created, ok, path_id, Call, Page};
use crate::state::new_id;
use crate::store;
use crate::webhooks::endpoint_secret;
use refport_core::error::Invalid;
use refport_core::time::rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::{query, Request, Response};

pub const EVENTS: [&str; 5] =
    ["lead.created", "commission.created", "commission.updated", "payout.paid", "payout.failed"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateIn {
    url: String,
    events: Vec<String>,
    description: Option<String>,
}

#[derive(Deserialize, Serialize)]
struct EndpointRow {
    id: String,
    url: String,
    events: String,
    description: Option<String>,
    created_at: i64,
}

fn endpoint_json(r: &EndpointRow) -> serde_json::Value {
    json!({
        "id": r.id, "url": r.url,
        "events": serde_json::from_str::<serde_json::Value>(&r.events).unwrap_or(json!([])),
        "description": r.description, "created_at": rfc3339(r.created_at),
    })
}

fn parse_url(s: &str) -> Result<String, Invalid> {
    let bad = |m: &str| Invalid::new("url", "invalid_url", m.to_string());
    let u = url::Url::parse(s).map_err(|_| bad("url must be an absolute https URL"))?;
    let local = matches!(u.host_str(), Some("127.0.0.1") | Some("localhost"));
    if !(u.scheme() == "https" || (u.scheme() == "http" && local)) {
        return Err(bad("url must use https"));
    }
    if !u.username().is_empty() || u.password().is_some() || s.len() > 2048 {
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
            format!("events must list 1 to 5 of {}", EVENTS.join(", ")),
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
    let row = EndpointRow { id, url, events: serde_json::to_string(&events)?, description, created_at: c.now };
    query!(
        &c.state.db,
        "INSERT INTO webhook_endpoints (id, url, events, description, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        &row.id,
        &row.url,
        &row.events,
        &row.description,
        row.created_at
    )?
    .run()
    .await?;
    let mut out = endpoint_json(&row);
    out["secret"] = json!(secret);
    created(&out)
}

pub async fn list(c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let page = Page::from_query(&c.query)?;
    let rows: Vec<EndpointRow> = store::all(query!(
        &c.state.db,
        "SELECT id, url, events, description, created_at FROM webhook_endpoints WHERE deleted_at IS NULL AND id < ?1
         ORDER BY id DESC LIMIT ?2",
        page.before(),
        page.limit + 1
    )?)
    .await?;
    let rows: Vec<_> = rows.iter().map(endpoint_json).collect();
    page.respond(rows, |r| r["id"].as_str().unwrap_or_default().to_string())
}

async fn load(c: &Call, id: &str) -> ApiResult<EndpointRow> {
    let id = path_id(id, refport_core::ids::WEBHOOK, "webhook endpoint")?;
    let row: Option<EndpointRow> = store::first(query!(
        &c.state.db,
        "SELECT id, url, events, description, created_at FROM webhook_endpoints WHERE id = ?1 AND deleted_at IS NULL",
        &id
    )?)
    .await?;
    row.ok_or(ApiError::NotFound("webhook endpoint"))
}

pub async fn delete(c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let row = load(c, id).await?;
    store::batch(
        &c.state.db,
        vec![
            query!(&c.state.db, "UPDATE webhook_endpoints SET deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL", &row.id, c.now)?,
            query!(
                &c.state.db,
                "UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint deleted', next_attempt_at = NULL
                 WHERE endpoint_id = ?1 AND status = 'pending'",
                &row.id
            )?,
        ],
    )
    .await?;
    ok(&json!({"id": row.id, "deleted": true}))
}

#[derive(Deserialize)]
struct DeliveryRow {
    id: String,
    event_id: String,
    event_type: String,
    status: String,
    attempts: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    next_attempt_at: Option<i64>,
    delivered_at: Option<i64>,
    created_at: i64,
}

pub async fn deliveries(c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let row = load(c, id).await?;
    let page = Page::from_query(&c.query)?;
    let rows: Vec<DeliveryRow> = store::all(query!(
        &c.state.db,
        "SELECT d.id, d.event_id, ev.type AS event_type, d.status, d.attempts, d.last_status, d.last_error, d.next_attempt_at,
                d.delivered_at, d.created_at
         FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
         WHERE d.endpoint_id = ?1 AND d.id < ?2 ORDER BY d.id DESC LIMIT ?3",
        &row.id,
        page.before(),
        page.limit + 1
    )?)
    .await?;
    let opt = |t: Option<i64>| t.map(rfc3339);
    let rows: Vec<_> = rows
        .iter()
        .map(|d| {
            json!({
                "id": d.id, "event_id": d.event_id, "event_type": d.event_type, "status": d.status,
                "attempts": d.attempts, "last_status": d.last_status, "last_error": d.last_error,
                "next_attempt_at": opt(d.next_attempt_at), "delivered_at": opt(d.delivered_at),
                "created_at": rfc3339(d.created_at),
            })
        })
        .collect();
    page.respond(rows, |r| r["id"].as_str().unwrap_or_default().to_string())
}
