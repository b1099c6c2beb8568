//! The scheduled run: approve commissions whose hold period has passed, retry payouts left in
//! flight, then pay every partner who is due. Bounded per invocation (see
//! `refport_core::payout` for the subrequest budget); what is left is done by the next run.
//! Two overlapping runs never pay anyone twice: a payout is claimed under a unique index and
//! every transfer carries `Idempotency-Key` = the payout id.

use crate::http::error::ApiResult;
use crate::state::{new_id, AppState};
use crate::store::link_cache;
use crate::store::payouts::{self, Claim};
use crate::stripe::{Stripe, StripeError};
use refport_core::ids;
use refport_core::payout::{
    claim_matches, plan, Candidate, MAX_APPROVALS_PER_RUN, MAX_PAYOUTS_PER_RUN, MAX_RETRIES_PER_RUN,
};
use refport_core::program::ProgramSettings;
use serde::Serialize;

#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    pub approved: usize,
    pub paid: usize,
    pub failed: usize,
    pub retried: usize,
    pub pending_retry: usize,
    pub skipped: usize,
    pub cache_refreshed: usize,
    pub webhooks_delivered: usize,
    /// True when a bound was reached: the next run continues.
    pub more_work: bool,
}

enum Sent {
    Paid,
    Failed,
    Retry,
}

async fn send(db: &worker::D1Database, stripe: &Stripe, p: &payouts::InFlight, now: i64) -> ApiResult<Sent> {
    let Some(dest) = p.stripe_account_id.as_deref() else {
        payouts::mark_failed(db, &p.id, "partner has no Stripe account", now).await?;
        return Ok(Sent::Failed);
    };
    match stripe.transfer(&p.id, p.amount, &p.currency, dest, &p.program_id, &p.partner_id).await {
        Ok(t) => {
            payouts::mark_paid(db, &p.id, &t.id, now).await?;
            Ok(Sent::Paid)
        }
        // The same key with other parameters would mean our own bug, never a reason to release
        // commissions a transfer may have paid: keep it in flight and let ops look.
        Err(StripeError::Permanent { kind, message, .. }) if kind == "idempotency_error" => {
            payouts::note_attempt(db, &p.id, &message, now).await?;
            Ok(Sent::Retry)
        }
        Err(StripeError::Permanent { message, .. }) => {
            payouts::mark_failed(db, &p.id, &message, now).await?;
            Ok(Sent::Failed)
        }
        Err(e) => {
            payouts::note_attempt(db, &p.id, &e.to_string(), now).await?;
            Ok(Sent::Retry)
        }
    }
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

    match Stripe::from_state(state) {
        Ok(stripe) => pay(state, &stripe, now, &mut out).await?,
        Err(e) => worker::console_error!("cron: payouts skipped: {e}"),
    }

    // Webhook deliveries due (first attempts missed by their request, retries, payout events).
    out.webhooks_delivered = crate::webhooks::deliver_due(state, now, crate::webhooks::PER_RUN).await?;
    Ok(out)
}

/// Retries payouts in flight, then starts new ones, within the per-run bounds.
async fn pay(state: &AppState, stripe: &Stripe, now: i64, out: &mut Outcome) -> ApiResult<()> {
    let db = &state.db;

    // 1. Payouts an earlier run left in flight: same key, so Stripe answers the same transfer.
    let retries = payouts::in_flight(db, now, MAX_RETRIES_PER_RUN + 1).await?;
    out.more_work |= retries.len() > MAX_RETRIES_PER_RUN;
    for p in retries.iter().take(MAX_RETRIES_PER_RUN) {
        out.retried += 1;
        match send(db, stripe, p, now).await? {
            Sent::Paid => out.paid += 1,
            Sent::Failed => out.failed += 1,
            Sent::Retry => out.pending_retry += 1,
        }
    }

    // 2. New payouts for every partner who is due.
    let candidates = payouts::candidates(db, MAX_PAYOUTS_PER_RUN * 5).await?;
    let mut started = 0;
    for c in candidates {
        if started == MAX_PAYOUTS_PER_RUN {
            out.more_work = true;
            break;
        }
        let settings: ProgramSettings = serde_json::from_str(&c.settings)?;
        let candidate = Candidate {
            partner_id: c.partner_id.clone(),
            payouts_enabled: true,
            partner_active: true,
            net_approved: c.net,
            count: c.n as u32,
        };
        if plan(&settings.payout_schedule, settings.min_payout, now, &candidate).is_err() {
            out.skipped += 1;
            continue;
        }
        let id = new_id(ids::PAYOUT, now)?;
        let currency = settings.payout_currency.code();
        let (amount, _count) = match payouts::claim(db, &id, &c.program_id, &c.partner_id, currency, now).await? {
            Claim::Claimed(a, n) => (a, n),
            Claim::Busy => {
                out.skipped += 1;
                continue;
            }
        };
        started += 1;
        if !claim_matches(amount, settings.min_payout) {
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
            currency: currency.to_string(),
            stripe_account_id: Some(c.stripe_account_id),
        };
        // A transient failure leaves the payout `processing`: the next run retries it.
        match send(db, stripe, &p, now).await? {
            Sent::Paid => out.paid += 1,
            Sent::Failed => out.failed += 1,
            Sent::Retry => out.pending_retry += 1,
        }
    }
    Ok(())
}
