use super::all;
use crate::http::error::ApiResult;
use serde::Deserialize;
use worker::{query, D1Database};

#[derive(Default, serde::Serialize)]
pub struct Earnings {
    pub pending: i64,
    pub approved: i64,
    pub paid: i64,
    pub rejected: i64,
    pub total: i64,
}

pub struct PartnerStats {
    pub leads: i64,
    pub sales: i64,
    pub sale_amount: i64,
    pub currency: Option<String>,
    pub earnings: Earnings,
}

#[derive(Deserialize)]
struct EventRow {
    kind: String,
    n: i64,
    amount: Option<i64>,
}

#[derive(Deserialize)]
struct StatusRow {
    status: String,
    amount: i64,
    currency: String,
}

pub async fn partner_stats(db: &D1Database, partner_id: &str) -> ApiResult<PartnerStats> {
    let events: Vec<EventRow> = all(query!(
        db,
        "SELECT kind, COUNT(*) AS n, SUM(COALESCE(payout_amount, amount)) AS amount FROM events WHERE partner_id = ?1 GROUP BY kind",
        partner_id
    )?)
    .await?;
    let statuses: Vec<StatusRow> = all(query!(
        db,
        "SELECT status, SUM(amount) AS amount, MAX(currency) AS currency FROM commissions WHERE partner_id = ?1 GROUP BY status",
        partner_id
    )?)
    .await?;
    let mut s = PartnerStats { leads: 0, sales: 0, sale_amount: 0, currency: None, earnings: Earnings::default() };
    for e in events {
        match e.kind.as_str() {
            "lead" => s.leads = e.n,
            "sale" => {
                s.sales = e.n;
                s.sale_amount = e.amount.unwrap_or(0);
            }
            _ => {}
        }
    }
    for r in statuses {
        s.currency = Some(r.currency);
        match r.status.as_str() {
            "pending" => s.earnings.pending = r.amount,
            "approved" => s.earnings.approved = r.amount,
            "paid" => s.earnings.paid = r.amount,
            _ => s.earnings.rejected = r.amount,
        }
    }
    s.earnings.total = s.earnings.pending + s.earnings.approved + s.earnings.paid;
    Ok(s)
}

/// Rejects every pending commission of a partner (a ban), recording each change, atomically.
pub async fn reject_open_for_partner(db: &D1Database, partner_id: &str, reason: &str, now: i64) -> ApiResult<()> {
    super::batch(
        db,
        vec![
            query!(
                db,
                "INSERT INTO commission_changes (commission_id, from_status, to_status, amount_before, amount_after, reason, created_at)
                 SELECT id, status, 'rejected', amount, amount, ?2, ?3 FROM commissions WHERE partner_id = ?1 AND status = 'pending'",
                partner_id,
                reason,
                now
            )?,
            query!(
                db,
                "UPDATE commissions SET status = 'rejected', reason = ?2, updated_at = ?3 WHERE partner_id = ?1 AND status = 'pending'",
                partner_id,
                reason,
                now
            )?,
        ],
    )
    .await?;
    Ok(())
}
