use super::{StoreError, StoreResult};
use worker::D1Database;

/// Rejects every pending commission of a partner (a ban), recording each change and its
/// `commission.updated` webhook: statements for the ban's batch (`partners::update`).
pub(super) fn reject_open_stmts(
    db: &D1Database,
    partner_id: &str,
    reason: &str,
    now: i64,
) -> StoreResult<Vec<D1PreparedStatement>> {
    Ok(vec![
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
        super::outbox::commissions_where(
            db,
            super::outbox::UPDATED,
            "c.partner_id = ?2 AND c.status = 'rejected' AND c.updated_at = ?1",
            now,
            Some(partner_id),
        )?,
    ])
}

// ---------------------------------------------------------------------------------------------
// Commission rows

use super::first;
use refport_core::commission::{Kind, RejectReason, Status};
use refport_core::conversion::{AttributionOutcome, NewCommissionPlan};
use refport_core::fraud::Rule;
use worker::d1::D1PreparedStatement;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Commission {
    pub id: String,
    pub program_id: String,
    pub partner_id: String,
    pub customer_id: Option<String>,
    pub event_id: Option<String>,
    pub parent_id: Option<String>,
    pub kind: Kind,
    pub invoice_id: Option<String>,
    pub sale_amount: i64,
    pub original_amount: i64,
    pub amount: i64,
    pub currency: String,
    pub status: Status,
    pub reason: Option<String>,
    pub refunded_amount: i64,
    pub clawed_back: i64,
    pub payout_id: Option<String>,
    #[serde(serialize_with = "super::programs::ser_time")]
    pub created_at: i64,
    #[serde(serialize_with = "super::programs::ser_time")]
    pub updated_at: i64,
    #[serde(serialize_with = "super::programs::ser_opt_time")]
    pub approved_at: Option<i64>,
    #[serde(serialize_with = "super::programs::ser_opt_time")]
    pub paid_at: Option<i64>,
    /// The fraud rules that held the commission for the merchant (kept after the decision).
    pub hold_reasons: Vec<Rule>,
    /// Pending and held: waiting for the merchant, never approved by the cron.
    pub held: bool,
    /// A manual commission's description (`kind: "bonus"`); `null` for the others.
    pub description: Option<String>,
}

impl super::FromRow for Commission {
    fn from_row(r: &super::Row) -> StoreResult<Self> {
        let c = Commission {
            id: r.get("id"),
            program_id: r.get("program_id"),
            partner_id: r.get("partner_id"),
            customer_id: r.get("customer_id"),
            event_id: r.get("event_id"),
            parent_id: r.get("parent_id"),
            kind: r.get("kind"),
            invoice_id: r.get("invoice_id"),
            sale_amount: r.get("sale_amount"),
            original_amount: r.get("original_amount"),
            amount: r.get("amount"),
            currency: r.get("currency"),
            status: r.get("status"),
            reason: r.get("reason"),
            refunded_amount: r.get("refunded_amount"),
            clawed_back: r.get("clawed_back"),
            payout_id: r.get("payout_id"),
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
            approved_at: r.get("approved_at"),
            paid_at: r.get("paid_at"),
            hold_reasons: hold_reasons_column(r),
            // A boolean SQL expression (D1 answers 0 or 1); absent where a query leaves it out.
            held: r.get_or_default::<i64>("held") != 0,
            description: r.get_or_default("description"),
        };
        r.check()?;
        Ok(c)
    }
}

/// The `hold_reasons` column: a JSON array of rule codes, or NULL.
fn hold_reasons_column(r: &super::Row) -> Vec<Rule> {
    match r.get::<Option<String>>("hold_reasons") {
        None => Vec::new(),
        Some(s) => refport_core::wire::from_text(s.as_bytes()).unwrap_or_else(|_| {
            r.refuse("hold_reasons");
            Vec::new()
        }),
    }
}

/// The stored form of hold reasons: a JSON array, NULL when there are none.
pub fn hold_reasons_json(reasons: &[Rule]) -> Option<String> {
    (!reasons.is_empty()).then(|| serde_json::to_string(reasons).unwrap_or_else(|_| "[]".into()))
}

pub const COLS: &str = "id, program_id, partner_id, customer_id, event_id, parent_id, kind, invoice_id, sale_amount, \
     original_amount, amount, currency, status, reason, refunded_amount, clawed_back, payout_id, created_at, updated_at, \
     approved_at, paid_at, hold_reasons, (status = 'pending' AND hold_reasons IS NOT NULL) AS held, description";

pub async fn get(db: &D1Database, id: &str) -> StoreResult<Option<Commission>> {
    first(query!(db, &format!("SELECT {COLS} FROM commissions WHERE id = ?1"), id)?).await
}

/// A commission as its wire JSON, built in SQL by the expression the webhooks use
/// (`outbox::COMMISSION_JSON`), with its program for the caller's scope check.
pub struct CommissionJson {
    pub program_id: String,
    pub json: String,
}
from_row!(CommissionJson { program_id, json });

pub async fn get_json(db: &D1Database, id: &str) -> StoreResult<Option<CommissionJson>> {
    first(query!(
        db,
        &format!("SELECT c.program_id, {} AS json FROM commissions c WHERE c.id = ?1", super::outbox::COMMISSION_JSON),
        id
    )?)
    .await
}

pub async fn for_event(db: &D1Database, event_id: &str) -> StoreResult<Option<Commission>> {
    first(query!(db, &format!("SELECT {COLS} FROM commissions WHERE event_id = ?1 AND kind != 'clawback'"), event_id)?)
        .await
}

/// The commission of the sale with this invoice id (not its clawbacks), for a batch.
pub(super) fn of_sale_stmt(db: &D1Database, program_id: &str, invoice_id: &str) -> StoreResult<D1PreparedStatement> {
    Ok(query!(
        db,
        &format!(
            "SELECT {COLS} FROM commissions WHERE kind != 'clawback' AND event_id =
             (SELECT id FROM events WHERE program_id = ?1 AND invoice_id = ?2 AND kind = 'sale')"
        ),
        program_id,
        invoice_id
    )?)
}

/// The commission of a lead (customer external id and event name), for a batch.
pub(super) fn of_lead_stmt(
    db: &D1Database,
    program_id: &str,
    external_id: &str,
    event_name: &str,
) -> StoreResult<D1PreparedStatement> {
    Ok(query!(
        db,
        &format!(
            "SELECT {COLS} FROM commissions WHERE kind != 'clawback' AND event_id =
             (SELECT e.id FROM events e JOIN customers c ON c.id = e.customer_id
              WHERE e.program_id = ?1 AND c.external_id = ?2 AND e.event_name = ?3 AND e.kind = 'lead')"
        ),
        program_id,
        external_id,
        event_name
    )?)
}

pub use super::Filter;

pub async fn list(db: &D1Database, f: &Filter<'_>, before: &str, limit: u32) -> StoreResult<Vec<Commission>> {
    super::list_filtered(db, "commissions", COLS, f, before, limit).await
}

/// The held commissions (`held = true`: pending with hold reasons, what "Needs review" shows,
/// through the `commissions_held` partial index) or the others (`held = false`).
pub async fn list_held(
    db: &D1Database,
    f: &Filter<'_>,
    held: bool,
    before: &str,
    limit: u32,
) -> StoreResult<Vec<Commission>> {
    let cond = if held {
        "status = 'pending' AND hold_reasons IS NOT NULL"
    } else {
        "NOT (status = 'pending' AND hold_reasons IS NOT NULL)"
    };
    super::list_filtered_where(db, "commissions", COLS, cond, f, before, limit).await
}

/// A commission to create, decided by the core.
pub struct NewCommission<'a> {
    pub id: &'a str,
    pub program_id: &'a str,
    pub customer_ref: (&'a str, &'a str), // (program_id, external_id): resolved in SQL
    pub event_id: &'a str,
    pub invoice_id: Option<&'a str>,
    /// Partner, kind, amounts, currency, status and reason, as the core decided them.
    pub plan: &'a NewCommissionPlan,
    pub now: i64,
}

/// Inserts the commission only if its event row was inserted by the same batch (`event_id` is
/// fresh, so it exists only when this request won the idempotency race), and logs it.
pub fn insert_if_event_won(db: &D1Database, c: &NewCommission<'_>) -> StoreResult<Vec<D1PreparedStatement>> {
    Ok(vec![
        query!(
            db,
            "INSERT INTO commissions (id, program_id, partner_id, customer_id, event_id, kind, invoice_id, sale_amount,
                 original_amount, amount, currency, status, reason, created_at, updated_at, hold_reasons)
             SELECT ?1, ?2, ?3, (SELECT id FROM customers WHERE program_id = ?4 AND external_id = ?5), ?6, ?7, ?8, ?9,
                 ?10, ?10, ?11, ?12, ?13, ?14, ?14, ?15
             WHERE EXISTS (SELECT 1 FROM events WHERE id = ?6)
             ON CONFLICT DO NOTHING",
            c.id,
            c.program_id,
            c.plan.partner_id,
            c.customer_ref.0,
            c.customer_ref.1,
            c.event_id,
            c.plan.kind.as_str(),
            c.invoice_id,
            c.plan.sale_amount,
            c.plan.amount,
            c.plan.currency.code(),
            c.plan.status.as_str(),
            c.plan.reason.map(RejectReason::as_str),
            c.now,
            hold_reasons_json(&c.plan.hold_reasons)
        )?,
        query!(
            db,
            "INSERT INTO commission_changes (commission_id, from_status, to_status, amount_before, amount_after, reason, created_at)
             SELECT id, NULL, status, NULL, amount, reason, created_at FROM commissions WHERE id = ?1",
            c.id
        )?,
    ])
}

/// Moves a commission from `from` to `to` if it is still in `from`; answers whether it moved.
/// The change record and the update are one atomic batch, both conditioned on the same state.
pub async fn transition(
    db: &D1Database,
    id: &str,
    from: Status,
    to: Status,
    reason: Option<&str>,
    now: i64,
) -> StoreResult<bool> {
    let changed = super::batch(
        db,
        vec![
            query!(
                db,
                "INSERT INTO commission_changes (commission_id, from_status, to_status, amount_before, amount_after, reason, created_at)
                 SELECT id, status, ?3, amount, amount, ?4, ?5 FROM commissions WHERE id = ?1 AND status = ?2 AND payout_id IS NULL",
                id,
                from.as_str(),
                to.as_str(),
                reason,
                now
            )?,
            query!(
                db,
                "UPDATE commissions SET status = ?3, reason = COALESCE(?4, reason), updated_at = ?5,
                     approved_at = CASE WHEN ?3 = 'approved' THEN ?5 ELSE approved_at END
                 WHERE id = ?1 AND status = ?2 AND payout_id IS NULL",
                id,
                from.as_str(),
                to.as_str(),
                reason,
                now
            )?,
            super::outbox::commission(
                db,
                if to == Status::Approved { super::outbox::APPROVED } else { super::outbox::UPDATED },
                id,
                now,
            )?,
        ]
        .into_iter()
        .chain(super::outbox::fan_out(db, now)?)
        .collect(),
    )
    .await?;
    Ok(changed.get(1).copied().unwrap_or(0) == 1)
}

/// The sale reward's caps on commission `?1` (of event `?2`), just inserted in the same batch:
/// against the other sale commissions (not rejected) its customer brought its partner, a
/// commission over `max_sales` or with no room left under `max_amount` is removed (with its
/// trail: the rollups undo it) and its event recorded `cap_reached`; one that crosses the amount
/// cap keeps the remainder (its trail row written again at the new amount).
pub fn keep_within_cap(
    db: &D1Database,
    commission_id: &str,
    event_id: &str,
    cap: refport_core::conversion::Cap,
) -> StoreResult<Vec<D1PreparedStatement>> {
    const OTHERS: &str = "FROM commissions o WHERE o.id != ?1 AND o.kind = 'sale' AND o.status != 'rejected'
           AND o.customer_id = (SELECT customer_id FROM commissions WHERE id = ?1)
           AND o.partner_id = (SELECT partner_id FROM commissions WHERE id = ?1)";
    let room = format!("(?3 - (SELECT COALESCE(SUM(o.original_amount), 0) {OTHERS}))");
    let no_room = format!("((?4 IS NOT NULL AND (SELECT COUNT(*) {OTHERS}) >= ?4) OR COALESCE({room} <= 0, 0))");
    let over =
        format!("({no_room} OR COALESCE({room} < (SELECT amount FROM commissions WHERE id = ?1), 0)) AND ?2 = ?2");
    let stmt = |sql: String| -> StoreResult<D1PreparedStatement> {
        Ok(query!(db, &sql, commission_id, event_id, cap.max_amount, cap.max_sales)?)
    };
    Ok(vec![
        stmt(format!("DELETE FROM commission_changes WHERE commission_id = ?1 AND {over}"))?,
        stmt(format!("DELETE FROM commissions WHERE id = ?1 AND {no_room} AND ?2 = ?2"))?,
        stmt(format!(
            "UPDATE commissions SET amount = {room}, original_amount = {room} WHERE id = ?1 AND ?2 = ?2
               AND COALESCE(?4, 0) = COALESCE(?4, 0) AND COALESCE({room} < amount, 0)"
        ))?,
        stmt(
            "INSERT INTO commission_changes (commission_id, from_status, to_status, amount_before, amount_after, reason, created_at)
             SELECT id, NULL, status, NULL, amount, reason, created_at FROM commissions
             WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM commission_changes WHERE commission_id = ?1)
               AND ?2 = ?2 AND COALESCE(?3, ?4, 0) = COALESCE(?3, ?4, 0)"
                .to_string(),
        )?,
        query!(
            db,
            "UPDATE events SET attribution = ?3 WHERE id = ?2 AND NOT EXISTS (SELECT 1 FROM commissions WHERE id = ?1)",
            commission_id,
            event_id,
            AttributionOutcome::CapReached.as_str()
        )?,
    ])
}

/// For a first-sale-only reward: removes the commission just inserted if its customer has an
/// earlier sale event (the batch is serialized, so exactly one concurrent "first" sale keeps it)
/// and marks the event accordingly.
pub fn keep_only_first_sale(
    db: &D1Database,
    commission_id: &str,
    event_id: &str,
) -> StoreResult<Vec<D1PreparedStatement>> {
    const EARLIER: &str = "EXISTS (SELECT 1 FROM events e2 JOIN events e ON e.id = ?2
             WHERE e2.customer_id = e.customer_id AND e2.kind = 'sale' AND e2.id != e.id)";
    Ok(vec![
        query!(
            db,
            &format!("DELETE FROM commission_changes WHERE commission_id = ?1 AND {EARLIER}"),
            commission_id,
            event_id
        )?,
        query!(db, &format!("DELETE FROM commissions WHERE id = ?1 AND {EARLIER}"), commission_id, event_id)?,
        query!(
            db,
            &format!("UPDATE events SET attribution = ?3 WHERE id = ?2 AND ?1 = ?1 AND {EARLIER}"),
            commission_id,
            event_id,
            AttributionOutcome::OutsideRecurringWindow.as_str()
        )?,
    ])
}

/// A manual commission (`kind = 'bonus'`) to create.
pub struct NewBonus<'a> {
    pub id: &'a str,
    pub program_id: &'a str,
    pub bonus: &'a refport_core::commission::Bonus,
    /// The request's Idempotency-Key: a retry with the same key creates nothing and answers the
    /// first one's commission.
    pub idempotency_key: Option<&'a str>,
    pub now: i64,
}

/// Creates a manual commission with its trail row and its `commission.created` webhook in one
/// atomic batch, once per Idempotency-Key; answers the commission stored under the key (this
/// one, or the first request's) and whether this call created it.
pub async fn insert_bonus(db: &D1Database, b: &NewBonus<'_>) -> StoreResult<(Commission, bool)> {
    let approved_at = (b.bonus.status == Status::Approved).then_some(b.now);
    let mut stmts = vec![
        query!(
            db,
            "INSERT INTO commissions (id, program_id, partner_id, kind, sale_amount, original_amount, amount, currency, status,
                 created_at, updated_at, approved_at, description, idempotency_key)
             VALUES (?1, ?2, ?3, 'bonus', 0, ?4, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10)
             ON CONFLICT DO NOTHING",
            b.id,
            b.program_id,
            &b.bonus.partner_id,
            b.bonus.amount,
            b.bonus.currency.code(),
            b.bonus.status.as_str(),
            b.now,
            approved_at,
            &b.bonus.description,
            b.idempotency_key
        )?,
        query!(
            db,
            "INSERT INTO commission_changes (commission_id, from_status, to_status, amount_before, amount_after, reason, created_at)
             SELECT id, NULL, status, NULL, amount, 'manual', created_at FROM commissions WHERE id = ?1",
            b.id
        )?,
        super::outbox::commission(db, super::outbox::CREATED, b.id, b.now)?,
    ];
    stmts.extend(super::outbox::fan_out(db, b.now)?);
    stmts.push(query!(
        db,
        &format!(
            "SELECT {COLS} FROM commissions WHERE id = ?1 OR (?2 IS NOT NULL AND program_id = ?3 AND idempotency_key = ?2)
             ORDER BY id = ?1 DESC LIMIT 1"
        ),
        b.id,
        b.idempotency_key,
        b.program_id
    )?);
    let r = super::batch_results(db, stmts).await?;
    let stored: Commission = super::first_row(r.last())?
        .ok_or_else(|| StoreError::Database("the commission is missing after its batch".into()))?;
    let new = stored.id == b.id;
    Ok((stored, new))
}
