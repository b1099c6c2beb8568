//! Outgoing webhooks: one delivery per (event, endpoint), fanned out by `outbox.rs`, attempted by
//! `src/webhook_delivery.rs` under a short lease and retried with backoff; also the delivery log.

use super::{all, changes, StoreError, StoreResult};
use serde::Serialize;
use worker::D1Database;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt at `next_attempt_at`.
    Pending,
    Delivered,
    /// Out of attempts, or its endpoint was deleted.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        Some(match s {
            "pending" => DeliveryStatus::Pending,
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            _ => return None,
        })
    }
}

struct Row {
    id: String,
    endpoint_id: String,
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
from_row!(Row {
    id,
    endpoint_id,
    event_id,
    event_type,
    status,
    attempts,
    last_status,
    last_error,
    next_attempt_at,
    delivered_at,
    created_at
});

/// A delivery as the endpoint's log shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// The HTTP status of the last attempt, if the endpoint answered.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    #[serde(serialize_with = "super::programs::ser_opt_time")]
    pub next_attempt_at: Option<i64>,
    #[serde(serialize_with = "super::programs::ser_opt_time")]
    pub delivered_at: Option<i64>,
    #[serde(serialize_with = "super::programs::ser_time")]
    pub created_at: i64,
}

impl TryFrom<Row> for Delivery {
    type Error = StoreError;
    fn try_from(r: Row) -> StoreResult<Delivery> {
        Ok(Delivery {
            status: DeliveryStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("webhook delivery {} has status `{}`", r.id, r.status)))?,
            id: r.id,
            endpoint_id: r.endpoint_id,
            event_id: r.event_id,
            event_type: r.event_type,
            attempts: r.attempts,
            last_status: r.last_status,
            last_error: r.last_error,
            next_attempt_at: r.next_attempt_at,
            delivered_at: r.delivered_at,
            created_at: r.created_at,
        })
    }
}

const COLS: &str = "d.id, d.endpoint_id, d.event_id, ev.type AS event_type, d.status, d.attempts, d.last_status, \
     d.last_error, d.next_attempt_at, d.delivered_at, d.created_at";

/// An endpoint's delivery log, newest first, `limit + 1` rows (see `http::Page`).
pub async fn list_for_endpoint(
    db: &D1Database,
    endpoint_id: &str,
    before: &str,
    limit: u32,
) -> StoreResult<Vec<Delivery>> {
    let rows: Vec<Row> = all(query!(
        db,
        &format!(
            "SELECT {COLS} FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
             WHERE d.endpoint_id = ?1 AND d.id < ?2 ORDER BY d.id DESC LIMIT ?3"
        ),
        endpoint_id,
        before,
        limit + 1
    )?)
    .await?;
    rows.into_iter().map(Delivery::try_from).collect()
}

/// A pending delivery whose attempt is due, with what sending it needs.
#[derive(Debug)]
pub struct Due {
    pub id: String,
    pub event_id: String,
    pub endpoint_id: String,
    /// Attempts made so far.
    pub attempts: i64,
    pub url: String,
    pub event_type: String,
    /// The event's `data`, as stored JSON text (sent verbatim).
    pub payload: String,
    /// When the event happened (ms).
    pub created_at: i64,
}
from_row!(Due { id, event_id, endpoint_id, attempts, url, event_type, payload, created_at });

/// Up to `limit` pending deliveries due at `now`, oldest due first (`only`: that one).
pub async fn due(db: &D1Database, now: i64, limit: u32, only: Option<&str>) -> StoreResult<Vec<Due>> {
    all(query!(
        db,
        "SELECT d.id, d.event_id, d.endpoint_id, d.attempts, ep.url, ev.type AS event_type, ev.payload, ev.created_at
         FROM webhook_deliveries d JOIN webhook_endpoints ep ON ep.id = d.endpoint_id JOIN webhook_events ev ON ev.id = d.event_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= ?1 AND (?3 IS NULL OR d.id = ?3)
         ORDER BY d.next_attempt_at, d.id LIMIT ?2",
        now,
        limit,
        only
    )?)
    .await
}

/// A delivery of a live endpoint (within `program` when given: a program-bound key).
pub async fn get(db: &D1Database, program: Option<&str>, id: &str) -> StoreResult<Option<Delivery>> {
    let row: Option<Row> = super::first(query!(
        db,
        &format!(
            "SELECT {COLS} FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
             JOIN webhook_endpoints ep ON ep.id = d.endpoint_id
             WHERE d.id = ?1 AND ep.deleted_at IS NULL AND (?2 IS NULL OR ep.program_id = ?2)"
        ),
        id,
        program
    )?)
    .await?;
    row.map(Delivery::try_from).transpose()
}

/// Makes a delivery of a live endpoint due at `now` again, whatever its status (a resend).
pub async fn requeue(db: &D1Database, id: &str, now: i64) -> StoreResult<()> {
    super::run(query!(
        db,
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?2 WHERE id = ?1
           AND EXISTS (SELECT 1 FROM webhook_endpoints ep WHERE ep.id = endpoint_id AND ep.deleted_at IS NULL)",
        id,
        now
    )?)
    .await?;
    Ok(())
}

/// Leases a due delivery until `until` (moves its `next_attempt_at`); answers whether this call
/// got it, so a request and the cron never send the same delivery at once.
pub async fn lease(db: &D1Database, id: &str, until: i64, now: i64) -> StoreResult<bool> {
    Ok(changes(query!(
        db,
        "UPDATE webhook_deliveries SET next_attempt_at = ?2 WHERE id = ?1 AND status = 'pending' AND next_attempt_at <= ?3",
        id,
        until,
        now
    )?)
    .await?
        == 1)
}

/// Records a successful attempt (`attempts` counts it; `status` is the endpoint's 2xx).
pub async fn delivered(db: &D1Database, id: &str, attempts: i64, status: u16, now: i64) -> StoreResult<()> {
    super::run(query!(
        db,
        "UPDATE webhook_deliveries SET status = 'delivered', attempts = ?2, last_status = ?3, last_error = NULL,
             delivered_at = ?4, next_attempt_at = NULL WHERE id = ?1",
        id,
        attempts,
        status,
        now
    )?)
    .await?;
    Ok(())
}

/// Records a failed attempt: retried at `next_attempt_at`, or `failed` for good when there is none.
pub async fn attempt_failed(
    db: &D1Database,
    id: &str,
    attempts: i64,
    status: Option<u16>,
    error: &str,
    next_attempt_at: Option<i64>,
) -> StoreResult<()> {
    let to = if next_attempt_at.is_some() { DeliveryStatus::Pending } else { DeliveryStatus::Failed };
    super::run(query!(
        db,
        "UPDATE webhook_deliveries SET status = ?2, attempts = ?3, last_status = ?4, last_error = ?5, next_attempt_at = ?6
         WHERE id = ?1",
        id,
        to.as_str(),
        attempts,
        status,
        error,
        next_attempt_at
    )?).await?;
    Ok(())
}
