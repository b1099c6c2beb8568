//! Coupon codes: a partner's codes, unique per program without regard to case among live ones.

use super::conversions::ProgramRef;
use super::partners::Partner;
use super::D1Result;
use super::{all, changes, run_or_constraint, StoreError, StoreResult};
use worker::d1::D1PreparedStatement;
use worker::D1Database;

#[derive(Clone, Debug)]
pub struct Coupon {
    pub id: String,
    pub program_id: String,
    pub partner_id: String,
    pub code: String,
    pub created_at: i64,
}
from_row!(Coupon { id, program_id, partner_id, code, created_at });

const COLS: &str = "id, program_id, partner_id, code, created_at";

pub async fn list_for_partner(db: &D1Database, partner_id: &str, before: &str, limit: u32) -> StoreResult<Vec<Coupon>> {
    all(query!(
        db,
        &format!(
            "SELECT {COLS} FROM coupons WHERE partner_id = ?1 AND deleted_at IS NULL AND id < ?2
             ORDER BY id DESC LIMIT ?3"
        ),
        partner_id,
        before,
        limit + 1
    )?)
    .await
}

/// The programs (at most 2: more than one is ambiguous) with a live coupon of this lower-case
/// code, to find the program of a conversion that names no program and no known click or
/// customer.
pub async fn programs_of_code(db: &D1Database, key: &str) -> StoreResult<Vec<ProgramRef>> {
    all(query!(db, "SELECT program_id FROM coupons WHERE code_key = ?1 AND deleted_at IS NULL LIMIT 2", key)?).await
}

pub enum Inserted {
    Ok,
    /// A live coupon of the program has this code (in any case).
    CodeTaken,
}

/// Inserts a coupon; `key` is its lower-case code.
pub async fn insert(db: &D1Database, c: &Coupon, key: &str) -> StoreResult<Inserted> {
    let r = query!(
        db,
        "INSERT INTO coupons (id, program_id, partner_id, code, code_key, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &c.id,
        &c.program_id,
        &c.partner_id,
        &c.code,
        key,
        c.created_at
    )?;
    match run_or_constraint(r).await? {
        Ok(_) => Ok(Inserted::Ok),
        Err(k) if k.is_unique_on("coupons") => Ok(Inserted::CodeTaken),
        Err(k) => Err(StoreError::Database(format!("constraint {k:?}"))),
    }
}

/// Deletes a live coupon, of program `program_id` when given (a key bound to a program);
/// answers whether there was one.
pub async fn soft_delete(db: &D1Database, id: &str, program_id: Option<&str>, now: i64) -> StoreResult<bool> {
    Ok(changes(query!(
        db,
        "UPDATE coupons SET deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL AND (?3 IS NULL OR program_id = ?3)",
        id,
        now,
        program_id
    )?)
    .await?
        == 1)
}

/// The reads of a conversion's code, for its batch of reads: the live coupon of the program
/// with this lower-case code, then its partner.
pub(super) fn by_code_stmts(db: &D1Database, program_id: &str, key: &str) -> StoreResult<[D1PreparedStatement; 2]> {
    Ok([
        query!(
            db,
            &format!("SELECT {COLS} FROM coupons WHERE program_id = ?1 AND code_key = ?2 AND deleted_at IS NULL"),
            program_id,
            key
        )?,
        super::partners::of_coupon_stmt(db, program_id, key)?,
    ])
}

/// The coupon and its partner that `by_code_stmts` found, from their results in a batch.
pub(super) fn read(
    coupon: Option<&D1Result>,
    partner: Option<&D1Result>,
) -> StoreResult<Option<(Coupon, Option<Partner>)>> {
    let Some(c) = super::first_row::<Coupon>(coupon)? else {
        return Ok(None);
    };
    Ok(Some((c, super::partners::read(partner)?)))
}
