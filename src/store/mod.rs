//! D1 and KV repositories: SQL lives here and nowhere else. Storage errors become domain
//! errors here (a unique violation is a conflict, not a 500).

pub mod api_keys;
pub mod clicks;
pub mod commissions;
pub mod conversions;
pub mod link_cache;
pub mod links;
pub mod outbox;
pub mod partners;
pub mod payouts;
pub mod programs;
pub mod refunds;

use serde::de::DeserializeOwned;
use worker::d1::D1PreparedStatement;
use worker::{D1Database, Result};

pub async fn first<T: DeserializeOwned>(stmt: D1PreparedStatement) -> Result<Option<T>> {
    stmt.first::<T>(None).await
}

pub async fn all<T: DeserializeOwned>(stmt: D1PreparedStatement) -> Result<Vec<T>> {
    stmt.all().await?.results::<T>()
}

/// Runs a write and answers how many rows it changed (the basis of every conditional update).
pub async fn changes(stmt: D1PreparedStatement) -> Result<usize> {
    Ok(stmt.run().await?.meta()?.and_then(|m| m.changes).unwrap_or(0))
}

/// Runs statements atomically; answers each statement's changed-row count.
pub async fn batch(db: &D1Database, stmts: Vec<D1PreparedStatement>) -> Result<Vec<usize>> {
    let results = db.batch(stmts).await?;
    results.iter().map(|r| Ok(r.meta()?.and_then(|m| m.changes).unwrap_or(0))).collect()
}

pub fn is_unique_violation(e: &worker::Error) -> bool {
    let s = e.to_string();
    s.contains("UNIQUE constraint failed") || s.contains("SQLITE_CONSTRAINT_PRIMARYKEY")
}

pub fn is_fk_violation(e: &worker::Error) -> bool {
    e.to_string().contains("FOREIGN KEY constraint failed")
}

/// The list filter of commissions and payouts: by program, partner and status.
pub struct Filter<'a> {
    pub program_id: Option<&'a str>,
    pub partner_id: Option<&'a str>,
    pub status: Option<&'a str>,
}

/// One page of `table` rows (`cols`) matching `f`, newest first, `limit + 1` rows (see `Page`).
pub async fn list_filtered<T: DeserializeOwned>(
    db: &D1Database,
    table: &str,
    cols: &str,
    f: &Filter<'_>,
    before: &str,
    limit: u32,
) -> Result<Vec<T>> {
    all(worker::query!(
        db,
        &format!(
            "SELECT {cols} FROM {table} WHERE id < ?1 AND (?2 IS NULL OR program_id = ?2)
             AND (?3 IS NULL OR partner_id = ?3) AND (?4 IS NULL OR status = ?4) ORDER BY id DESC LIMIT ?5"
        ),
        before,
        f.program_id,
        f.partner_id,
        f.status,
        limit + 1
    )?)
    .await
}

#[derive(serde::Deserialize)]
pub struct Count {
    pub n: i64,
}
