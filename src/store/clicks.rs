use super::all;
use super::StoreResult;
use refport_core::time::DAY_MS;
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;
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

/// A click as the redirect records it: the clicks queue's message, written by its consumer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewClick {
    pub id: String,
    pub program_id: String,
    pub partner_id: String,
    pub link_id: String,
    pub at: i64,
    pub country: Option<String>,
    pub referrer_host: Option<String>,
    pub ip_hash: Option<String>,
    pub ua_hash: Option<String>,
}

/// Bound parameters of one click row; D1 allows 100 per statement.
const PARAMS: usize = 9;
/// Rows per multi-row INSERT: 11 x 9 = 99 parameters.
pub const ROWS_PER_INSERT: usize = 100 / PARAMS;
/// Click ids per rollup statement (4 more parameters name the group).
const IDS_PER_COUNT: usize = 90;

/// What a batch write did, from D1's own counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Written {
    /// Clicks inserted (a click already there, delivered again, is not): the rows RETURNING
    /// answered.
    pub inserted: usize,
    /// D1's `rows_written` (billing): the click rows and the rollup rows.
    pub rows_written: usize,
}

/// `?{from}, ?{from+1}, ...` for `n` parameters.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
}

/// Writes clicks in one atomic D1 batch: first, per (program, partner, link, UTC day), one
/// rollup upsert adding the clicks of the batch that are not stored yet (checked by id, before
/// any of them is inserted); then multi-row inserts, `ON CONFLICT DO NOTHING` on the id. So a
/// click delivered twice (at-least-once queues) is stored once and counted once, and a failed
/// batch wrote nothing and can be retried whole. Rows written: one per click, plus one per
/// rollup group per batch.
pub async fn insert_batch(db: &D1Database, clicks: &[NewClick]) -> StoreResult<Written> {
    // A click twice in the same batch is one click.
    let mut seen = std::collections::HashSet::new();
    let clicks: Vec<&NewClick> = clicks.iter().filter(|c| seen.insert(c.id.as_str())).collect();
    if clicks.is_empty() {
        return Ok(Written::default());
    }
    // (program, partner, link, day) -> the ids of the batch's clicks in that rollup row
    type Group<'a> = ((&'a str, &'a str, &'a str, i64), Vec<&'a str>);
    let mut groups: Vec<Group> = Vec::new();
    for c in &clicks {
        let key = (c.program_id.as_str(), c.partner_id.as_str(), c.link_id.as_str(), c.at.div_euclid(DAY_MS));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, ids)) => ids.push(&c.id),
            None => groups.push((key, vec![&c.id])),
        }
    }
    let mut stmts = Vec::new();
    for ((program, partner, link, day), ids) in &groups {
        for chunk in ids.chunks(IDS_PER_COUNT) {
            let values = (0..chunk.len()).map(|i| format!("(?{})", i + 5)).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "INSERT INTO daily_stats (program_id, partner_id, link_id, day, currency, clicks)
                 SELECT ?1, ?2, ?3, ?4, '', COUNT(*) FROM (VALUES {values}) AS v
                 WHERE NOT EXISTS (SELECT 1 FROM clicks c WHERE c.id = v.column1) HAVING COUNT(*) > 0
                 ON CONFLICT DO UPDATE SET clicks = clicks + excluded.clicks"
            );
            let mut args: Vec<JsValue> = vec![
                JsValue::from_str(program),
                JsValue::from_str(partner),
                JsValue::from_str(link),
                JsValue::from_f64(*day as f64),
            ];
            args.extend(chunk.iter().map(|id| JsValue::from_str(id)));
            stmts.push(db.prepare(&sql).bind(&args)?);
        }
    }
    let counts = stmts.len();
    for chunk in clicks.chunks(ROWS_PER_INSERT) {
        let rows = (0..chunk.len()).map(|i| format!("({})", placeholders(i * PARAMS + 1, PARAMS))).collect::<Vec<_>>();
        let sql = format!(
            "INSERT INTO clicks (id, program_id, partner_id, link_id, created_at, country, referrer_host, ip_hash, ua_hash)
             VALUES {} ON CONFLICT DO NOTHING RETURNING id",
            rows.join(", ")
        );
        let mut args: Vec<JsValue> = Vec::with_capacity(chunk.len() * PARAMS);
        for c in chunk {
            args.extend([
                JsValue::from_str(&c.id),
                JsValue::from_str(&c.program_id),
                JsValue::from_str(&c.partner_id),
                JsValue::from_str(&c.link_id),
                JsValue::from_f64(c.at as f64),
                opt(&c.country),
                opt(&c.referrer_host),
                opt(&c.ip_hash),
                opt(&c.ua_hash),
            ]);
        }
        stmts.push(db.prepare(&sql).bind(&args)?);
    }
    let mut w = Written::default();
    for (i, r) in super::batch_results(db, stmts).await?.iter().enumerate() {
        if i >= counts {
            w.inserted += r.results::<serde::de::IgnoredAny>()?.len();
        }
        if let Some(m) = r.meta()? {
            w.rows_written += m.rows_written.unwrap_or(0);
        }
    }
    Ok(w)
}

fn opt(v: &Option<String>) -> JsValue {
    v.as_deref().map(JsValue::from_str).unwrap_or(JsValue::NULL)
}

/// Deletes up to `limit` clicks made before `cutoff_id` (ids sort by time: see
/// `refport_core::click_id::cutoff_id`), oldest first. Answers how many were deleted. The
/// rollups keep counting them. (A click delivered again after its row was deleted would be
/// counted again; retention keeps rows a month past the longest window, far beyond the
/// queue's retries.)
pub async fn delete_before(db: &D1Database, cutoff_id: &str, limit: u32) -> StoreResult<usize> {
    super::changes(query!(
        db,
        "DELETE FROM clicks WHERE id IN (SELECT id FROM clicks WHERE id < ?1 ORDER BY id LIMIT ?2)",
        cutoff_id,
        limit
    )?)
    .await
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

/// The click of a lead. A signed click id (see `refport_core::click_id`) that verifies under
/// `key` is answered from its link without reading the click's row, which the clicks queue
/// may not have written yet (or retention already deleted); any other id from its row.
pub async fn get_for_lead(db: &D1Database, key: Option<&[u8; 32]>, id: &str) -> StoreResult<Option<ClickForLead>> {
    if let Some(signed) = key.and_then(|k| refport_core::click_id::verify(k, id)) {
        return super::first(query!(
            db,
            "SELECT ?2 AS id, l.program_id, l.partner_id, l.id AS link_id, ?3 AS created_at, p.status AS partner_status
             FROM links l JOIN partners p ON p.id = l.partner_id WHERE l.id = ?1",
            &signed.link_id,
            id,
            signed.at
        )?)
        .await;
    }
    super::first(query!(
        db,
        "SELECT c.id, c.program_id, c.partner_id, c.link_id, c.created_at, p.status AS partner_status
         FROM clicks c JOIN partners p ON p.id = c.partner_id WHERE c.id = ?1",
        id
    )?)
    .await
}
