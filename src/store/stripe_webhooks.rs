//! Incoming Stripe webhooks: each event id is recorded once (`stripe_events`), in the same
//! atomic batch as its effect on partners or payouts, so a replayed event changes nothing.

use super::{batch, StoreResult};
use worker::{query, D1Database};

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
    now: i64,
) -> StoreResult<bool> {
    let mut stmts = vec![query!(
        db,
        "INSERT INTO stripe_events (id, type, token, received_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        id,
        event_type,
        token,
        now
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
