//! The scheduled run: approve commissions whose hold period has passed, retry payouts left in
//! flight, then pay every partner who is due. Bounded per invocation (see
//! `refport_core::payout` for the subrequest budget); what is left is done by the next run.
//! Two overlapping runs never pay anyone twice: a payout is claimed under a unique index, a
//! transfer of unknown outcome is looked up by `transfer_group` before anything is resent, and a
//! resend is claimed by a conditional UPDATE of the payout's attempt number (its key derives
//! from it). Account-wide Stripe refusals pause payouts and fail nobody.

use crate::http::error::ApiResult;
use crate::state::{new_id, now_ms, AppState};
use crate::store::link_cache;
use crate::store::payouts::{self, Claim};
use crate::stripe::Stripe;
use refport_core::ids;
use refport_core::payout::{
    claim_matches, plan, Candidate, MAX_APPROVALS_PER_RUN, MAX_PAYOUTS_PER_RUN, MAX_PROGRAMS_PER_RUN,
    MAX_RETRIES_PER_RUN,
};
use refport_core::program::ProgramSettings;
use refport_core::transfer::{classify, transfer_matches, AccountCause, Verdict};
use serde::Serialize;

#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    pub approved: usize,
    pub paid: usize,
    pub failed: usize,
    pub retried: usize,
    pub reconciled: usize,
    pub pending_retry: usize,
    pub skipped: usize,
    /// Payouts paused platform-wide (an account-wide Stripe refusal): why.
    pub paused: Option<String>,
    pub cache_refreshed: usize,
    pub webhooks_delivered: usize,
    /// Raw click rows deleted by retention (`crate::retention`).
    pub clicks_deleted: usize,
    /// True when a bound was reached: the next run continues.
    pub more_work: bool,
}

/// What one transfer attempt left behind.
enum Sent {
    Paid,
    Failed,
    /// Kept in flight (outcome unknown, or a key misuse for an operator).
    InFlight,
    /// Refused for the whole platform: nothing more is sent this run.
    Stop,
}

/// Sends attempt `p.transfer_attempt` of a claimed payout and records what Stripe answered.
/// `fresh`: the payout was claimed by this run and never sent, so a definite refusal can
/// simply release its claim.
async fn send(
    state: &AppState,
    stripe: &Stripe,
    p: &payouts::InFlight,
    fresh: bool,
    now: i64,
    out: &mut Outcome,
) -> ApiResult<Sent> {
    // Every write of an attempt carries the clock of the attempt, not of the run's start: a
    // payout's `updated_at` is the lease reconciliation waits out (a long run must not eat it).
    let now = now.max(now_ms());
    let db = &state.db;
    let Some(dest) = p.stripe_account_id.as_deref() else {
        payouts::mark_failed(db, &p.id, "partner has no Stripe account", "no_stripe_account", now).await?;
        return Ok(Sent::Failed);
    };
    let refused = match stripe
        .transfer(&p.id, p.transfer_attempt, p.amount, &p.currency, dest, &p.program_id, &p.partner_id)
        .await
    {
        Ok(t) => {
            payouts::mark_paid(db, &p.id, &t.id, now).await?;
            return Ok(Sent::Paid);
        }
        Err(r) => r,
    };
    match classify(&refused.refusal) {
        Verdict::Unknown { stop_run } => {
            // The transfer may exist: the next run looks it up before anything is resent.
            payouts::note_attempt(db, &p.id, &refused.to_string(), now).await?;
            Ok(if stop_run { Sent::Stop } else { Sent::InFlight })
        }
        Verdict::KeyMisuse => {
            worker::console_error!("payout {}: idempotency key misuse: {refused}", p.id);
            payouts::note_attempt(db, &p.id, &refused.to_string(), now).await?;
            Ok(Sent::InFlight)
        }
        Verdict::AccountWide { cause, resume_after_ms } => {
            // Nothing was created: the money stays owed and nobody fails.
            if fresh {
                payouts::release_unsent(db, &p.id, now).await?;
            } else {
                payouts::note_attempt(db, &p.id, &refused.to_string(), now).await?;
            }
            pause(state, cause, &refused.message, resume_after_ms, now, out).await?;
            Ok(Sent::Stop)
        }
        Verdict::Partner { reason } => {
            payouts::mark_failed(db, &p.id, &refused.to_string(), &reason, now).await?;
            Ok(Sent::Failed)
        }
    }
}

/// Pauses every payout after an account-wide refusal, at most for the deployment's maximum.
async fn pause(
    state: &AppState,
    cause: AccountCause,
    message: &str,
    resume_after_ms: i64,
    now: i64,
    out: &mut Outcome,
) -> ApiResult<()> {
    let until = now + resume_after_ms.min(state.config.pause_max_ms);
    payouts::set_pause(&state.db, cause.as_str(), message, until, now).await?;
    out.paused = Some(cause.as_str().to_string());
    Ok(())
}

/// A payout left in flight: look its transfer up by `transfer_group` first; resend (under the
/// next attempt's key, claimed so only one run sends) only when Stripe has none.
async fn reconcile(
    state: &AppState,
    stripe: &Stripe,
    p: &mut payouts::InFlight,
    now: i64,
    out: &mut Outcome,
) -> ApiResult<Sent> {
    let now = now.max(now_ms());
    let db = &state.db;
    let found = match stripe.transfers_of(&p.id).await {
        Ok(list) => list,
        Err(refused) => {
            return Ok(match classify(&refused.refusal) {
                Verdict::AccountWide { cause, resume_after_ms } => {
                    pause(state, cause, &refused.message, resume_after_ms, now, out).await?;
                    Sent::Stop
                }
                Verdict::Unknown { stop_run: true } => Sent::Stop,
                _ => Sent::InFlight,
            })
        }
    };
    let dest = p.stripe_account_id.as_deref().unwrap_or_default();
    if let Some(t) = found
        .iter()
        .find(|t| transfer_matches((dest, p.amount, &p.currency), t.destination.as_deref(), t.amount, &t.currency))
    {
        payouts::mark_paid(db, &p.id, &t.id, now).await?;
        out.reconciled += 1;
        return Ok(Sent::Paid);
    }
    if !found.is_empty() {
        // A transfer in this payout's group that is not this payout's: never pay on top of it.
        worker::console_error!("payout {}: transfer group holds a transfer that does not match", p.id);
        return Ok(Sent::InFlight);
    }
    if !payouts::claim_resend(db, &p.id, p.transfer_attempt, now).await? {
        return Ok(Sent::InFlight); // another run is resending it
    }
    p.transfer_attempt += 1;
    send(state, stripe, p, false, now, out).await
}

pub async fn run_once(state: &AppState, now: i64) -> ApiResult<Outcome> {
    let db = &state.db;
    let mut out = Outcome {
        approved: payouts::approve_due(db, now, MAX_APPROVALS_PER_RUN).await?,
        // Link-cache refreshes a request could not finish (programs with many links).
        cache_refreshed: link_cache::continue_jobs(db, &state.links, link_cache::CRON_REFRESH).await?,
        ..Outcome::default()
    };
    out.more_work |= out.approved == MAX_APPROVALS_PER_RUN;
    out.clicks_deleted = crate::retention::delete_expired_clicks(state, now).await?;

    match Stripe::from_state(state) {
        Ok(stripe) => pay(state, &stripe, now, &mut out).await?,
        Err(e) => worker::console_error!("cron: payouts skipped: {e}"),
    }

    // Webhook deliveries due (first attempts missed by their request, retries, payout events).
    out.webhooks_delivered = crate::webhook_delivery::deliver_due(state, now, crate::webhook_delivery::PER_RUN).await?;
    Ok(out)
}

/// Reconciles payouts in flight, then starts new ones, within the per-run bounds; stops at the
/// first account-wide refusal or sign of an outage.
async fn pay(state: &AppState, stripe: &Stripe, now: i64, out: &mut Outcome) -> ApiResult<()> {
    let db = &state.db;
    if let Some(p) = payouts::pause(db).await? {
        if p.until_ms > now {
            out.paused = Some(p.cause);
            return Ok(());
        }
    }

    // 1. Payouts an earlier run left in flight, once their last attempt is safely old.
    let mut retries = payouts::in_flight(db, now - state.config.reconcile_after_ms, MAX_RETRIES_PER_RUN + 1).await?;
    out.more_work |= retries.len() > MAX_RETRIES_PER_RUN;
    for p in retries.iter_mut().take(MAX_RETRIES_PER_RUN) {
        out.retried += 1;
        match reconcile(state, stripe, p, now, out).await? {
            Sent::Paid => out.paid += 1,
            Sent::Failed => out.failed += 1,
            Sent::InFlight => out.pending_retry += 1,
            Sent::Stop => return Ok(()),
        }
    }

    // 2. New payouts: every balance payable today, in the programs whose schedule is due.
    let programs = payouts::programs_with_balances(db, MAX_PROGRAMS_PER_RUN).await?;
    let mut settings_of = std::collections::HashMap::new();
    for p in programs {
        let settings: ProgramSettings = serde_json::from_str(&p.settings)?;
        if settings.payout_schedule.is_due(now) {
            settings_of.insert(p.id, settings);
        }
    }
    if settings_of.is_empty() {
        return Ok(());
    }
    let due: Vec<String> = settings_of.keys().cloned().collect();
    let candidates = payouts::candidates(db, &due, MAX_PAYOUTS_PER_RUN + 1).await?;
    out.more_work |= candidates.len() > MAX_PAYOUTS_PER_RUN;
    for c in candidates.into_iter().take(MAX_PAYOUTS_PER_RUN) {
        let Some(settings) = settings_of.get(&c.program_id) else { continue };
        // The minimum applies in the program's payout currency; a balance left in an earlier
        // currency is paid whatever its size (nothing new will ever add to it).
        let min = if settings.payout_currency.code() == c.currency { settings.min_payout } else { 1 };
        let candidate = Candidate {
            partner_id: c.partner_id.clone(),
            payouts_enabled: true,
            partner_active: true,
            net_approved: c.net,
            count: c.n as u32,
        };
        if plan(&settings.payout_schedule, min, now, &candidate).is_err() {
            out.skipped += 1;
            continue;
        }
        let id = new_id(ids::PAYOUT, now)?;
        let amount = match payouts::claim(db, &id, &c.program_id, &c.partner_id, &c.currency, now.max(now_ms())).await?
        {
            Claim::Claimed(a, _) => a,
            Claim::Busy => {
                out.skipped += 1;
                continue;
            }
        };
        if !claim_matches(amount, min) {
            // A clawback or refund landed between the read and the claim.
            payouts::release_unsent(db, &id, now).await?;
            out.skipped += 1;
            continue;
        }
        let p = payouts::InFlight {
            id,
            program_id: c.program_id,
            partner_id: c.partner_id,
            amount,
            currency: c.currency,
            stripe_account_id: Some(c.stripe_account_id),
            transfer_attempt: 1,
        };
        match send(state, stripe, &p, true, now, out).await? {
            Sent::Paid => out.paid += 1,
            Sent::Failed => out.failed += 1,
            Sent::InFlight => out.pending_retry += 1,
            Sent::Stop => return Ok(()),
        }
    }
    Ok(())
}
