//! The bulk SQL of the CSV export (pages of rows with the partner's email and name) and of the
//! partner import (a few batched reads of what the file names, then `json_each` inserts of up
//! to [`CHUNK`] rows per statement, idempotent by `ON CONFLICT DO NOTHING`).

use super::{all, batch_results, list_filtered_where, rows, Filter, StoreResult};
use serde_json::Value;
use worker::d1::D1PreparedStatement;
use worker::D1Database;

// ---------------------------------------------------------------------------------------------
// Export

/// What an export reads: the list's filters.
pub enum Source<'a> {
    /// `held`: as `commissions::list_held`.
    Commissions(Filter<'a>, Option<bool>),
    Payouts(Filter<'a>),
    /// (program, status)
    Partners(Option<&'a str>, Option<&'a str>),
}

const PARTNER_COLS: &str = "(SELECT p.email FROM partners p WHERE p.id = partner_id) AS partner_email, \
     (SELECT p.name FROM partners p WHERE p.id = partner_id) AS partner_name";

/// One page of rows (JSON objects named as the export's columns), newest first, `limit + 1`
/// rows. Commissions and payouts carry their partner's email and name; partners their group's
/// name, first live link and first live coupon code.
pub async fn page(db: &D1Database, src: &Source<'_>, before: &str, limit: u32) -> StoreResult<Vec<Value>> {
    match src {
        Source::Commissions(f, held) => {
            let cond = match held {
                None => "1",
                Some(true) => "status = 'pending' AND hold_reasons IS NOT NULL",
                Some(false) => "NOT (status = 'pending' AND hold_reasons IS NOT NULL)",
            };
            let cols = format!(
                "id, created_at, program_id, partner_id, {PARTNER_COLS}, kind, status, \
                 (status = 'pending' AND hold_reasons IS NOT NULL) AS held, \
                 (SELECT group_concat(value, ' ') FROM json_each(hold_reasons)) AS hold_reasons, currency, amount, \
                 sale_amount, refunded_amount, clawed_back, invoice_id, payout_id, reason, description, approved_at, paid_at"
            );
            list_filtered_where(db, "commissions", &cols, cond, f, before, limit).await
        }
        Source::Payouts(f) => {
            let cols = format!(
                "id, created_at, program_id, partner_id, {PARTNER_COLS}, status, currency, amount, reversed_amount, \
                 commission_count, stripe_transfer_id, failure_message, paid_at"
            );
            list_filtered_where(db, "payouts", &cols, "1", f, before, limit).await
        }
        Source::Partners(program_id, status) => {
            all(query!(
                db,
                "SELECT p.id, p.created_at, p.program_id, p.email, p.name, p.status, p.country, p.group_id,
                     (SELECT g.name FROM partner_groups g WHERE g.id = p.group_id) AS group_name,
                     l.key AS link_key, l.url AS link_url, 'https://' || l.domain || '/' || l.key AS short_url,
                     (SELECT c.code FROM coupons c WHERE c.partner_id = p.id AND c.deleted_at IS NULL ORDER BY c.id LIMIT 1) AS coupon_code,
                     p.payouts_enabled
                 FROM partners p
                 LEFT JOIN links l ON l.id = (SELECT x.id FROM links x WHERE x.partner_id = p.id AND x.deleted_at IS NULL ORDER BY x.id LIMIT 1)
                 WHERE p.id < ?1 AND (?2 IS NULL OR p.program_id = ?2) AND (?3 IS NULL OR p.status = ?3)
                 ORDER BY p.id DESC LIMIT ?4",
                before,
                program_id,
                status,
                limit + 1
            )?)
            .await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Import

/// Values per `json_each` statement (reads and writes).
pub const CHUNK: usize = 500;
/// Statements per D1 batch of reads (one round trip each).
pub const STATEMENTS_PER_BATCH: usize = 20;
/// What one write batch holds at most: 100 one-row updates, or 20 `json_each` statements.
const BATCH_WEIGHT: usize = 100;
const JSON_WEIGHT: usize = 5;

pub struct KnownPartner {
    pub id: String,
    pub email: String,
    pub name: String,
    pub country: Option<String>,
    pub group_id: Option<String>,
    pub status: String,
}
from_row!(KnownPartner { id, email, name, country, group_id, status });

pub struct Owner {
    /// A link key, a link's destination, a coupon's lower-case code, or a group id.
    pub v: String,
    pub partner_id: Option<String>,
}
from_row!(Owner { v, partner_id });

/// What the program has that an import names.
#[derive(Default)]
pub struct Known {
    pub partners: Vec<KnownPartner>,
    /// Live links on the import's domain by key.
    pub link_keys: Vec<Owner>,
    /// Destinations of the live links of the partners named.
    pub link_urls: Vec<Owner>,
    /// Live coupons by lower-case code.
    pub coupons: Vec<Owner>,
    /// The program's groups (`v`: id).
    pub groups: Vec<Owner>,
}

fn json_chunks(values: &[String]) -> StoreResult<Vec<String>> {
    values.chunks(CHUNK).map(|c| Ok(serde_json::to_string(c)?)).collect()
}

/// Reads what the rows name, in as few round trips as the statements need (one for up to
/// `STATEMENTS_PER_BATCH` statements of `CHUNK` values each).
pub async fn load(
    db: &D1Database,
    program_id: &str,
    domain: Option<&str>,
    emails: &[String],
    keys: &[String],
    codes: &[String],
) -> StoreResult<Known> {
    // (kind, statement): 0 partners, 1 link urls, 2 link keys, 3 coupons, 4 groups.
    let mut stmts: Vec<(u8, D1PreparedStatement)> = vec![(
        4,
        query!(db, "SELECT id AS v, NULL AS partner_id FROM partner_groups WHERE program_id = ?1", program_id)?,
    )];
    for chunk in json_chunks(emails)? {
        stmts.push((
            0,
            query!(
                db,
                "SELECT id, email, name, country, group_id, status FROM partners
                 WHERE program_id = ?1 AND email IN (SELECT value FROM json_each(?2))",
                program_id,
                &chunk
            )?,
        ));
        stmts.push((
            1,
            query!(
                db,
                "SELECT l.url AS v, l.partner_id FROM partners p JOIN links l ON l.partner_id = p.id AND l.deleted_at IS NULL
                 WHERE p.program_id = ?1 AND p.email IN (SELECT value FROM json_each(?2))",
                program_id,
                &chunk
            )?,
        ));
    }
    if let Some(domain) = domain {
        for chunk in json_chunks(keys)? {
            stmts.push((
                2,
                query!(
                    db,
                    "SELECT key AS v, partner_id FROM links
                     WHERE domain = ?1 AND deleted_at IS NULL AND key IN (SELECT value FROM json_each(?2))",
                    domain,
                    &chunk
                )?,
            ));
        }
    }
    for chunk in json_chunks(codes)? {
        stmts.push((
            3,
            query!(
                db,
                "SELECT code_key AS v, partner_id FROM coupons
                 WHERE program_id = ?1 AND deleted_at IS NULL AND code_key IN (SELECT value FROM json_each(?2))",
                program_id,
                &chunk
            )?,
        ));
    }
    let mut known = Known::default();
    let mut stmts = stmts.into_iter().peekable();
    while stmts.peek().is_some() {
        let part: Vec<(u8, D1PreparedStatement)> = stmts.by_ref().take(STATEMENTS_PER_BATCH).collect();
        let (kinds, part): (Vec<u8>, Vec<D1PreparedStatement>) = part.into_iter().unzip();
        let results = batch_results(db, part).await?;
        for (kind, r) in kinds.into_iter().zip(results.iter()) {
            match kind {
                0 => known.partners.extend(rows::<KnownPartner>(r)?),
                1 => known.link_urls.extend(rows::<Owner>(r)?),
                2 => known.link_keys.extend(rows::<Owner>(r)?),
                3 => known.coupons.extend(rows::<Owner>(r)?),
                _ => known.groups.extend(rows::<Owner>(r)?),
            }
        }
    }
    Ok(known)
}

/// What an import writes, one JSON object per row (see the statements in [`write`]).
#[derive(Default)]
pub struct Writes {
    /// `{id, email, name, country, group_id}`
    pub partners: Vec<Value>,
    /// `{id, name, country, group_id}` (country and group: `null` keeps the partner's)
    pub updates: Vec<Value>,
    /// `{id, email, key, url}`
    pub links: Vec<Value>,
    /// `{id, email, code, key}`
    pub coupons: Vec<Value>,
    /// `{id, partner_id, hash}`
    pub invitations: Vec<Value>,
}

/// The program's group `group_id` names, else NULL (a group deleted meanwhile is no error).
const GROUP: &str =
    "(SELECT g.id FROM partner_groups g WHERE g.id = json_extract(j.value, '$.group_id') AND g.program_id = ?1)";

/// Writes an import: new partners first, then updates, links, coupons and invitations, each
/// statement inserting up to `CHUNK` rows, `STATEMENTS_PER_BATCH` statements per atomic batch.
/// Every insert is `ON CONFLICT DO NOTHING` and links and coupons find their partner by email,
/// so a second run (or a run that stopped between batches, run again) creates nothing twice.
/// Answers the invitations written (their ids), when there were any.
#[allow(clippy::too_many_arguments)]
pub async fn write(
    db: &D1Database,
    program_id: &str,
    domain: Option<&str>,
    status: &str,
    invite_expires_at: i64,
    now: i64,
    w: &Writes,
) -> StoreResult<Vec<String>> {
    let mut stmts: Vec<(usize, D1PreparedStatement)> = Vec::new();
    for c in w.partners.chunks(CHUNK) {
        stmts.push((JSON_WEIGHT, query!(
            db,
            &format!(
                "INSERT INTO partners (id, program_id, email, name, status, payouts_enabled, country, group_id, created_at, updated_at)
                 SELECT json_extract(j.value, '$.id'), ?1, json_extract(j.value, '$.email'), json_extract(j.value, '$.name'), ?2, 0,
                     json_extract(j.value, '$.country'), {GROUP}, ?3, ?3
                 FROM json_each(?4) j WHERE true ON CONFLICT (program_id, email) DO NOTHING"
            ),
            program_id,
            status,
            now,
            &serde_json::to_string(c)?
        )?));
    }
    // One statement per changed partner (by id): an UPDATE ... FROM json_each would let SQLite
    // scan the chunk once per partner.
    for u in &w.updates {
        stmts.push((1, query!(
            db,
            "UPDATE partners SET name = ?3, country = COALESCE(?4, country),
                 group_id = COALESCE((SELECT g.id FROM partner_groups g WHERE g.id = ?5 AND g.program_id = ?1), group_id),
                 updated_at = ?6
             WHERE id = ?2 AND program_id = ?1",
            program_id,
            u["id"].as_str(),
            u["name"].as_str(),
            u["country"].as_str(),
            u["group_id"].as_str(),
            now
        )?));
    }
    if let Some(domain) = domain {
        for c in w.links.chunks(CHUNK) {
            stmts.push((JSON_WEIGHT, query!(
                db,
                "INSERT INTO links (id, program_id, partner_id, domain, key, url, created_at, updated_at)
                 SELECT json_extract(j.value, '$.id'), ?1, p.id, ?2, json_extract(j.value, '$.key'), json_extract(j.value, '$.url'), ?3, ?3
                 FROM json_each(?4) j CROSS JOIN partners p
                 WHERE p.program_id = ?1 AND p.email = json_extract(j.value, '$.email') AND p.status != 'banned'
                 ON CONFLICT DO NOTHING",
                program_id,
                domain,
                now,
                &serde_json::to_string(c)?
            )?));
        }
    }
    for c in w.coupons.chunks(CHUNK) {
        stmts.push((JSON_WEIGHT, query!(
            db,
            "INSERT INTO coupons (id, program_id, partner_id, code, code_key, created_at)
             SELECT json_extract(j.value, '$.id'), ?1, p.id, json_extract(j.value, '$.code'), json_extract(j.value, '$.key'), ?2
             FROM json_each(?3) j CROSS JOIN partners p
             WHERE p.program_id = ?1 AND p.email = json_extract(j.value, '$.email') AND p.status != 'banned'
             ON CONFLICT DO NOTHING",
            program_id,
            now,
            &serde_json::to_string(c)?
        )?));
    }
    for c in w.invitations.chunks(CHUNK) {
        // Only partners this import created (their fresh ids) are invited.
        stmts.push((
            JSON_WEIGHT,
            query!(
                db,
                "INSERT INTO invitations (id, program_id, partner_id, token_hash, expires_at, created_at)
             SELECT json_extract(j.value, '$.id'), ?1, p.id, json_extract(j.value, '$.hash'), ?2, ?3
             FROM json_each(?4) j CROSS JOIN partners p
             WHERE p.id = json_extract(j.value, '$.partner_id') AND p.status = 'invited'
             ON CONFLICT DO NOTHING",
                program_id,
                invite_expires_at,
                now,
                &serde_json::to_string(c)?
            )?,
        ));
    }
    // In order (the links and coupons find their partner by email), batches of at most
    // `BATCH_WEIGHT`: a `json_each` statement weighs 5, a one-row update 1.
    let mut batch = Vec::new();
    let mut weight = 0;
    for (wt, stmt) in stmts {
        if weight + wt > BATCH_WEIGHT {
            batch_results(db, std::mem::take(&mut batch)).await?;
            weight = 0;
        }
        batch.push(stmt);
        weight += wt;
    }
    if !batch.is_empty() {
        batch_results(db, batch).await?;
    }
    if w.invitations.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = w.invitations.iter().filter_map(|v| v["id"].as_str()).collect();
    let written: Vec<Owner> = all(query!(
        db,
        "SELECT id AS v, partner_id FROM invitations WHERE id IN (SELECT value FROM json_each(?1))",
        &serde_json::to_string(&ids)?
    )?)
    .await?;
    Ok(written.into_iter().map(|o| o.v).collect())
}
