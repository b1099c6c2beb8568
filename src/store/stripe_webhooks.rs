//! Incoming Stripe webhooks: each event id is recorded once (`stripe_events`), in the same
//! atomic batch as its effect on partners or payouts, so a replayed event changes nothing, with
//! what it did (`Outcome`) for the Integrations page. Conversions from the merchant's payments
//! are idempotent by their own keys (payment intent, invoice, refund id) and recorded after.

use super::{batch, StoreResult};
use worker::D1Database;

/// What an event did, as the Integrations page lists it.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// `platform` or `connect`.
    pub endpoint: &'static str,
    /// `attributed`, `unattributed`, `ignored` or `applied`.
    pub outcome: &'static str,
    /// What it wrote (`lead`, `sale`, `lead_and_sale`, `refund`, `account_updated`...).
    pub effect: Option<&'static str>,
    /// Why it wrote nothing, or why what it wrote is credited to nobody.
    pub reason: Option<&'static str>,
    pub program_id: Option<String>,
    pub partner_id: Option<String>,
    pub stripe_customer_id: Option<String>,
    pub object_id: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    /// Refunds: the payment intent refunded (to find them again once its sale arrives).
    pub payment_intent: Option<String>,
}

/// A received event as listed (`GET /api/v1/integrations/stripe`).
#[derive(Clone, Debug)]
pub struct Received {
    pub id: String,
    pub kind: String,
    pub endpoint: Option<String>,
    pub received_at: i64,
    pub outcome: Option<String>,
    pub effect: Option<String>,
    pub reason: Option<String>,
    pub program_id: Option<String>,
    pub partner_id: Option<String>,
    pub partner_name: Option<String>,
    pub stripe_customer_id: Option<String>,
    pub object_id: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
}
from_row!(Received {
    id,
    kind,
    endpoint,
    received_at,
    outcome,
    effect,
    reason,
    program_id,
    partner_id,
    partner_name,
    stripe_customer_id,
    object_id,
    amount,
    currency
});

/// Whether event `id` was recorded already (a redelivery).
pub async fn seen(db: &D1Database, id: &str) -> StoreResult<bool> {
    let n: Option<super::Count> =
        super::first(query!(db, "SELECT COUNT(*) AS n FROM stripe_events WHERE id = ?1", id)?).await?;
    Ok(n.is_some_and(|c| c.n > 0))
}

/// The `invoice.paid` events of Stripe customer `stripe_customer` received since `since` that
/// found it not referred (its referral arrived later), oldest first, at most 20.
pub async fn unreferred_invoices(
    db: &D1Database,
    stripe_customer: &str,
    since: i64,
) -> StoreResult<Vec<(String, String)>> {
    struct Row {
        id: String,
        object_id: Option<String>,
    }
    from_row!(Row { id, object_id });
    let rows: Vec<Row> = super::all(query!(
        db,
        "SELECT id, object_id FROM stripe_events
         WHERE stripe_customer_id = ?1 AND reason = 'not_referred' AND received_at >= ?2 AND type = 'invoice.paid'
         ORDER BY received_at LIMIT 20",
        stripe_customer,
        since
    )?)
    .await?;
    Ok(rows.into_iter().filter_map(|r| r.object_id.map(|o| (r.id, o))).collect())
}

/// The refund events of payment intent `pi` that found no sale (it arrived later), at most 20.
pub async fn unmatched_refunds(db: &D1Database, pi: &str) -> StoreResult<Vec<String>> {
    struct Row {
        id: String,
    }
    from_row!(Row { id });
    let rows: Vec<Row> = super::all(query!(
        db,
        "SELECT id FROM stripe_events WHERE payment_intent = ?1 AND reason = 'sale_not_found'
         ORDER BY received_at LIMIT 20",
        pi
    )?)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Whether any refund event received since `since` found no sale.
pub async fn any_unmatched_refund(db: &D1Database, since: i64) -> StoreResult<bool> {
    let n: Option<super::Count> = super::first(query!(
        db,
        "SELECT EXISTS (SELECT 1 FROM stripe_events WHERE reason = 'sale_not_found' AND received_at >= ?1) AS n",
        since
    )?)
    .await?;
    Ok(n.is_some_and(|c| c.n > 0))
}

/// Replaces what a recorded event did (an invoice counted once its referral arrived).
pub async fn revise(db: &D1Database, id: &str, o: &Outcome) -> StoreResult<()> {
    super::run(query!(
        db,
        "UPDATE stripe_events SET outcome = ?2, effect = ?3, reason = ?4, program_id = ?5, partner_id = ?6 WHERE id = ?1",
        id,
        o.outcome,
        o.effect,
        o.reason,
        o.program_id,
        o.partner_id
    )?)
    .await?;
    Ok(())
}

/// The newest `limit` events received; with `program_id`, only that program's.
pub async fn recent(db: &D1Database, program_id: Option<&str>, limit: u32) -> StoreResult<Vec<Received>> {
    super::all(query!(
        db,
        "SELECT e.id, e.type AS kind, e.endpoint, e.received_at, e.outcome, e.effect, e.reason, e.program_id,
                e.partner_id, p.name AS partner_name, e.stripe_customer_id, e.object_id, e.amount, e.currency
         FROM stripe_events e LEFT JOIN partners p ON p.id = e.partner_id
         WHERE ?1 IS NULL OR e.program_id = ?1
         ORDER BY e.received_at DESC, e.id DESC LIMIT ?2",
        program_id,
        limit
    )?)
    .await
}

/// What an event changes, decided by the handler.
#[derive(Clone, Debug)]
pub enum Effect {
    /// The connected account's state as just read from Stripe (`GET /v1/accounts/{id}`), never
    /// the event's snapshot: events arrive late and out of order.
    /// `fingerprint`: the bank account it pays out to (`None`: unknown, the stored one stays).
    AccountState { account: String, can_receive: bool, reason: Option<&'static str>, fingerprint: Option<String> },
    /// Stripe has reversed `total_reversed` (cumulative) of payout `payout_id`'s transfer; the
    /// part not yet recorded becomes a paid clawback `clawback_id` inside the payout.
    TransferReversed { payout_id: String, total_reversed: i64, clawback_id: String },
    /// `balance.available`: a pause for a platform balance too low ends.
    ResumePayouts,
}

/// Records event `id` and applies `effect`, atomically; the effect applies only if this call
/// recorded the id. `token` is a fresh random value marking this delivery (a replay leaves the
/// first delivery's token in place, so its effect is skipped). Answers whether this was the
/// first delivery of the event.
pub async fn record(
    db: &D1Database,
    id: &str,
    event_type: &str,
    token: &str,
    effect: Option<Effect>,
    outcome: &Outcome,
    now: i64,
) -> StoreResult<bool> {
    let o = outcome;
    let mut stmts = vec![query!(
        db,
        "INSERT INTO stripe_events (id, type, token, received_at, endpoint, outcome, effect, reason, program_id,
                                    partner_id, stripe_customer_id, object_id, amount, currency, payment_intent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) ON CONFLICT DO NOTHING",
        id,
        event_type,
        token,
        now,
        o.endpoint,
        o.outcome,
        o.effect,
        o.reason,
        o.program_id,
        o.partner_id,
        o.stripe_customer_id,
        o.object_id,
        o.amount,
        o.currency,
        o.payment_intent
    )?];
    match effect {
        Some(Effect::AccountState { account, can_receive, reason, fingerprint }) => stmts.push(query!(
            db,
            "UPDATE partners SET payouts_enabled = ?2, payouts_disabled_reason = ?6, updated_at = ?3,
                 bank_fingerprint = COALESCE(?7, bank_fingerprint)
             WHERE stripe_account_id = ?1 AND EXISTS (SELECT 1 FROM stripe_events WHERE id = ?4 AND token = ?5)",
            &account,
            can_receive as i32,
            now,
            id,
            token,
            reason,
            fingerprint
        )?),
        Some(Effect::TransferReversed { payout_id, total_reversed, clawback_id }) => {
            // Cumulative and guarded by what is recorded: each reversed unit applies once.
            stmts.extend(super::payouts::apply_reversal(db, &payout_id, total_reversed, &clawback_id, now)?);
            stmts.extend(super::outbox::fan_out(db, now)?);
        }
        Some(Effect::ResumePayouts) => stmts.push(query!(
            db,
            "DELETE FROM payout_pause WHERE id = 1 AND cause = 'balance_insufficient'
               AND EXISTS (SELECT 1 FROM stripe_events WHERE id = ?1 AND token = ?2)",
            id,
            token
        )?),
        None => {}
    }
    let changes = batch(db, stmts).await?;
    Ok(changes.first().copied().unwrap_or(0) == 1)
}
