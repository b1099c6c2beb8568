//! Payouts: claim approved commissions atomically, record the transfer's outcome.

use super::{all, batch, first, Constraint, ConstraintKind};
use super::{StoreError, StoreResult};
use refport_core::payout::PayoutStatus;
use serde::{Deserialize, Serialize};
use worker::{query, D1Database};

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Payout {
    pub id: String,
    pub program_id: String,
    pub partner_id: String,
    pub amount: i64,
    pub currency: String,
    pub status: PayoutStatus,
    pub stripe_transfer_id: Option<String>,
    pub failure_message: Option<String>,
    pub commission_count: i64,
    pub attempts: i64,
    #[serde(serialize_with = "super::programs::ser_time")]
    pub created_at: i64,
    #[serde(serialize_with = "super::programs::ser_opt_time")]
    pub paid_at: Option<i64>,
}

const COLS: &str = "id, program_id, partner_id, amount, currency, status, stripe_transfer_id, failure_message, \
     commission_count, attempts, created_at, paid_at";

pub async fn get(db: &D1Database, id: &str) -> StoreResult<Option<Payout>> {
    Ok(first(query!(db, &format!("SELECT {COLS} FROM payouts WHERE id = ?1"), id)?).await?)
}

pub use super::Filter;

pub async fn list(db: &D1Database, f: &Filter<'_>, before: &str, limit: u32) -> StoreResult<Vec<Payout>> {
    Ok(super::list_filtered(db, "payouts", COLS, f, before, limit).await?)
}

/// A partner's approved, unclaimed balance in one program, with what the payout needs.
#[derive(Debug, Deserialize)]
pub struct Candidate {
    pub program_id: String,
    pub partner_id: String,
    pub settings: String,
    pub stripe_account_id: String,
    pub net: i64,
    pub n: i64,
}

/// Balances of partners who can be paid (payouts enabled, active, onboarded, nothing in flight).
pub async fn candidates(db: &D1Database, limit: usize) -> StoreResult<Vec<Candidate>> {
    Ok(all(query!(
        db,
        "SELECT c.program_id, c.partner_id, p.settings, pn.stripe_account_id, SUM(c.amount) AS net, COUNT(*) AS n
         FROM commissions c
         JOIN partners pn ON pn.id = c.partner_id
         JOIN programs p ON p.id = c.program_id
         WHERE c.status = 'approved' AND c.payout_id IS NULL
           AND pn.payouts_enabled = 1 AND pn.status = 'active' AND pn.stripe_account_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM payouts po WHERE po.partner_id = c.partner_id AND po.status = 'processing')
         GROUP BY c.program_id, c.partner_id
         HAVING SUM(c.amount) > 0
         ORDER BY c.program_id, c.partner_id
         LIMIT ?1",
        limit as u32
    )?)
    .await?)
}

#[derive(Deserialize)]
struct Claimed {
    amount: i64,
    commission_count: i64,
}

pub enum Claim {
    /// (amount, commission count) actually claimed.
    Claimed(i64, i64),
    /// Another run has a payout in flight for this partner, or the claimed sum was negative.
    Busy,
}

/// Creates a `processing` payout and claims every approved, unclaimed commission of the
/// partner in the program, in one atomic batch. The payout amount is the sum of what was
/// claimed (never what was read earlier). The unique index `payouts_one_processing` makes two
/// overlapping runs unable to both claim.
pub async fn claim(
    db: &D1Database,
    id: &str,
    program_id: &str,
    partner_id: &str,
    currency: &str,
    now: i64,
) -> StoreResult<Claim> {
    let stmts = vec![
        query!(
            db,
            "INSERT INTO payouts (id, program_id, partner_id, amount, currency, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, 0, ?4, 'processing', ?5, ?5)",
            id,
            program_id,
            partner_id,
            currency,
            now
        )?,
        query!(
            db,
            "UPDATE commissions SET payout_id = ?1, updated_at = ?4
             WHERE program_id = ?2 AND partner_id = ?3 AND status = 'approved' AND payout_id IS NULL",
            id,
            program_id,
            partner_id,
            now
        )?,
        query!(
            db,
            "UPDATE payouts SET amount = (SELECT COALESCE(SUM(amount), 0) FROM commissions WHERE payout_id = ?1),
                 commission_count = (SELECT COUNT(*) FROM commissions WHERE payout_id = ?1)
             WHERE id = ?1 RETURNING amount, commission_count",
            id
        )?,
    ];
    match db.batch(stmts).await {
        Ok(results) => {
            let rows: Vec<Claimed> = results.get(2).map(|r| r.results()).transpose()?.unwrap_or_default();
            match rows.first() {
                Some(c) => Ok(Claim::Claimed(c.amount, c.commission_count)),
                None => Err(StoreError::NotFound("claimed payout row")),
            }
        }
        Err(e) => match Constraint::of(&e) {
            // A payout already in flight (unique index), or a net-negative claim (CHECK amount >= 0).
            Some(c) if c.is_unique_on("payouts") || c.kind == ConstraintKind::Check => Ok(Claim::Busy),
            _ => Err(e.into()),
        },
    }
}

/// Undoes a claim that turned out below the minimum: nothing was sent, so nothing remains.
pub async fn release_unsent(db: &D1Database, id: &str, now: i64) -> StoreResult<()> {
    batch(
        db,
        vec![
            query!(
                db,
                "UPDATE commissions SET payout_id = NULL, updated_at = ?2 WHERE payout_id = ?1 AND status = 'approved'",
                id,
                now
            )?,
            query!(
                db,
                "DELETE FROM payouts WHERE id = ?1 AND status = 'processing' AND stripe_transfer_id IS NULL",
                id
            )?,
        ],
    )
    .await?;
    Ok(())
}

/// The transfer succeeded: the payout and its commissions become paid, atomically, once.
pub async fn mark_paid(db: &D1Database, id: &str, transfer_id: &str, now: i64) -> StoreResult<bool> {
    let changes = batch(
        db,
        vec![
            query!(
                db,
                "UPDATE payouts SET status = 'paid', stripe_transfer_id = ?2, paid_at = ?3, updated_at = ?3, failure_message = NULL
                 WHERE id = ?1 AND status = 'processing'",
                id,
                transfer_id,
                now
            )?,
            query!(
                db,
                "INSERT INTO commission_changes (commission_id, from_status, to_status, amount_before, amount_after, reason, created_at)
                 SELECT id, status, 'paid', amount, amount, NULL, ?2 FROM commissions WHERE payout_id = ?1 AND status = 'approved'",
                id,
                now
            )?,
            query!(
                db,
                "UPDATE commissions SET status = 'paid', paid_at = ?2, updated_at = ?2 WHERE payout_id = ?1 AND status = 'approved'",
                id,
                now
            )?,
            super::outbox::payout(db, "payout.paid", id, "paid", now)?,
            super::outbox::commissions_where(db, "c.payout_id = ?2 AND c.paid_at = ?1", now, Some(id))?,
        ]
        .into_iter()
        .chain(super::outbox::fan_out(db, now)?)
        .collect(),
    )
    .await?;
    Ok(changes.first().copied().unwrap_or(0) == 1)
}

/// Stripe refused for good: the payout fails with Stripe's message and its commissions return
/// to the approved pool for a later payout.
pub async fn mark_failed(db: &D1Database, id: &str, message: &str, now: i64) -> StoreResult<bool> {
    let changes = batch(
        db,
        vec![
            query!(
                db,
                "UPDATE payouts SET status = 'failed', failure_message = ?2, updated_at = ?3, attempts = attempts + 1
                 WHERE id = ?1 AND status = 'processing'",
                id,
                message,
                now
            )?,
            query!(
                db,
                "UPDATE commissions SET payout_id = NULL, updated_at = ?2
                 WHERE payout_id = ?1 AND status = 'approved' AND EXISTS (SELECT 1 FROM payouts WHERE id = ?1 AND status = 'failed')",
                id,
                now
            )?,
            super::outbox::payout(db, "payout.failed", id, "failed", now)?,
        ]
        .into_iter()
        .chain(super::outbox::fan_out(db, now)?)
        .collect(),
    )
    .await?;
    Ok(changes.first().copied().unwrap_or(0) == 1)
}

/// A transient failure: the payout stays `processing` and is retried with the same key.
pub async fn note_attempt(db: &D1Database, id: &str, message: &str, now: i64) -> StoreResult<()> {
    query!(
        db,
        "UPDATE payouts SET attempts = attempts + 1, failure_message = ?2, updated_at = ?3 WHERE id = ?1 AND status = 'processing'",
        id,
        message,
        now
    )?
    .run()
    .await?;
    Ok(())
}

/// Payouts left `processing` by an earlier run (a crash, a 5xx, a lost answer), oldest first.
#[derive(Debug, Deserialize)]
pub struct InFlight {
    pub id: String,
    pub program_id: String,
    pub partner_id: String,
    pub amount: i64,
    pub currency: String,
    pub stripe_account_id: Option<String>,
}

pub async fn in_flight(db: &D1Database, older_than: i64, limit: usize) -> StoreResult<Vec<InFlight>> {
    Ok(all(query!(
        db,
        "SELECT po.id, po.program_id, po.partner_id, po.amount, po.currency, pn.stripe_account_id
         FROM payouts po JOIN partners pn ON pn.id = po.partner_id
         WHERE po.status = 'processing' AND po.updated_at <= ?1 ORDER BY po.id LIMIT ?2",
        older_than,
        limit as u32
    )?)
    .await?)
}

/// Approves pending commissions whose hold period has passed, at most `limit`, oldest first,
/// recording each change; one atomic batch. Answers how many were approved.
pub async fn approve_due(db: &D1Database, now: i64, limit: usize) -> StoreResult<usize> {
    const DUE: &str = "SELECT c.id FROM commissions c JOIN programs p ON p.id = c.program_id
         WHERE c.status = 'pending' AND c.created_at + p.hold_days * 86400000 <= ?1 ORDER BY c.id LIMIT ?2";
    let changes = batch(
        db,
        vec![
            query!(
                db,
                &format!(
                    "INSERT INTO commission_changes (commission_id, from_status, to_status, amount_before, amount_after, reason, created_at)
                     SELECT id, 'pending', 'approved', amount, amount, 'hold_period_passed', ?1 FROM commissions WHERE id IN ({DUE})"
                ),
                now,
                limit as u32
            )?,
            query!(
                db,
                &format!(
                    "UPDATE commissions SET status = 'approved', approved_at = ?1, updated_at = ?1 WHERE status = 'pending' AND id IN ({DUE})"
                ),
                now,
                limit as u32
            )?,
            super::outbox::commissions_where(db, "c.status = 'approved' AND c.approved_at = ?1 AND c.updated_at = ?1 AND ?2 IS NULL", now, None)?,
        ]
        .into_iter()
        .chain(super::outbox::fan_out(db, now)?)
        .collect(),
    )
    .await?;
    Ok(changes.get(1).copied().unwrap_or(0))
}
