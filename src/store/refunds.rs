//! Refunds: each one is planned by the core against the commission's current state and written
//! in one batch whose first statement claims that state (unique (commission, refunded_before)):
//! two refunds planned against the same state cannot both land.

use super::commissions::Commission;
use super::StoreResult;
use super::{batch_or_constraint, first, ConstraintKind, StoreError};
use refport_core::commission::{RefundPlan, RejectReason, Status};
use refport_core::conversion::RefundDecision;
use serde::Serialize;
use worker::D1Database;

#[derive(Clone, Debug, Serialize)]
pub struct Refund {
    pub id: String,
    pub program_id: String,
    pub invoice_id: String,
    pub amount: i64,
    pub commission_id: Option<String>,
    pub clawback_id: Option<String>,
    pub effect: String,
    #[serde(serialize_with = "super::programs::ser_time")]
    pub created_at: i64,
}
from_row!(Refund { id, program_id, invoice_id, amount, commission_id, clawback_id, effect, created_at });

const COLS: &str = "id, program_id, invoice_id, amount, commission_id, clawback_id, effect, created_at";

pub async fn by_idempotency_key(db: &D1Database, program_id: &str, key: &str) -> StoreResult<Option<Refund>> {
    first(query!(
        db,
        &format!("SELECT {COLS} FROM refunds WHERE program_id = ?1 AND idempotency_key = ?2"),
        program_id,
        key
    )?)
    .await
}

pub async fn get(db: &D1Database, id: &str) -> StoreResult<Option<Refund>> {
    first(query!(db, &format!("SELECT {COLS} FROM refunds WHERE id = ?1"), id)?).await
}

pub struct Planned<'a> {
    pub id: &'a str,
    pub program_id: &'a str,
    pub invoice_id: &'a str,
    pub idempotency_key: Option<&'a str>,
    /// The commission as read when the refund was decided: every write is conditioned on that
    /// exact state.
    pub commission: Option<&'a Commission>,
    /// What the core decided: the amount, the state it claims (`refunded_before`), the plan.
    pub decision: &'a RefundDecision,
    pub clawback_id: &'a str,
    pub now: i64,
}

pub enum Outcome {
    Applied,
    /// Another refund changed the commission first: re-read and re-plan.
    Raced,
    /// The same Idempotency-Key landed first.
    DuplicateKey,
}

pub async fn apply(db: &D1Database, r: &Planned<'_>) -> StoreResult<Outcome> {
    let d = r.decision;
    let cid = r.commission.map(|c| c.id.as_str());
    let mut stmts = vec![query!(
        db,
        "INSERT INTO refunds (id, program_id, invoice_id, amount, idempotency_key, commission_id, refunded_before, effect, clawback_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        r.id,
        r.program_id,
        r.invoice_id,
        d.amount,
        r.idempotency_key,
        cid,
        d.refunded_before,
        d.effect().as_str(),
        None::<&str>,
        r.now
    )?];
    if let (Some(cm), Some(plan)) = (r.commission, &d.plan) {
        let (id, status, amount, refunded, clawed) =
            (cm.id.as_str(), cm.status.as_str(), cm.amount, cm.refunded_amount, cm.clawed_back);
        let new_refunded = refunded + d.amount;
        // The payout claim is part of the state the plan was made against: a commission a payout
        // claimed meanwhile has a fixed amount, so the refund re-plans (as a clawback).
        let payout = cm.payout_id.as_deref();
        // Every write below is conditioned on the exact state the plan was computed from.
        let (new_status, new_amount, new_clawed, reason) = match plan {
            RefundPlan::Reduce { new_amount } => (status, *new_amount, clawed, None),
            RefundPlan::Reject => (Status::Rejected.as_str(), amount, clawed, Some(RejectReason::Refund.as_str())),
            RefundPlan::Clawback { amount: c } => (status, amount, clawed - c, None),
            RefundPlan::NoChange => (status, amount, clawed, None),
        };
        stmts.push(query!(
            db,
            "INSERT INTO commission_changes (commission_id, from_status, to_status, amount_before, amount_after, reason, created_at)
             SELECT id, status, ?6, amount, ?7, ?8, ?9 FROM commissions
             WHERE id = ?1 AND status = ?2 AND amount = ?3 AND refunded_amount = ?4 AND clawed_back = ?5
               AND payout_id IS ?10",
            id,
            status,
            amount,
            refunded,
            clawed,
            new_status,
            new_amount,
            reason.unwrap_or(RejectReason::Refund.as_str()),
            r.now,
            payout
        )?);
        stmts.push(query!(
            db,
            "UPDATE commissions SET status = ?6, amount = ?7, refunded_amount = ?8, clawed_back = ?9,
                 reason = COALESCE(?10, reason), updated_at = ?11
             WHERE id = ?1 AND status = ?2 AND amount = ?3 AND refunded_amount = ?4 AND clawed_back = ?5
               AND payout_id IS ?12",
            id,
            status,
            amount,
            refunded,
            clawed,
            new_status,
            new_amount,
            new_refunded,
            new_clawed,
            reason,
            r.now,
            payout
        )?);
        // Guard: if the update above did not land (the commission changed since it was read),
        // this insert violates NOT NULL and the whole batch, refund row included, rolls back.
        stmts.push(query!(
            db,
            "INSERT INTO commission_changes (commission_id, to_status, amount_after, created_at)
             SELECT NULL, 'guard', 0, 0 WHERE NOT EXISTS (SELECT 1 FROM commissions
                 WHERE id = ?1 AND status = ?2 AND amount = ?3 AND refunded_amount = ?4 AND clawed_back = ?5
                   AND payout_id IS ?6)",
            id,
            new_status,
            new_amount,
            new_refunded,
            new_clawed,
            payout
        )?);
        if let RefundPlan::Clawback { amount: c } = plan {
            stmts.push(query!(
                db,
                "INSERT INTO commissions (id, program_id, partner_id, customer_id, event_id, parent_id, kind, invoice_id,
                     sale_amount, original_amount, amount, currency, status, reason, created_at, updated_at, approved_at)
                 SELECT ?1, program_id, partner_id, customer_id, NULL, id, 'clawback', invoice_id, 0, ?3, ?3, currency,
                     'approved', 'refund', ?4, ?4, ?4
                 FROM commissions WHERE id = ?2 AND refunded_amount = ?5",
                r.clawback_id,
                id,
                *c,
                r.now,
                new_refunded
            )?);
            stmts.push(query!(
                db,
                "INSERT INTO commission_changes (commission_id, from_status, to_status, amount_before, amount_after, reason, created_at)
                 SELECT id, NULL, status, NULL, amount, 'refund', ?2 FROM commissions WHERE id = ?1",
                r.clawback_id,
                r.now
            )?);
            // The refund row came first (it claims the state); link it to its clawback now.
            stmts.push(query!(db, "UPDATE refunds SET clawback_id = ?2 WHERE id = ?1", r.id, r.clawback_id)?);
        }
    }
    if let Some(cm) = r.commission {
        if d.plan.is_some() {
            stmts.push(super::outbox::commission(db, super::outbox::UPDATED, &cm.id, r.now)?);
        }
        if matches!(d.plan, Some(RefundPlan::Clawback { .. })) {
            stmts.push(super::outbox::commission(db, super::outbox::CREATED, r.clawback_id, r.now)?);
        }
        stmts.extend(super::outbox::fan_out(db, r.now)?);
    }
    match batch_or_constraint(db, stmts).await? {
        Ok(_) => Ok(Outcome::Applied),
        // The guard statement inserts NULL when the commission moved since the plan was made.
        Err(c) if c.kind == ConstraintKind::NotNull => Ok(Outcome::Raced),
        Err(c) if c.kind == ConstraintKind::Unique && c.columns.iter().any(|col| col.ends_with(".idempotency_key")) => {
            Ok(Outcome::DuplicateKey)
        }
        Err(c) if c.kind == ConstraintKind::Unique => Ok(Outcome::Raced),
        Err(c) => Err(StoreError::Database(format!("constraint {c:?}"))),
    }
}

pub async fn total_for_invoice(db: &D1Database, program_id: &str, invoice_id: &str) -> StoreResult<i64> {
    let n: Option<super::Count> = first(query!(
        db,
        "SELECT COALESCE(SUM(amount), 0) AS n FROM refunds WHERE program_id = ?1 AND invoice_id = ?2",
        program_id,
        invoice_id
    )?)
    .await?;
    Ok(n.map(|c| c.n).unwrap_or(0))
}
