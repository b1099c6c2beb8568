//! Incoming Stripe webhooks: each event id is recorded once (`stripe_events`), in the same
//! atomic batch as its effect on partners or payouts, so a replayed event changes nothing.

use super::{batch, StoreResult};
use worker::{query, D1Database};

/// What an event changes, read from its payload by the handler.
#[derive(Clone, Copy, Debug)]
pub enum Effect<'a> {
    /// `account.updated`: whether the connected account can receive payouts now.
    PayoutsEnabled { account: &'a str, enabled: bool },
    /// A (partial) reversal of a payout's transfer: noted on the payout, which fails when the
    /// whole amount was reversed.
    TransferReversed { transfer: &'a str, amount_reversed: i64 },
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
    effect: Option<Effect<'_>>,
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
        Some(Effect::PayoutsEnabled { account, enabled }) => stmts.push(query!(
            db,
            "UPDATE partners SET payouts_enabled = ?2, updated_at = ?3
             WHERE stripe_account_id = ?1 AND EXISTS (SELECT 1 FROM stripe_events WHERE id = ?4 AND token = ?5)",
            account,
            enabled as i32,
            now,
            id,
            token
        )?),
        Some(Effect::TransferReversed { transfer, amount_reversed }) => stmts.push(query!(
            db,
            "UPDATE payouts SET failure_message = 'transfer reversed: ' || ?2 || ' ' || currency,
                 status = CASE WHEN ?2 >= amount THEN 'failed' ELSE status END, updated_at = ?3
             WHERE stripe_transfer_id = ?1 AND EXISTS (SELECT 1 FROM stripe_events WHERE id = ?4 AND token = ?5)",
            transfer,
            amount_reversed,
            now,
            id,
            token
        )?),
        None => {}
    }
    let changes = batch(db, stmts).await?;
    Ok(changes.first().copied().unwrap_or(0) == 1)
}
