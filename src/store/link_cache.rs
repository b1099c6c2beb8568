//! The redirect's hot-path cache, in two layers:
//! 1. In the isolate: resolved links (and unknown keys) for [`ISOLATE_TTL_MS`], so a warm
//!    isolate answers a redirect with no KV read and no D1 query. This TTL is the staleness
//!    bound across isolates: a link changed, deleted or whose partner was banned elsewhere is
//!    seen by every isolate within it (plus KV's own propagation, up to 60 s by Cloudflare's
//!    documentation). A write in the same isolate updates its entry at once (`put`). A lead is
//!    never attributed from this cache: it reads the partner's status from D1.
//! 2. KV `link:{domain}/{key}` -> everything the redirect needs, so a KV hit answers without
//!    touching D1. Misses fall back to D1 and refill; unknown keys are cached as a short-lived
//!    negative entry. Every link/partner/program write refreshes its keys.

use super::first;
use super::StoreResult;
use serde::Serialize;
use std::cell::RefCell;
use std::collections::HashMap;
use worker::kv::KvStore;
use worker::D1Database;

/// Seconds a negative (unknown key) entry lives: KV's minimum TTL. A link created later
/// overwrites it at once, so this never hides a new link.
const NEGATIVE_TTL: u64 = 60;
const NEGATIVE: &str = "-";

refport_core::from_json! {
    #[derive(Clone, Debug, Serialize)]
    pub struct CachedLink {
        pub link_id: String,
        pub partner_id: String,
        pub program_id: String,
        pub url: String,
        pub window_days: u32,
        pub cookie_domain: Option<String>,
        /// False when the partner is banned: the link still redirects, without attribution.
        pub attributable: bool,
        /// The program's `banned_referrers` while its `banned_referrer` rule is on (else empty): a
        /// click from one of them (or a subdomain) carries the flag in its click id.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub banned_referrers: Vec<String> = default,
    }
}

pub enum Lookup {
    Hit(CachedLink),
    Unknown,
    Miss,
}

pub fn kv_key(domain: &str, key: &str) -> String {
    format!("link:{domain}/{key}")
}

/// How long an isolate trusts what it resolved: the cross-isolate staleness bound (seconds).
pub const ISOLATE_TTL_MS: i64 = 5_000;
/// Entries an isolate keeps; past it the cache starts over (a redirect then reads KV once).
const ISOLATE_MAX_ENTRIES: usize = 10_000;

thread_local! {
    static ISOLATE: RefCell<HashMap<String, (Option<CachedLink>, i64)>> = RefCell::new(HashMap::new());
}

/// The isolate's entry for the link, if still fresh at `now`: `Some(None)` is a known unknown.
pub fn isolate_get(domain: &str, key: &str, now: i64) -> Option<Option<CachedLink>> {
    ISOLATE.with(|m| match m.borrow().get(&kv_key(domain, key)) {
        Some((v, expires)) if *expires > now => Some(v.clone()),
        _ => None,
    })
}

/// Remembers what the link resolved to (or that it is unknown) until `now + ISOLATE_TTL_MS`.
pub fn isolate_put(domain: &str, key: &str, value: Option<&CachedLink>, now: i64) {
    ISOLATE.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= ISOLATE_MAX_ENTRIES {
            m.clear();
        }
        m.insert(kv_key(domain, key), (value.cloned(), now + ISOLATE_TTL_MS));
    });
}

pub async fn get(kv: &KvStore, domain: &str, key: &str) -> StoreResult<Lookup> {
    crate::metrics::add(crate::metrics::Counter::kv_reads, 1);
    let raw = kv.get(&kv_key(domain, key)).text().await.map_err(worker::Error::from)?;
    Ok(match raw.as_deref() {
        None => Lookup::Miss,
        Some(NEGATIVE) => Lookup::Unknown,
        Some(s) => refport_core::wire::from_text(s.as_bytes()).map(Lookup::Hit).unwrap_or(Lookup::Miss),
    })
}

struct Row {
    link_id: String,
    partner_id: String,
    program_id: String,
    url: String,
    domain: String,
    key: String,
    window_days: u32,
    cookie_domain: Option<String>,
    partner_status: refport_core::partner::PartnerStatus,
    banned_referrers: Option<String>,
}
from_row!(Row {
    link_id,
    partner_id,
    program_id,
    url,
    domain,
    key,
    window_days,
    cookie_domain,
    partner_status,
    banned_referrers
});

const SELECT: &str = "SELECT l.id AS link_id, l.partner_id, l.program_id, l.url, l.domain, l.key,
        json_extract(p.settings, '$.attribution_window_days') AS window_days,
        json_extract(p.settings, '$.cookie_domain') AS cookie_domain,
        pn.status AS partner_status,
        CASE WHEN COALESCE(json_extract(p.settings, '$.fraud_rules.banned_referrer'), 'off') != 'off'
             THEN json_extract(p.settings, '$.banned_referrers') END AS banned_referrers
     FROM links l JOIN programs p ON p.id = l.program_id JOIN partners pn ON pn.id = l.partner_id";

impl From<Row> for CachedLink {
    fn from(r: Row) -> CachedLink {
        CachedLink {
            link_id: r.link_id,
            partner_id: r.partner_id,
            program_id: r.program_id,
            url: r.url,
            window_days: r.window_days,
            cookie_domain: r.cookie_domain,
            attributable: r.partner_status != refport_core::partner::PartnerStatus::Banned,
            banned_referrers: r
                .banned_referrers
                .and_then(|j| refport_core::wire::from_text(j.as_bytes()).ok())
                .unwrap_or_default(),
        }
    }
}

pub async fn load(db: &D1Database, domain: &str, key: &str) -> StoreResult<Option<CachedLink>> {
    let row: Option<Row> = first(query!(
        db,
        &format!("{SELECT} WHERE l.domain = ?1 AND l.key = ?2 AND l.deleted_at IS NULL"),
        domain,
        key
    )?)
    .await?;
    Ok(row.map(CachedLink::from))
}

/// Rewrites the cache entries of a program's (or one partner's) live links, `limit` at a time
/// in id order after `after`: one D1 query and one KV write per link. Answers the last link id
/// written when more may remain (the caller records it as a job the cron continues).
pub async fn refresh_page(
    db: &D1Database,
    kv: &KvStore,
    program_id: &str,
    partner_id: Option<&str>,
    after: &str,
    limit: usize,
) -> StoreResult<(usize, Option<String>)> {
    let rows: Vec<Row> = super::all(query!(
        db,
        &format!(
            "{SELECT} WHERE l.program_id = ?1 AND (?2 IS NULL OR l.partner_id = ?2) AND l.deleted_at IS NULL AND l.id > ?3
             ORDER BY l.id LIMIT ?4"
        ),
        program_id,
        partner_id,
        after,
        limit as u32
    )?)
    .await?;
    let full = rows.len() == limit;
    let written = rows.len();
    let mut last = None;
    for r in rows {
        let (domain, key) = (r.domain.clone(), r.key.clone());
        last = Some(r.link_id.clone());
        put(kv, &domain, &key, Some(&CachedLink::from(r))).await?;
    }
    Ok((written, if full { last } else { None }))
}

/// Links rewritten inline by the request that changed them; the cron continues past this.
pub const INLINE_REFRESH: usize = 100;
/// Links rewritten per cron run (one KV write each: a subrequest).
pub const CRON_REFRESH: usize = 200;

/// Starts a refresh: the first page inline, the rest as a job for the cron.
pub async fn refresh_all(
    db: &D1Database,
    kv: &KvStore,
    program_id: &str,
    partner_id: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    if let (_, Some(after)) = refresh_page(db, kv, program_id, partner_id, "", INLINE_REFRESH).await? {
        super::run(query!(
            db,
            "INSERT INTO cache_refresh_jobs (program_id, partner_id, after_link_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            program_id,
            partner_id,
            after,
            now
        )?).await?;
    }
    Ok(())
}

struct Job {
    id: i64,
    program_id: String,
    partner_id: Option<String>,
    after_link_id: String,
}
from_row!(Job { id, program_id, partner_id, after_link_id });

/// Continues pending refresh jobs (cron): at most `budget` links per run. Answers links written.
pub async fn continue_jobs(db: &D1Database, kv: &KvStore, budget: usize) -> StoreResult<usize> {
    let jobs: Vec<Job> = super::all(query!(
        db,
        "SELECT id, program_id, partner_id, after_link_id FROM cache_refresh_jobs ORDER BY id LIMIT 5"
    ))
    .await?;
    let mut written = 0;
    for j in jobs {
        if written >= budget {
            break;
        }
        let (n, next) =
            refresh_page(db, kv, &j.program_id, j.partner_id.as_deref(), &j.after_link_id, budget - written).await?;
        written += n;
        match next {
            Some(after) => {
                super::run(query!(db, "UPDATE cache_refresh_jobs SET after_link_id = ?2 WHERE id = ?1", j.id, after)?)
                    .await?;
            }
            None => {
                super::run(query!(db, "DELETE FROM cache_refresh_jobs WHERE id = ?1", j.id)?).await?;
            }
        }
    }
    Ok(written)
}

pub async fn put(kv: &KvStore, domain: &str, key: &str, value: Option<&CachedLink>) -> StoreResult<()> {
    // This isolate sees the change at once; others within ISOLATE_TTL_MS.
    isolate_put(domain, key, value, crate::state::now_ms());
    let k = kv_key(domain, key);
    match value {
        // As bytes: `put` of a string goes through serde_wasm_bindgen and a float formatter.
        Some(v) => kv.put_bytes(&k, &serde_json::to_vec(v)?)?.execute().await?,
        None => kv.put_bytes(&k, NEGATIVE.as_bytes())?.expiration_ttl(NEGATIVE_TTL).execute().await?,
    }
    Ok(())
}

/// Re-reads the link from D1 and writes what it finds (or a negative entry) to KV.
pub async fn refresh(db: &D1Database, kv: &KvStore, domain: &str, key: &str) -> StoreResult<()> {
    let v = load(db, domain, key).await?;
    put(kv, domain, key, v.as_ref()).await?;
    Ok(())
}
