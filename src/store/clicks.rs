use super::all;
use super::StoreResult;
use serde::{Deserialize, Serialize};
use worker::{query, D1Database};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Click {
    pub id: String,
    pub program_id: String,
    pub partner_id: String,
    pub link_id: String,
    #[serde(serialize_with = "super::programs::ser_time")]
    pub created_at: i64,
    pub country: Option<String>,
    pub referrer_host: Option<String>,
}

/// What the redirect records, off the response path.
pub struct NewClick<'a> {
    pub id: &'a str,
    pub program_id: &'a str,
    pub partner_id: &'a str,
    pub link_id: &'a str,
    pub at: i64,
    pub country: Option<String>,
    pub referrer_host: Option<String>,
    pub ip_hash: Option<String>,
    pub ua_hash: Option<String>,
}

pub async fn insert(db: &D1Database, c: &NewClick<'_>) -> StoreResult<()> {
    query!(
        db,
        "INSERT INTO clicks (id, program_id, partner_id, link_id, created_at, country, referrer_host, ip_hash, ua_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        c.id,
        c.program_id,
        c.partner_id,
        c.link_id,
        c.at,
        &c.country,
        &c.referrer_host,
        &c.ip_hash,
        &c.ua_hash
    )?
    .run()
    .await?;
    Ok(())
}

pub struct Filter<'a> {
    pub program_id: Option<&'a str>,
    pub partner_id: Option<&'a str>,
    pub link_id: Option<&'a str>,
}

pub async fn list(db: &D1Database, f: &Filter<'_>, before: &str, limit: u32) -> StoreResult<Vec<Click>> {
    all(query!(
        db,
        "SELECT id, program_id, partner_id, link_id, created_at, country, referrer_host FROM clicks
         WHERE id < ?1 AND (?2 IS NULL OR program_id = ?2) AND (?3 IS NULL OR partner_id = ?3) AND (?4 IS NULL OR link_id = ?4)
         ORDER BY id DESC LIMIT ?5",
        before,
        f.program_id,
        f.partner_id,
        f.link_id,
        limit + 1
    )?)
    .await
}

/// The click a lead presents, with what attribution needs to judge it.
#[derive(Deserialize)]
pub struct ClickForLead {
    pub id: String,
    pub program_id: String,
    pub partner_id: String,
    pub link_id: String,
    pub created_at: i64,
    pub partner_status: refport_core::partner::PartnerStatus,
}

pub async fn get_for_lead(db: &D1Database, id: &str) -> StoreResult<Option<ClickForLead>> {
    super::first(query!(
        db,
        "SELECT c.id, c.program_id, c.partner_id, c.link_id, c.created_at, p.status AS partner_status
         FROM clicks c JOIN partners p ON p.id = c.partner_id WHERE c.id = ?1",
        id
    )?)
    .await
}
