use super::all;
use super::StoreResult;
use refport_core::click_id;
use refport_core::time::DAY_MS;
use serde::Serialize;
use wasm_bindgen::JsValue;
use worker::d1::D1PreparedStatement;
use worker::D1Database;

#[derive(Clone, Debug, Serialize)]
pub struct Click {
    pub id: String,
    pub program_id: String,
    pub partner_id: String,
    pub link_id: String,
    #[serde(serialize_with = "super::programs::ser_time")]
    pub created_at: i64,
    pub country: Option<String>,
    pub referrer_host: Option<String>,
    pub sub1: Option<String>,
    pub sub2: Option<String>,
    pub sub3: Option<String>,
}
from_row!(Click { id, program_id, partner_id, link_id, created_at, country, referrer_host, sub1, sub2, sub3 });

refport_core::from_json! {
    /// A click as the redirect records it: the clicks queue's message, written by its consumer.
    #[derive(Clone, Debug, Serialize)]
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
        /// The partner's sub-IDs (`refport_core::click::sub_ids`); absent from the messages of
        /// versions before them.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub sub1: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub sub2: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub sub3: Option<String>,
    }
}

impl NewClick {
    fn tagged(&self) -> bool {
        self.sub1.is_some() || self.sub2.is_some() || self.sub3.is_some()
    }
}

/// Columns of one row of the click insert: the row keys travel as one JSON parameter per
/// statement, an array of such rows (`json_rows`).
const PARAMS: usize = 15;

/// What a batch write did, from D1's own counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Written {
    /// Clicks inserted: new clicks, each a new row (a click delivered again, or a visit that
    /// folded into a click of the same visitor, is not): the rows RETURNING answered.
    pub inserted: usize,
    /// D1's `rows_written` (billing): the click rows and the rollup rows.
    pub rows_written: usize,
}

/// A table of `width` columns named like a `VALUES` list's (`column1`, `column2`, ...) read
/// from the JSON array of arrays bound as `?1`: a batch's rows are one parameter, so each kind
/// of statement is one statement whatever the batch's size (D1 allows 100 bound parameters; a
/// statement per few rows was most of a batch's statements, each one D1 round of work).
fn json_rows(width: usize) -> String {
    let cols: Vec<String> = (0..width).map(|i| format!("json_extract(j.value, '$[{i}]') AS column{}", i + 1)).collect();
    format!("(SELECT {} FROM json_each(?1) AS j)", cols.join(", "))
}

/// The rows as the JSON text `json_rows` reads.
fn rows_json(rows: &[serde_json::Value]) -> StoreResult<String> {
    serde_json::to_string(rows).map_err(|e| super::StoreError::Database(e.to_string()))
}

/// One row key of a batch: the batch's clicks with the same id (a v2 id: the same visitor, link
/// and flags in the same hour; any other id: the same click delivered twice).
struct Key<'a> {
    /// The earliest of them: what a new row stores.
    click: &'a NewClick,
    /// Their times, sorted (a v1 or unsigned id: its first only, since a repeat is a redelivery).
    times: Vec<i64>,
    /// A v2 id: the id of the same visitor, link and flags in the previous hour.
    sibling: Option<String>,
    /// 0, or 1 + the layer of its sibling when the sibling is in the batch too.
    layer: usize,
}

/// The batch's row keys, earliest first, each with its layer.
fn row_keys<'a>(key: Option<&[u8; 32]>, clicks: &'a [NewClick]) -> Vec<Key<'a>> {
    let mut sorted: Vec<&NewClick> = clicks.iter().collect();
    sorted.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    let mut keys: Vec<Key> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for c in sorted {
        if let Some(&i) = index.get(c.id.as_str()) {
            if keys[i].sibling.is_some() {
                keys[i].times.push(c.at);
            }
            continue;
        }
        let signed = key.and_then(|k| click_id::verify(k, &c.id).map(|s| (k, s)));
        let sibling = signed.and_then(|(k, s)| click_id::sibling(k, &s, s.at - click_id::HOUR_MS));
        // Clicks sorted by time: a sibling (an hour earlier) is already a key if it is in the batch.
        let layer = sibling.as_deref().and_then(|sib| index.get(sib)).map_or(0, |&i| keys[i].layer + 1);
        index.insert(&c.id, keys.len());
        keys.push(Key { click: c, times: vec![c.at], sibling, layer });
    }
    keys
}

/// Writes clicks in one atomic D1 batch, counting one click per visitor and link per hour.
///
/// A click with a v2 id (`refport_core::click_id`, verified under `key`) is a new click unless
/// a stored click has its id (the same visitor, link and flags in the same hour) or the id of
/// the same visitor in the previous hour with `created_at` less than an hour before it: then
/// it adds one to that row's `hits` instead. So "within an hour" slides: it is measured from
/// the click that was counted. Any other id (v1, unsigned, or no key) is a new click unless its
/// row exists, as before: a redelivery, counted and stored once, no hit added.
///
/// Each statement reads the layer's row keys from one bound JSON array (`json_rows`): a
/// layer is at most five statements however many clicks it has.
///
/// The batch is folded first: its clicks sorted by time and grouped by id (one row key each).
/// Row keys whose previous-hour sibling is in the same batch are written in a later layer, so
/// each layer sees the rows the previous one wrote. Per layer: (1) per (program, partner, link,
/// UTC day), one rollup upsert adding the layer's new clicks (checked against the stored rows
/// before anything of the layer is written), and per (program, partner, link, day, sub-IDs)
/// one more for the clicks that carry sub-IDs; (2) the hits of row keys whose row exists; (3) the
/// hits that fold into the previous hour's row; (4) the insert of the new clicks (a row
/// that folded its first visits into the previous hour starts at its first visit that did
/// not). A failed batch wrote nothing and is retried whole. Rows written: one per new click,
/// one per row a repeated visit adds hits to, plus one per rollup group per batch (and two,
/// the row and its index entry, per sub-ID group).
///
/// A batch delivered again after it was written (at-least-once queues) counts no click twice,
/// but adds its v2 visits' hits again: `hits` is at least the visits, a fraud signal, not money.
pub async fn insert_batch(db: &D1Database, key: Option<&[u8; 32]>, clicks: &[NewClick]) -> StoreResult<Written> {
    let keys = row_keys(key, clicks);
    if keys.is_empty() {
        return Ok(Written::default());
    }
    let layers = keys.iter().map(|k| k.layer).max().unwrap_or(0) + 1;
    let mut stmts = Vec::new();
    // Which statements answer inserted rows (RETURNING id).
    let mut inserts = Vec::new();
    for layer in 0..layers {
        let keys: Vec<&Key> = keys.iter().filter(|k| k.layer == layer).collect();
        count_new(db, &keys, &mut stmts)?;
        let folding: Vec<&Key> = keys.iter().copied().filter(|k| k.sibling.is_some()).collect();
        if !folding.is_empty() {
            // A row key whose row exists: every visit of the batch is a hit of that row.
            let sql = format!(
                "UPDATE clicks SET hits = clicks.hits + v.column2 FROM {} AS v WHERE clicks.id = v.column1",
                json_rows(2)
            );
            let rows: Vec<serde_json::Value> =
                folding.iter().map(|k| serde_json::json!([k.click.id, k.times.len()])).collect();
            stmts.push(db.prepare(&sql).bind(&[JsValue::from_str(&rows_json(&rows)?)])?);
            // A row key without a row whose previous-hour row began less than an hour before its
            // first visit: the visits less than an hour after that row's start are its hits.
            let sql = format!(
                "UPDATE clicks SET hits = clicks.hits
                   + (SELECT COUNT(*) FROM json_each(v.column3) AS t WHERE t.value < clicks.created_at + {h})
                 FROM {} AS v
                 WHERE clicks.id = v.column2 AND clicks.created_at > v.column4
                   AND NOT EXISTS (SELECT 1 FROM clicks o WHERE o.id = v.column1)",
                json_rows(4),
                h = click_id::HOUR_MS
            );
            let rows: Vec<serde_json::Value> = folding
                .iter()
                .map(|k| serde_json::json!([k.click.id, k.sibling, k.times, k.times[0] - click_id::HOUR_MS]))
                .collect();
            stmts.push(db.prepare(&sql).bind(&[JsValue::from_str(&rows_json(&rows)?)])?);
        }
        {
            // w.cs: the start of the previous hour's row, if any; the visits before it + 1 h
            // folded into it (above), the others make this row.
            let sql = format!(
                "INSERT INTO clicks (id, program_id, partner_id, link_id, created_at, country, referrer_host, ip_hash, ua_hash, hits,
                   sub1, sub2, sub3)
                 SELECT w.column1, w.column2, w.column3, w.column4,
                   COALESCE((SELECT MIN(t.value) FROM json_each(w.column11) AS t WHERE t.value >= w.cs + {h}), w.column5),
                   w.column6, w.column7, w.column8, w.column9,
                   w.column12 - (SELECT COUNT(*) FROM json_each(w.column11) AS t WHERE t.value < w.cs + {h}),
                   w.column13, w.column14, w.column15
                 FROM (SELECT v.*, (SELECT s.created_at FROM clicks s WHERE s.id = v.column10) AS cs FROM {} AS v) AS w
                 WHERE NOT EXISTS (SELECT 1 FROM clicks o WHERE o.id = w.column1)
                   AND w.column12 > (SELECT COUNT(*) FROM json_each(w.column11) AS t WHERE t.value < w.cs + {h})
                 ON CONFLICT DO NOTHING RETURNING id",
                json_rows(PARAMS),
                h = click_id::HOUR_MS
            );
            let rows: Vec<serde_json::Value> = keys
                .iter()
                .map(|k| {
                    let c = k.click;
                    serde_json::json!([
                        c.id,
                        c.program_id,
                        c.partner_id,
                        c.link_id,
                        c.at,
                        c.country,
                        c.referrer_host,
                        c.ip_hash,
                        c.ua_hash,
                        k.sibling,
                        k.times,
                        k.times.len(),
                        c.sub1,
                        c.sub2,
                        c.sub3
                    ])
                })
                .collect();
            inserts.push(stmts.len());
            stmts.push(db.prepare(&sql).bind(&[JsValue::from_str(&rows_json(&rows)?)])?);
        }
    }
    let mut w = Written::default();
    for (i, r) in super::batch_results(db, stmts).await?.iter().enumerate() {
        if inserts.contains(&i) {
            w.inserted += r.row_count();
        }
        w.rows_written += r.rows_written();
    }
    Ok(w)
}

/// The rollup upserts of a layer: per (program, partner, link, UTC day), the count of its row
/// keys that make a new row, decided exactly as the insert decides (no row of that id, and no
/// previous-hour row that began less than an hour before the key's last visit); and for the
/// clicks with sub-IDs, the same count per (program, partner, link, day, sub1, sub2, sub3) in
/// `daily_sub_stats` (clicks without any add nothing there: stats by sub-ID count them as
/// `daily_stats` minus the tagged ones, see `store::stats`).
fn count_new<'a>(db: &D1Database, keys: &[&Key<'a>], stmts: &mut Vec<D1PreparedStatement>) -> StoreResult<()> {
    // (program, partner, link, day, the sub-IDs ('' for absent) or none) -> the row keys counted there
    type GroupKey<'a> = (&'a str, &'a str, &'a str, i64, Option<[&'a str; 3]>);
    let mut groups: Vec<(GroupKey, Vec<&Key>)> = Vec::new();
    for k in keys {
        let c = k.click;
        let day = c.at.div_euclid(DAY_MS);
        let sub = |v: &'a Option<String>| v.as_deref().unwrap_or("");
        let subs = c.tagged().then(|| [sub(&c.sub1), sub(&c.sub2), sub(&c.sub3)]);
        let mut gs = vec![(c.program_id.as_str(), c.partner_id.as_str(), c.link_id.as_str(), day, None)];
        gs.extend(subs.map(|s| (gs[0].0, gs[0].1, gs[0].2, day, Some(s))));
        for g in gs {
            match groups.iter_mut().find(|(x, _)| *x == g) {
                Some((_, ks)) => ks.push(k),
                None => groups.push((g, vec![k])),
            }
        }
    }
    for ((program, partner, link, day, subs), ks) in &groups {
        // The row keys as one JSON parameter, [[id, sibling or null, last visit - 1 h], ...]:
        // one statement (one rollup row written) per group, whatever its size.
        let rows: Vec<(&str, Option<&str>, i64)> = ks
            .iter()
            .map(|k| (k.click.id.as_str(), k.sibling.as_deref(), k.times[k.times.len() - 1] - click_id::HOUR_MS))
            .collect();
        let rows = serde_json::to_string(&rows).map_err(|e| super::StoreError::Database(e.to_string()))?;
        let mut args = vec![
            JsValue::from_str(program),
            JsValue::from_str(partner),
            JsValue::from_str(link),
            JsValue::from_f64(*day as f64),
            JsValue::from_str(&rows),
        ];
        let sql = match subs {
            None => COUNT_CLICKS,
            Some(subs) => {
                args.extend(subs.iter().map(|s| JsValue::from_str(s)));
                COUNT_SUB_CLICKS
            }
        };
        stmts.push(db.prepare(sql).bind(&args)?);
    }
    Ok(())
}

/// The rollup upsert of a group's new clicks: ?1..?4 program, partner, link, day; ?5 its row keys.
const COUNT_CLICKS: &str = "INSERT INTO daily_stats (program_id, partner_id, link_id, day, currency, clicks)
     SELECT ?1, ?2, ?3, ?4, '', COUNT(*) FROM json_each(?5) AS v
     WHERE NOT EXISTS (SELECT 1 FROM clicks c WHERE c.id = json_extract(v.value, '$[0]'))
       AND NOT EXISTS (SELECT 1 FROM clicks c WHERE c.id = json_extract(v.value, '$[1]')
                       AND c.created_at > json_extract(v.value, '$[2]'))
     HAVING COUNT(*) > 0
     ON CONFLICT DO UPDATE SET clicks = clicks + excluded.clicks";

/// The same for the clicks with sub-IDs: ?6..?8 sub1, sub2, sub3 ('' when absent).
const COUNT_SUB_CLICKS: &str =
    "INSERT INTO daily_sub_stats (program_id, partner_id, link_id, day, sub1, sub2, sub3, currency, clicks)
     SELECT ?1, ?2, ?3, ?4, ?6, ?7, ?8, '', COUNT(*) FROM json_each(?5) AS v
     WHERE NOT EXISTS (SELECT 1 FROM clicks c WHERE c.id = json_extract(v.value, '$[0]'))
       AND NOT EXISTS (SELECT 1 FROM clicks c WHERE c.id = json_extract(v.value, '$[1]')
                       AND c.created_at > json_extract(v.value, '$[2]'))
     HAVING COUNT(*) > 0
     ON CONFLICT DO UPDATE SET clicks = clicks + excluded.clicks";

/// Hour prefixes per [`partner_visits_stmt`] (two bound parameters each, one for the partner).
pub const MAX_VISIT_HOURS: usize = 48;

/// The visits (`hits`) one visitor paid to a partner's links, over the hours whose id prefixes
/// are given (`refport_core::click_id::visitor_hour_prefix`: every v2 click of the visitor in
/// that hour, any link, any flags, shares it): primary-key range scans only, to put in a batch.
/// One row, `hits` (0 when none is stored).
pub fn partner_visits_stmt(
    db: &D1Database,
    partner_id: &str,
    hour_prefixes: &[String],
) -> worker::Result<D1PreparedStatement> {
    if hour_prefixes.is_empty() {
        return Ok(db.prepare("SELECT 0 AS hits"));
    }
    let prefixes = &hour_prefixes[..hour_prefixes.len().min(MAX_VISIT_HOURS)];
    let ranges = (0..prefixes.len())
        .map(|i| format!("(id > ?{} AND id < ?{})", 2 + 2 * i, 3 + 2 * i))
        .collect::<Vec<_>>()
        .join(" OR ");
    let sql = format!("SELECT COALESCE(SUM(hits), 0) AS hits FROM clicks WHERE partner_id = ?1 AND ({ranges})");
    let mut args: Vec<JsValue> = vec![JsValue::from_str(partner_id)];
    for p in prefixes {
        args.push(JsValue::from_str(p));
        args.push(JsValue::from_str(&format!("{p}~")));
    }
    db.prepare(&sql).bind(&args)
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
        "SELECT id, program_id, partner_id, link_id, created_at, country, referrer_host, sub1, sub2, sub3 FROM clicks
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
#[derive(Clone)]
pub struct ClickForLead {
    pub id: String,
    pub program_id: String,
    pub partner_id: String,
    pub link_id: String,
    pub created_at: i64,
    pub partner_status: refport_core::partner::PartnerStatus,
    /// The visitor's country from the click's row (none while the row is still in the queue).
    pub country: Option<String>,
    /// The verified v2 id's visit (visitor and flags); `None` for v1 and unsigned ids.
    pub visit: Option<refport_core::click_id::Visit>,
    /// The id prefixes of the same visitor's clicks (any link) in the 24 hours up to this click
    /// (v2 only), for the `click_spam` rule.
    pub recent_hours: Vec<String>,
}
from_row!(ClickForLead { id, program_id, partner_id, link_id, created_at, partner_status } default { country } skip { visit, recent_hours });

/// The click of a lead. A signed click id (see `refport_core::click_id`) that verifies under
/// `key` is answered from its link without reading the click's row, which the clicks queue
/// may not have written yet (or retention already deleted); any other id from its row.
pub async fn get_for_lead(db: &D1Database, key: Option<&[u8; 32]>, id: &str) -> StoreResult<Option<ClickForLead>> {
    if let Some(signed) = key.and_then(|k| refport_core::click_id::verify(k, id)) {
        let recent_hours = (0..24)
            .filter_map(|h| {
                refport_core::click_id::visitor_hour_prefix(&signed, signed.at - h * refport_core::click_id::HOUR_MS)
            })
            .collect();
        let found: Option<ClickForLead> = super::first(query!(
            db,
            "SELECT ?2 AS id, l.program_id, l.partner_id, l.id AS link_id, ?3 AS created_at, p.status AS partner_status,
               (SELECT k.country FROM clicks k WHERE k.id = ?2) AS country
             FROM links l JOIN partners p ON p.id = l.partner_id WHERE l.id = ?1",
            &signed.link_id,
            id,
            signed.at
        )?)
        .await?;
        return Ok(found.map(|c| ClickForLead { visit: signed.visit, recent_hours, ..c }));
    }
    super::first(query!(
        db,
        "SELECT c.id, c.program_id, c.partner_id, c.link_id, c.created_at, p.status AS partner_status, c.country
         FROM clicks c JOIN partners p ON p.id = c.partner_id WHERE c.id = ?1",
        id
    )?)
    .await
}
