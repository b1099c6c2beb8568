//! The redirect's hot-path cache: KV `link:{domain}/{key}` -> everything the redirect needs, so
//! a KV hit answers without touching D1. Misses fall back to D1 and refill; unknown keys are
//! cached as a short-lived negative entry. Every link/partner/program write refreshes its keys.

use super::first;
use crate::http::error::ApiResult;
use serde::{Deserialize, Serialize};
use worker::kv::KvStore;
use worker::{query, D1Database};

/// Seconds a negative (unknown key) entry lives: KV's minimum TTL. A link created later
/// overwrites it at once, so this never hides a new link.
const NEGATIVE_TTL: u64 = 60;
const NEGATIVE: &str = "-";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CachedLink {
    pub link_id: String,
    pub partner_id: String,
    pub program_id: String,
    pub url: String,
    pub window_days: u32,
    pub cookie_domain: Option<String>,
    /// False when the partner is banned: the link still redirects, without attribution.
    pub attributable: bool,
}

pub enum Lookup {
    Hit(CachedLink),
    Unknown,
    Miss,
}

pub fn kv_key(domain: &str, key: &str) -> String {
    format!("link:{domain}/{key}")
}

pub async fn get(kv: &KvStore, domain: &str, key: &str) -> worker::Result<Lookup> {
    let raw = kv.get(&kv_key(domain, key)).text().await.map_err(worker::Error::from)?;
    Ok(match raw.as_deref() {
        None => Lookup::Miss,
        Some(NEGATIVE) => Lookup::Unknown,
        Some(s) => serde_json::from_str(s).map(Lookup::Hit).unwrap_or(Lookup::Miss),
    })
}

#[derive(Deserialize)]
struct Row {
    link_id: String,
    partner_id: String,
    program_id: String,
    url: String,
    window_days: u32,
    cookie_domain: Option<String>,
    partner_status: String,
}

pub async fn load(db: &D1Database, domain: &str, key: &str) -> worker::Result<Option<CachedLink>> {
    let row: Option<Row> = first(query!(
        db,
        "SELECT l.id AS link_id, l.partner_id, l.program_id, l.url,
                json_extract(p.settings, '$.attribution_window_days') AS window_days,
                json_extract(p.settings, '$.cookie_domain') AS cookie_domain,
                pn.status AS partner_status
         FROM links l JOIN programs p ON p.id = l.program_id JOIN partners pn ON pn.id = l.partner_id
         WHERE l.domain = ?1 AND l.key = ?2 AND l.deleted_at IS NULL",
        domain,
        key
    )?)
    .await?;
    Ok(row.map(|r| CachedLink {
        link_id: r.link_id,
        partner_id: r.partner_id,
        program_id: r.program_id,
        url: r.url,
        window_days: r.window_days,
        cookie_domain: r.cookie_domain,
        attributable: r.partner_status != "banned",
    }))
}

pub async fn put(kv: &KvStore, domain: &str, key: &str, value: Option<&CachedLink>) -> worker::Result<()> {
    let k = kv_key(domain, key);
    match value {
        Some(v) => kv.put(&k, serde_json::to_string(v)?)?.execute().await?,
        None => kv.put(&k, NEGATIVE)?.expiration_ttl(NEGATIVE_TTL).execute().await?,
    }
    Ok(())
}

/// Re-reads the link from D1 and writes what it finds (or a negative entry) to KV.
pub async fn refresh(db: &D1Database, kv: &KvStore, domain: &str, key: &str) -> ApiResult<()> {
    let v = load(db, domain, key).await?;
    put(kv, domain, key, v.as_ref()).await?;
    Ok(())
}
