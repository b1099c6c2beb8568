//! Payouts: claim approved commissions atomically, record the transfer's outcome.

use super::StoreResult;
use super::{all, batch, changes, first};
use refport_core::payout::PayoutStatus;
use serde::Serialize;
use worker::d1::D1PreparedStatement;
use worker::D1Database;

#[derive(Clone, Debug, Serialize)]
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
    /// What Stripe reversed of the transfer (recorded as a paid clawback inside the payout).
    pub reversed_amount: i64,
    #[serde(serialize_with = "super::programs::ser_time")]
    pub created_at: i64,
    #[serde(serialize_with = "super::programs::ser_opt_time")]
    pub paid_at: Option<i64>,
}
from_row!(Payout {
    id,
    program_id,
    partner_id,
    amount,
    currency,
    status,
    stripe_transfer_id,
    failure_message,
    commission_count,
    attempts,
    reversed_amount,
    created_at,
    paid_at
});

const COLS: &str = "id, program_id, partner_id, amount, currency, status, stripe_transfer_id, failure_message, \
     commission_count, attempts, reversed_amount, created_at, paid_at";

pub async fn get(db: &D1Database, id: &str) -> StoreResult<Option<Payout>> {
    first(query!(db, &format!("SELECT {COLS} FROM payouts WHERE id = ?1"), id)?).await
}

pub use super::Filter;

pub async fn list(db: &D1Database, f: &Filter<'_>, before: &str, limit: u32) -> StoreResult<Vec<Payout>> {
    super::list_filtered(db, "payouts", COLS, f, before, limit).await
}

/// The condition and grouping of "payable today" shared by the bulk claim: partners active,
/// onboarded, payouts enabled, nothing in flight, net balance per currency at least the
/// program's minimum (the minimum is in the program's payout currency; a balance left in an
/// earlier payout currency is paid from 1 unit, as no new commission will ever add to it).
/// Balances below the minimum are filtered here, in SQL, so they can never crowd out the ones
/// that are due; the partial index `commissions_payable` holds only approved, unclaimed rows.
/// `?3` is the JSON array of due program ids. The `duplicate_payout_account` fraud rule (when
/// the program holds on it) leaves out a partner paid to the same Stripe account or bank
/// account (fingerprint) as another partner (another person: another email; the same person
/// in two programs is one payee) until the merchant approves its payout account.
const PAYABLE: &str = "FROM commissions c INDEXED BY commissions_payable
         JOIN partners pn ON pn.id = c.partner_id
         JOIN programs p ON p.id = c.program_id
         WHERE c.status = 'approved' AND c.payout_id IS NULL
           AND c.program_id IN (SELECT value FROM json_each(?3))
           AND pn.payouts_enabled = 1 AND pn.status = 'active' AND pn.stripe_account_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM payouts po WHERE po.partner_id = c.partner_id
                           AND po.status IN ('processing', 'awaiting_approval'))
           AND NOT (COALESCE(json_extract(p.settings, '$.fraud_rules.duplicate_payout_account'), 'hold') = 'hold'
                    AND pn.payout_account_approved_at IS NULL
                    AND EXISTS (SELECT 1 FROM partners o WHERE o.id != pn.id AND lower(o.email) != lower(pn.email)
                                AND (o.stripe_account_id = pn.stripe_account_id OR o.bank_fingerprint = pn.bank_fingerprint)))
         GROUP BY c.program_id, c.partner_id, c.currency
         HAVING SUM(c.amount) >= MAX(1, CASE WHEN c.currency = json_extract(p.settings, '$.payout_currency')
                                         THEN COALESCE(pn.min_payout, (SELECT g.min_payout FROM partner_groups g WHERE g.id = pn.group_id),
                                                       json_extract(p.settings, '$.min_payout'), 0)
                                         ELSE 1 END)";

/// Programs whose settings the cron needs to decide who is due (schedule, minimum).
#[derive(Debug)]
pub struct ProgramSchedule {
    pub id: String,
    pub settings: String,
}
from_row!(ProgramSchedule { id, settings });

/// Programs with at least one approved, unclaimed commission (through the partial index).
pub async fn programs_with_balances(db: &D1Database, limit: usize) -> StoreResult<Vec<ProgramSchedule>> {
    all(query!(
        db,
        "SELECT p.id, p.settings FROM programs p
         WHERE EXISTS (SELECT 1 FROM commissions c INDEXED BY commissions_payable
                       WHERE c.program_id = p.id AND c.status = 'approved' AND c.payout_id IS NULL)
         ORDER BY p.id LIMIT ?1",
        limit as u32
    )?)
    .await
}

/// A payout the bulk claim created: `processing` (or, in review mode, `awaiting_approval`),
/// transfer attempt 0 (never sent).
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: String,
    pub status: PayoutStatus,
    pub program_id: String,
    pub partner_id: String,
    pub amount: i64,
    pub currency: String,
    /// Its `updated_at`: the claim's clock.
    pub updated_at: i64,
    /// The partner's own (or its group's) minimum payout, when it overrides the program's.
    pub partner_min_payout: Option<i64>,
}
from_row!(Claimed { id, status, program_id, partner_id, amount, currency, updated_at } default { partner_min_payout });

/// Claims, in one atomic batch, up to `ids.len()` balances payable today in the programs `due`
/// (oldest approval first): creates a `processing` payout per balance with the next of the
/// fresh `ids` (transfer attempt 0: claimed, never sent), claims every approved, unclaimed
/// commission of that (program, partner, currency) for it, and sets its amount to the sum of
/// what it claimed (never what was read earlier). A partner is in at most one payout in flight
/// (unique index `payouts_one_processing`): a second currency of the same partner, or a
/// partner an overlapping run claimed first, is skipped (`OR IGNORE`) and waits for a later
/// run. Selection and claim read one snapshot, so every claimed sum passed the minimum.
/// The payouts of the programs in `review` (payout review mode) are prepared `awaiting_approval`
/// instead, with their `payout.awaiting_approval` event in the same batch: nothing is sent.
pub async fn claim_due(
    db: &D1Database,
    ids: &[String],
    due: &[String],
    review: &[String],
    now: i64,
) -> StoreResult<Vec<Claimed>> {
    if ids.is_empty() || due.is_empty() {
        return Ok(Vec::new());
    }
    let ids_json = serde_json::to_string(ids)?;
    let due = serde_json::to_string(due)?;
    let review = serde_json::to_string(review)?;
    let stmts = vec![
        query!(
            db,
            &format!(
                "INSERT OR IGNORE INTO payouts
                     (id, program_id, partner_id, amount, currency, status, created_at, updated_at, transfer_attempt)
                 SELECT j.value, b.program_id, b.partner_id, 0, b.currency,
                        CASE WHEN b.program_id IN (SELECT value FROM json_each(?5)) THEN 'awaiting_approval'
                             ELSE 'processing' END, ?2, ?2, 0
                 FROM (SELECT c.program_id, c.partner_id, c.currency,
                              ROW_NUMBER() OVER (ORDER BY MIN(c.approved_at), c.partner_id, c.currency) - 1 AS rn
                       {PAYABLE}
                       ORDER BY MIN(c.approved_at), c.partner_id, c.currency
                       LIMIT ?4) b
                 JOIN json_each(?1) j ON j.key = b.rn"
            ),
            ids_json,
            now,
            due,
            ids.len() as u32,
            review
        )?,
        query!(
            db,
            "UPDATE commissions SET payout_id = po.id, updated_at = ?2
             FROM payouts po
             WHERE po.id IN (SELECT value FROM json_each(?1)) AND po.status IN ('processing', 'awaiting_approval')
               AND po.transfer_attempt = 0 AND commissions.program_id = po.program_id AND commissions.partner_id = po.partner_id
               AND commissions.currency = po.currency
               AND commissions.status = 'approved' AND commissions.payout_id IS NULL",
            ids_json,
            now
        )?,
        query!(
            db,
            "UPDATE payouts SET amount = (SELECT COALESCE(SUM(amount), 0) FROM commissions WHERE payout_id = payouts.id),
                 commission_count = (SELECT COUNT(*) FROM commissions WHERE payout_id = payouts.id)
             WHERE id IN (SELECT value FROM json_each(?1))
             RETURNING id, status, program_id, partner_id, amount, currency, updated_at,
               (SELECT COALESCE(pn.min_payout, (SELECT g.min_payout FROM partner_groups g WHERE g.id = pn.group_id))
                FROM partners pn WHERE pn.id = payouts.partner_id) AS partner_min_payout",
            ids_json
        )?,
        super::outbox::payouts_awaiting_approval(db, &ids_json, now)?,
    ];
    let stmts = stmts.into_iter().chain(super::outbox::fan_out(db, now)?).collect();
    let results = super::batch_results(db, stmts).await?;
    Ok(results.get(2).map(super::rows).transpose()?.unwrap_or_default())
}

/// Takes a claimed payout's first transfer attempt (0 → 1) right before sending it: only the
/// one whose conditional UPDATE wins sends, so a queue message delivered twice pays once.
pub async fn take(db: &D1Database, id: &str, now: i64) -> StoreResult<bool> {
    Ok(changes(query!(
        db,
        "UPDATE payouts SET transfer_attempt = 1, updated_at = ?2
         WHERE id = ?1 AND status = 'processing' AND transfer_attempt = 0",
        id,
        now
    )?)
    .await?
        == 1)
}

/// Undoes a claim nobody has taken (the partner is no longer payable): commissions back to the
/// approved pool, payout gone. Nothing if a consumer took it meanwhile.
pub async fn release_untaken(db: &D1Database, id: &str, now: i64) -> StoreResult<bool> {
    let changes = batch(
        db,
        vec![
            query!(
                db,
                "UPDATE commissions SET payout_id = NULL, updated_at = ?2
                 WHERE payout_id = ?1 AND status = 'approved'
                   AND EXISTS (SELECT 1 FROM payouts WHERE id = ?1 AND status IN ('processing', 'awaiting_approval')
                               AND transfer_attempt = 0)",
                id,
                now
            )?,
            query!(
                db,
                "DELETE FROM payouts WHERE id = ?1 AND status IN ('processing', 'awaiting_approval')
                   AND transfer_attempt = 0 AND stripe_transfer_id IS NULL",
                id
            )?,
        ],
    )
    .await?;
    Ok(changes.get(1).copied().unwrap_or(0) == 1)
}

/// Approves a payout awaiting approval: `processing` at transfer attempt 0 (claimed, never
/// sent), exactly as the cron's claim leaves an automatic payout, in one conditional UPDATE.
/// Answers the claim to enqueue when this call won (`None`: not awaiting approval any more).
pub async fn approve(db: &D1Database, id: &str, now: i64) -> StoreResult<Option<Swept>> {
    let rows: Vec<Swept> = all(query!(
        db,
        "UPDATE payouts SET status = 'processing', updated_at = ?2
         WHERE id = ?1 AND status = 'awaiting_approval' AND transfer_attempt = 0
         RETURNING id, transfer_attempt, updated_at",
        id,
        now
    )?)
    .await?;
    Ok(rows.into_iter().next())
}

/// Cancels a payout awaiting approval, atomically in one batch: the payout becomes `canceled`
/// and its commissions return to the approved, unclaimed pool (the next run may include them).
/// Answers whether this call canceled it.
pub async fn cancel(db: &D1Database, id: &str, now: i64) -> StoreResult<bool> {
    let changes = batch(
        db,
        vec![
            query!(
                db,
                "UPDATE payouts SET status = 'canceled', updated_at = ?2 WHERE id = ?1 AND status = 'awaiting_approval'",
                id,
                now
            )?,
            query!(
                db,
                "UPDATE commissions SET payout_id = NULL, updated_at = ?2
                 WHERE payout_id = ?1 AND status = 'approved'
                   AND EXISTS (SELECT 1 FROM payouts WHERE id = ?1 AND status = 'canceled' AND updated_at = ?2)",
                id,
                now
            )?,
        ],
    )
    .await?;
    Ok(changes.first().copied().unwrap_or(0) == 1)
}

/// A payout the sweep leased: its transfer attempt and the lease (its new `updated_at`).
#[derive(Clone, Debug)]
pub struct Swept {
    pub id: String,
    pub transfer_attempt: i64,
    pub updated_at: i64,
}
from_row!(Swept { id, transfer_attempt, updated_at });

/// Leases up to `limit` payouts `processing` and untouched since `older_than` (a lost queue
/// message, a transfer of unknown outcome): their `updated_at` becomes `now`, in one
/// conditional statement, so an overlapping run cannot lease them too and the next runs skip
/// them for another reconciliation delay. Answers what was leased.
pub async fn sweep(db: &D1Database, older_than: i64, now: i64, limit: usize) -> StoreResult<Vec<Swept>> {
    all(query!(
        db,
        "UPDATE payouts SET updated_at = ?2
         WHERE id IN (SELECT id FROM payouts WHERE status = 'processing' AND updated_at <= ?1 ORDER BY id LIMIT ?3)
           AND status = 'processing' AND updated_at <= ?1
         RETURNING id, transfer_attempt, updated_at",
        older_than,
        now,
        limit as u32
    )?)
    .await
}

/// A queued payout as its consumer reads it, with what decides whether it may still be sent.
#[derive(Clone, Debug)]
pub struct Queued {
    pub id: String,
    pub program_id: String,
    pub partner_id: String,
    pub amount: i64,
    pub currency: String,
    pub status: PayoutStatus,
    pub transfer_attempt: i64,
    pub updated_at: i64,
    pub stripe_account_id: Option<String>,
    pub partner_status: String,
    pub payouts_enabled: i64,
}
from_row!(Queued {
    id,
    program_id,
    partner_id,
    amount,
    currency,
    status,
    transfer_attempt,
    updated_at,
    stripe_account_id,
    partner_status,
    payouts_enabled
});

/// The platform pause and the payouts `ids`, in one D1 batch (one subrequest).
pub async fn load_queued(db: &D1Database, ids: &[String]) -> StoreResult<(Option<Pause>, Vec<Queued>)> {
    let ids = serde_json::to_string(ids)?;
    let results = super::batch_results(
        db,
        vec![
            query!(db, "SELECT cause, message, until_ms FROM payout_pause WHERE id = 1"),
            query!(
                db,
                "SELECT po.id, po.program_id, po.partner_id, po.amount, po.currency, po.status, po.transfer_attempt,
                        po.updated_at, pn.stripe_account_id, pn.status AS partner_status, pn.payouts_enabled
                 FROM payouts po JOIN partners pn ON pn.id = po.partner_id
                 WHERE po.id IN (SELECT value FROM json_each(?1))",
                ids
            )?,
        ],
    )
    .await?;
    let pause: Vec<Pause> = results.first().map(super::rows).transpose()?.unwrap_or_default();
    let rows: Vec<Queued> = results.get(1).map(super::rows).transpose()?.unwrap_or_default();
    Ok((pause.into_iter().next(), rows))
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
            super::outbox::commissions_where(db, super::outbox::PAID, "c.payout_id = ?2 AND c.paid_at = ?1", now, Some(id))?,
        ]
        .into_iter()
        .chain(super::outbox::fan_out(db, now)?)
        .collect(),
    )
    .await?;
    Ok(changes.first().copied().unwrap_or(0) == 1)
}

/// The destination refused the transfer: the payout fails once with Stripe's message, its
/// commissions return to the approved pool, and the partner's payouts are disabled with `reason`
/// until Stripe reports the account fixed (so the same refusal is not repeated every run).
pub async fn mark_failed(db: &D1Database, id: &str, message: &str, reason: &str, now: i64) -> StoreResult<bool> {
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
            query!(
                db,
                "UPDATE partners SET payouts_enabled = 0, payouts_disabled_reason = ?2, updated_at = ?3
                 WHERE id = (SELECT partner_id FROM payouts WHERE id = ?1 AND status = 'failed' AND updated_at = ?3)",
                id,
                reason,
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
    super::run(query!(
        db,
        "UPDATE payouts SET attempts = attempts + 1, failure_message = ?2, updated_at = ?3 WHERE id = ?1 AND status = 'processing'",
        id,
        message,
        now
    )?)
    .await?;
    Ok(())
}

/// A payout about to be sent or reconciled.
#[derive(Debug)]
pub struct InFlight {
    pub id: String,
    pub program_id: String,
    pub partner_id: String,
    pub amount: i64,
    pub currency: String,
    pub stripe_account_id: Option<String>,
    pub transfer_attempt: i64,
}
from_row!(InFlight { id, program_id, partner_id, amount, currency, stripe_account_id, transfer_attempt });

/// Approves pending commissions whose hold period has passed, at most `limit`, oldest first,
/// recording each change; one atomic batch. Answers how many were approved. A commission held
/// by a fraud rule (`hold_reasons`) is never approved here: only the merchant decides it.
pub async fn approve_due(db: &D1Database, now: i64, limit: usize) -> StoreResult<usize> {
    const DUE: &str = "SELECT c.id FROM commissions c JOIN programs p ON p.id = c.program_id
         JOIN partners pn ON pn.id = c.partner_id LEFT JOIN partner_groups g ON g.id = pn.group_id
         WHERE c.status = 'pending' AND c.hold_reasons IS NULL
           AND c.created_at + COALESCE(g.hold_days, p.hold_days) * 86400000 <= ?1
         ORDER BY c.id LIMIT ?2";
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
            super::outbox::commissions_where(db, super::outbox::APPROVED, "c.status = 'approved' AND c.approved_at = ?1 AND c.updated_at = ?1 AND ?2 IS NULL", now, None)?,
        ]
        .into_iter()
        .chain(super::outbox::fan_out(db, now)?)
        .collect(),
    )
    .await?;
    Ok(changes.get(1).copied().unwrap_or(0))
}

/// Claims the next transfer attempt of a payout in flight whose lookup found no transfer: only
/// the run whose conditional UPDATE moves `transfer_attempt` from `seen` resends, so two
/// overlapping runs can never both send. Answers whether this run won.
pub async fn claim_resend(db: &D1Database, id: &str, seen: i64, now: i64) -> StoreResult<bool> {
    Ok(changes(query!(
        db,
        "UPDATE payouts SET transfer_attempt = transfer_attempt + 1, updated_at = ?3
         WHERE id = ?1 AND status = 'processing' AND transfer_attempt = ?2",
        id,
        seen,
        now
    )?)
    .await?
        == 1)
}

/// A platform-wide pause of payouts after an account-wide Stripe refusal: why, and until when.
#[derive(Debug)]
pub struct Pause {
    pub cause: String,
    pub message: Option<String>,
    pub until_ms: i64,
}
from_row!(Pause { cause, message, until_ms });

pub async fn pause(db: &D1Database) -> StoreResult<Option<Pause>> {
    first(query!(db, "SELECT cause, message, until_ms FROM payout_pause WHERE id = 1")).await
}

pub async fn set_pause(db: &D1Database, cause: &str, message: &str, until_ms: i64, now: i64) -> StoreResult<()> {
    super::run(query!(
        db,
        "INSERT INTO payout_pause (id, cause, message, until_ms, created_at) VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET cause = excluded.cause, message = excluded.message,
           until_ms = MAX(until_ms, excluded.until_ms), created_at = excluded.created_at",
        cause,
        message,
        until_ms,
        now
    )?)
    .await?;
    Ok(())
}

/// Ends a pause of `cause` (a `balance.available` event ends a balance pause).
pub async fn clear_pause(db: &D1Database, cause: &str) -> StoreResult<bool> {
    Ok(changes(query!(db, "DELETE FROM payout_pause WHERE id = 1 AND cause = ?1", cause)?).await? == 1)
}

/// A payout and what reconciling a reversal needs.
#[derive(Debug)]
pub struct Reversible {
    pub id: String,
    pub amount: i64,
    pub reversed_amount: i64,
    pub status: PayoutStatus,
}
from_row!(Reversible { id, amount, reversed_amount, status });

pub async fn by_transfer(db: &D1Database, transfer_id: &str) -> StoreResult<Option<Reversible>> {
    first(query!(
        db,
        "SELECT id, amount, reversed_amount, status FROM payouts WHERE stripe_transfer_id = ?1",
        transfer_id
    )?)
    .await
}

/// Records that Stripe has reversed `total_reversed` (cumulative) of the payout's transfer: the
/// part not yet recorded becomes a paid, negative `clawback` inside the payout (reason
/// `transfer_reversed`), so the partner's paid total equals what Stripe transferred net of
/// reversals, and `payout.reversed` is written to the outbox. Cumulative and guarded by the
/// recorded amount, so late, repeated or reordered events apply each reversed unit once.
/// `guard` is an extra statement condition (the Stripe event's dedup token), `clawback_id` fresh.
pub fn apply_reversal(
    db: &D1Database,
    payout_id: &str,
    total_reversed: i64,
    clawback_id: &str,
    now: i64,
) -> StoreResult<Vec<D1PreparedStatement>> {
    Ok(vec![
        query!(
            db,
            "INSERT INTO commissions (id, program_id, partner_id, customer_id, event_id, parent_id, kind, invoice_id,
                 sale_amount, original_amount, amount, currency, status, reason, payout_id, created_at, updated_at,
                 approved_at, paid_at)
             SELECT ?2, po.program_id, po.partner_id, NULL, NULL,
                 (SELECT id FROM commissions WHERE payout_id = po.id AND kind != 'clawback' ORDER BY amount DESC, id LIMIT 1),
                 'clawback', NULL, 0, -(MIN(?3, po.amount) - po.reversed_amount), -(MIN(?3, po.amount) - po.reversed_amount),
                 po.currency, 'paid', 'transfer_reversed', po.id, ?4, ?4, ?4, ?4
             FROM payouts po WHERE po.id = ?1 AND po.status = 'paid' AND MIN(?3, po.amount) > po.reversed_amount
               AND EXISTS (SELECT 1 FROM commissions WHERE payout_id = po.id AND kind != 'clawback')",
            payout_id,
            clawback_id,
            total_reversed,
            now
        )?,
        query!(
            db,
            "INSERT INTO commission_changes (commission_id, from_status, to_status, amount_before, amount_after, reason, created_at)
             SELECT id, NULL, 'paid', NULL, amount, 'transfer_reversed', created_at FROM commissions WHERE id = ?1",
            clawback_id
        )?,
        query!(
            db,
            "UPDATE payouts SET reversed_amount = MIN(?2, amount), updated_at = ?3,
                 failure_message = 'transfer reversed: ' || MIN(?2, amount) || ' ' || currency
             WHERE id = ?1 AND status = 'paid' AND MIN(?2, amount) > reversed_amount",
            payout_id,
            total_reversed,
            now
        )?,
        super::outbox::payout_reversed(db, payout_id, clawback_id, now)?,
    ])
}
