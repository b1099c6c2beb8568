//! D1 and KV repositories: SQL lives here and nowhere else. The store answers in storage terms
//! (`StoreError`: taken / in use / raced / not found / corrupt / database); the HTTP layer maps
//! them to API errors in one place.

pub mod api_keys;
pub mod bulk;
pub mod clicks;
pub mod commissions;
pub mod conversions;
pub mod coupons;
pub mod error;
pub mod groups;
pub mod invites;
pub mod link_cache;
pub mod links;
pub mod outbox;
pub mod partners;
pub mod payouts;
pub mod programs;
pub mod refunds;
pub mod stats;
pub mod stripe_webhooks;
pub mod webhook_deliveries;
pub mod webhook_endpoints;

pub use error::{Constraint, ConstraintKind, InUse, StoreError, StoreResult, Taken};
use serde::de::DeserializeOwned;
use worker::d1::D1PreparedStatement;
use worker::D1Database;

type Result<T> = StoreResult<T>;

/// Every D1 round trip goes through these helpers, which count it (`metrics::d1_calls`).
fn counted() {
    crate::metrics::add(crate::metrics::Counter::d1_calls, 1);
}

pub async fn first<T: DeserializeOwned>(stmt: D1PreparedStatement) -> Result<Option<T>> {
    counted();
    Ok(stmt.first::<T>(None).await?)
}

pub async fn all<T: DeserializeOwned>(stmt: D1PreparedStatement) -> Result<Vec<T>> {
    counted();
    Ok(stmt.all().await?.results::<T>()?)
}

/// Runs one statement and answers D1's result.
pub async fn run(stmt: D1PreparedStatement) -> Result<worker::d1::D1Result> {
    counted();
    Ok(stmt.run().await?)
}

/// Runs a write and answers how many rows it changed (the basis of every conditional update).
pub async fn changes(stmt: D1PreparedStatement) -> Result<usize> {
    Ok(run(stmt).await?.meta()?.and_then(|m| m.changes).unwrap_or(0))
}

/// Runs statements atomically (one round trip); answers each statement's result.
pub async fn batch_results(db: &D1Database, stmts: Vec<D1PreparedStatement>) -> Result<Vec<worker::d1::D1Result>> {
    counted();
    Ok(db.batch(stmts).await?)
}

/// The first row of one statement's result in a batch (reads batched with others or appended
/// to a write batch, so that they cost no round trip of their own).
pub fn first_row<T: DeserializeOwned>(r: Option<&worker::d1::D1Result>) -> Result<Option<T>> {
    match r {
        Some(r) => Ok(r.results::<T>()?.into_iter().next()),
        None => Err(StoreError::Database("a batch answered fewer results than statements".into())),
    }
}

/// Runs statements atomically; answers each statement's changed-row count.
pub async fn batch(db: &D1Database, stmts: Vec<D1PreparedStatement>) -> Result<Vec<usize>> {
    let results = batch_results(db, stmts).await?;
    results.iter().map(|r| Ok(r.meta()?.and_then(|m| m.changes).unwrap_or(0))).collect()
}

/// Like `batch`, but a constraint violation comes back as the `Constraint` D1 reported, for
/// the caller to name (which index it was is the caller's knowledge, not D1's).
pub async fn batch_or_constraint(
    db: &D1Database,
    stmts: Vec<D1PreparedStatement>,
) -> Result<std::result::Result<Vec<usize>, Constraint>> {
    counted();
    match db.batch(stmts).await {
        Ok(results) => Ok(Ok(results
            .iter()
            .map(|r| Ok(r.meta()?.and_then(|m| m.changes).unwrap_or(0)))
            .collect::<Result<Vec<usize>>>()?)),
        Err(e) => match Constraint::of(&e) {
            Some(c) => Ok(Err(c)),
            None => Err(e.into()),
        },
    }
}

/// Runs one write; a constraint violation comes back as the `Constraint` D1 reported.
pub async fn run_or_constraint(stmt: D1PreparedStatement) -> Result<std::result::Result<usize, Constraint>> {
    counted();
    match stmt.run().await {
        Ok(r) => Ok(Ok(r.meta()?.and_then(|m| m.changes).unwrap_or(0))),
        Err(e) => match Constraint::of(&e) {
            Some(c) => Ok(Err(c)),
            None => Err(e.into()),
        },
    }
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
    list_filtered_where(db, table, cols, "1", f, before, limit).await
}

/// [`list_filtered`] with a fixed SQL condition `cond` on top of `f` (a constant of the caller,
/// never input).
pub async fn list_filtered_where<T: DeserializeOwned>(
    db: &D1Database,
    table: &str,
    cols: &str,
    cond: &str,
    f: &Filter<'_>,
    before: &str,
    limit: u32,
) -> Result<Vec<T>> {
    all(worker::query!(
        db,
        &format!(
            "SELECT {cols} FROM {table} WHERE ({cond}) AND id < ?1 AND (?2 IS NULL OR program_id = ?2)
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
