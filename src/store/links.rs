use super::{all, changes, first, run_or_constraint, StoreError, StoreResult, Taken};
use serde::Serialize;
use worker::D1Database;

#[derive(Clone, Debug, Serialize)]
pub struct Link {
    pub id: String,
    pub program_id: String,
    pub partner_id: String,
    pub domain: String,
    pub key: String,
    pub url: String,
    #[serde(serialize_with = "super::programs::ser_time")]
    pub created_at: i64,
    #[serde(serialize_with = "super::programs::ser_time")]
    pub updated_at: i64,
}
from_row!(Link { id, program_id, partner_id, domain, key, url, created_at, updated_at });

const COLS: &str = "id, program_id, partner_id, domain, key, url, created_at, updated_at";

pub async fn get(db: &D1Database, id: &str) -> StoreResult<Option<Link>> {
    first(query!(db, &format!("SELECT {COLS} FROM links WHERE id = ?1 AND deleted_at IS NULL"), id)?).await
}

pub async fn list_for_partner(db: &D1Database, partner_id: &str, before: &str, limit: u32) -> StoreResult<Vec<Link>> {
    all(query!(
        db,
        &format!(
            "SELECT {COLS} FROM links WHERE partner_id = ?1 AND deleted_at IS NULL AND id < ?2 ORDER BY id DESC LIMIT ?3"
        ),
        partner_id,
        before,
        limit + 1
    )?)
    .await
}

pub enum Inserted {
    Ok,
    KeyTaken,
}

pub async fn insert(db: &D1Database, l: &Link) -> StoreResult<Inserted> {
    let r = query!(
        db,
        "INSERT INTO links (id, program_id, partner_id, domain, key, url, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        &l.id,
        &l.program_id,
        &l.partner_id,
        &l.domain,
        &l.key,
        &l.url,
        l.created_at
    )?;
    match run_or_constraint(r).await? {
        Ok(_) => Ok(Inserted::Ok),
        Err(c) if c.is_unique_on("links") => Ok(Inserted::KeyTaken),
        Err(c) => Err(StoreError::Database(format!("constraint {c:?}"))),
    }
}

pub async fn update(db: &D1Database, l: &Link) -> StoreResult<()> {
    let r = query!(
        db,
        "UPDATE links SET url = ?2, key = ?3, updated_at = ?4 WHERE id = ?1 AND deleted_at IS NULL",
        &l.id,
        &l.url,
        &l.key,
        l.updated_at
    )?;
    match run_or_constraint(r).await? {
        Ok(_) => Ok(()),
        Err(c) if c.is_unique_on("links") => Err(StoreError::Taken(Taken::LinkKey)),
        Err(c) => Err(StoreError::Database(format!("constraint {c:?}"))),
    }
}

pub async fn soft_delete(db: &D1Database, id: &str, now: i64) -> StoreResult<bool> {
    Ok(changes(query!(db, "UPDATE links SET deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL", id, now)?).await?
        == 1)
}
