use super::StoreResult;
use super::{all, changes, first};
use serde::Serialize;
use worker::D1Database;

struct Row {
    id: String,
    name: String,
    key_hint: String,
    program_id: Option<String>,
    permissions: String,
    created_at: i64,
    revoked_at: Option<i64>,
}
from_row!(Row { id, name, key_hint, program_id, permissions, created_at, revoked_at });

#[derive(Clone, Debug, Serialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub key_hint: String,
    pub program_id: Option<String>,
    pub permissions: Vec<String>,
    #[serde(serialize_with = "super::programs::ser_time")]
    pub created_at: i64,
    #[serde(serialize_with = "super::programs::ser_opt_time")]
    pub revoked_at: Option<i64>,
}

impl From<Row> for ApiKey {
    fn from(r: Row) -> ApiKey {
        ApiKey {
            id: r.id,
            name: r.name,
            key_hint: r.key_hint,
            program_id: r.program_id,
            permissions: refport_core::wire::from_text(r.permissions.as_bytes()).unwrap_or_default(),
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        }
    }
}

const COLS: &str = "id, name, key_hint, program_id, permissions, created_at, revoked_at";

pub async fn find_active(db: &D1Database, key_hash: &str) -> StoreResult<Option<ApiKey>> {
    let row: Option<Row> = first(query!(
        db,
        &format!("SELECT {COLS} FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL"),
        key_hash
    )?)
    .await?;
    Ok(row.map(ApiKey::from))
}

pub async fn insert(db: &D1Database, k: &ApiKey, key_hash: &str) -> StoreResult<()> {
    super::run(query!(
        db,
        "INSERT INTO api_keys (id, name, key_hash, key_hint, program_id, permissions, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        &k.id,
        &k.name,
        key_hash,
        &k.key_hint,
        &k.program_id,
        serde_json::to_string(&k.permissions)?,
        k.created_at
    )?).await?;
    Ok(())
}

pub async fn list(db: &D1Database, program: Option<&str>, before: &str, limit: u32) -> StoreResult<Vec<ApiKey>> {
    let rows: Vec<Row> = all(query!(
        db,
        &format!(
            "SELECT {COLS} FROM api_keys WHERE id < ?1 AND (?2 IS NULL OR program_id = ?2) ORDER BY id DESC LIMIT ?3"
        ),
        before,
        program,
        limit + 1
    )?)
    .await?;
    Ok(rows.into_iter().map(ApiKey::from).collect())
}

pub async fn get(db: &D1Database, id: &str) -> StoreResult<Option<ApiKey>> {
    let row: Option<Row> = first(query!(db, &format!("SELECT {COLS} FROM api_keys WHERE id = ?1"), id)?).await?;
    Ok(row.map(ApiKey::from))
}

/// Revokes a key once; answers whether this call revoked it.
pub async fn revoke(db: &D1Database, id: &str, now: i64) -> StoreResult<bool> {
    Ok(changes(query!(db, "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL", id, now)?)
        .await?
        == 1)
}
