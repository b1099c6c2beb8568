//! Outgoing webhooks: the merchant's endpoints (soft-deleted). The events they receive are in
//! `outbox.rs`, the delivery attempts in `webhook_deliveries.rs`.

use super::{all, batch, first, StoreResult};
use serde::Serialize;
use worker::D1Database;

struct Row {
    id: String,
    url: String,
    events: String,
    description: Option<String>,
    program_id: Option<String>,
    created_at: i64,
}
from_row!(Row { id, url, events, description, program_id, created_at });

#[derive(Clone, Debug, Serialize)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    /// The event types it subscribes to (stored as a JSON array).
    pub events: Vec<String>,
    pub description: Option<String>,
    /// The program of the key that made it: only that program's events reach it. `None`: an
    /// admin endpoint, which receives every program's events.
    pub program_id: Option<String>,
    #[serde(serialize_with = "super::programs::ser_time")]
    pub created_at: i64,
}

impl TryFrom<Row> for Endpoint {
    type Error = super::StoreError;
    fn try_from(r: Row) -> StoreResult<Endpoint> {
        Ok(Endpoint {
            events: refport_core::wire::from_text(r.events.as_bytes())?,
            id: r.id,
            url: r.url,
            description: r.description,
            program_id: r.program_id,
            created_at: r.created_at,
        })
    }
}

const COLS: &str = "id, url, events, description, program_id, created_at";

pub async fn insert(db: &D1Database, e: &Endpoint) -> StoreResult<()> {
    super::run(query!(
        db,
        "INSERT INTO webhook_endpoints (id, url, events, description, program_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &e.id,
        &e.url,
        serde_json::to_string(&e.events)?,
        &e.description,
        &e.program_id,
        e.created_at
    )?).await?;
    Ok(())
}

/// Live endpoints, newest first, `limit + 1` rows (see `http::Page`); `program`: only the
/// endpoints of that program (a program-bound key), `None`: all (the admin).
pub async fn list(db: &D1Database, program: Option<&str>, before: &str, limit: u32) -> StoreResult<Vec<Endpoint>> {
    let rows: Vec<Row> = all(query!(
        db,
        &format!(
            "SELECT {COLS} FROM webhook_endpoints WHERE deleted_at IS NULL AND id < ?1 AND (?3 IS NULL OR program_id = ?3)
             ORDER BY id DESC LIMIT ?2"
        ),
        before,
        limit + 1,
        program
    )?)
    .await?;
    rows.into_iter().map(Endpoint::try_from).collect()
}

/// A live (not deleted) endpoint, within `program` when given (see `list`).
pub async fn get(db: &D1Database, program: Option<&str>, id: &str) -> StoreResult<Option<Endpoint>> {
    let row: Option<Row> = first(query!(
        db,
        &format!(
            "SELECT {COLS} FROM webhook_endpoints WHERE id = ?1 AND deleted_at IS NULL AND (?2 IS NULL OR program_id = ?2)"
        ),
        id,
        program
    )?)
    .await?;
    row.map(Endpoint::try_from).transpose()
}

/// Deletes the endpoint and fails its pending deliveries, in one atomic batch.
pub async fn delete(db: &D1Database, id: &str, now: i64) -> StoreResult<()> {
    batch(
        db,
        vec![
            query!(db, "UPDATE webhook_endpoints SET deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL", id, now)?,
            query!(
                db,
                "UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint deleted', next_attempt_at = NULL
                 WHERE endpoint_id = ?1 AND status = 'pending'",
                id
            )?,
        ],
    )
    .await?;
    Ok(())
}
