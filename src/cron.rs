//! The scheduled run: approve commissions whose hold period has passed, continue link-cache
//! refreshes, fan payouts out, deliver due webhooks, within the invocation's subrequest
//! [`Budget`] (`refport_core::payout` has the arithmetic).
//!
//! Payouts: on a due day the cron claims every balance payable today in bulk (atomic D1
//! batches of up to `CLAIM_CHUNK_MAX` payouts, `processing` at transfer attempt 0) and enqueues
//! one `PAYOUTS` message per payout; the queue's consumers pay (`crate::payout_queue`). It also
//! sweeps payouts untouched for the reconciliation delay (a lost message, a transfer of unknown
//! outcome): leased by one conditional UPDATE, so overlapping runs never both enqueue them,
//! then enqueued again. Two overlapping runs never pay anyone twice: a payout is claimed under
//! a unique index, its first attempt taken by a conditional UPDATE, a transfer of unknown
//! outcome looked up by `transfer_group` before anything is resent, and a resend claimed by a
//! conditional UPDATE of the attempt number (its key derives from it). Account-wide Stripe
//! refusals pause payouts and fail nobody. Without a `PAYOUTS` binding (a deployment that has
//! not created the queue) the cron pays what it claimed itself, as before the fan-out.

use crate::http::error::ApiResult;
use crate::metrics::{self, Counter};
use crate::payout_queue::{Pacer, Payer, PayoutMessage, Tally};
use crate::state::{new_id, now_ms, AppState};
use crate::store::link_cache;
use crate::store::payouts::{self, Claimed};
use crate::stripe::Stripe;
use refport_core::ids;
use refport_core::payout::{
    claim_chunk, claim_matches, Budget, PayoutMode, PayoutStatus, CRON_WEBHOOK_FLOOR, DIRECT_PAYOUTS_MAX,
    DIRECT_SWEEP_MAX, LINK_CACHE_MAX_SUBREQUESTS, MAX_APPROVALS_PER_RUN, MAX_PROGRAMS_PER_RUN, PAUSE_COST,
    QUEUE_SEND_BATCH_MAX, RECONCILE_COST, SEND_COST, SWEEP_MAX,
};
use refport_core::program::ProgramSettings;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    pub approved: usize,
    /// Payouts claimed by this run.
    pub claimed: usize,
    /// Payouts leased by the sweep (a lost message, a transfer of unknown outcome).
    pub swept: usize,
    /// Messages sent to the `PAYOUTS` queue.
    pub enqueued: usize,
    /// Payouts prepared `awaiting_approval` (programs in payout review mode): nothing sent.
    pub awaiting_approval: usize,
    /// Claims released at once (a sum that no longer met the minimum).
    pub released: usize,
    /// What the run paid itself (no `PAYOUTS` queue bound).
    pub direct: Option<Tally>,
    /// Payouts paused platform-wide (an account-wide Stripe refusal): why.
    pub paused: Option<String>,
    pub cache_refreshed: usize,
    pub webhooks_delivered: usize,
    /// Raw click rows deleted by retention (`crate::retention`).
    pub clicks_deleted: usize,
    /// Subrequests this invocation made.
    pub subrequests: usize,
    /// True when a bound was reached: the next run continues.
    pub more_work: bool,
}

pub async fn run_once(state: &AppState, now: i64) -> ApiResult<Outcome> {
    metrics::add(Counter::cron_runs, 1);
    let mut budget = Budget::new(state.config.subrequest_budget);
    let result = run_within(state, &mut budget, now).await;
    metrics::max(Counter::max_invocation_subrequests, budget.spent() as u64);
    result.map(|mut out| {
        out.subrequests = budget.spent();
        out
    })
}

async fn run_within(state: &AppState, budget: &mut Budget, now: i64) -> ApiResult<Outcome> {
    let db = &state.db;
    budget.charge(1);
    let mut out =
        Outcome { approved: payouts::approve_due(db, now, MAX_APPROVALS_PER_RUN).await?, ..Outcome::default() };
    out.more_work |= out.approved == MAX_APPROVALS_PER_RUN;
    let (deleted, queries) = crate::retention::delete_expired_clicks(state, now).await?;
    out.clicks_deleted = deleted;
    budget.charge(queries);
    // Link-cache refreshes a request could not finish (programs with many links): its job list,
    // and at most a page read and an update per job when it wrote (its KV writes count against
    // KV's own per-invocation limit).
    out.cache_refreshed = link_cache::continue_jobs(db, &state.links, link_cache::CRON_REFRESH).await?;
    budget.charge(if out.cache_refreshed > 0 { LINK_CACHE_MAX_SUBREQUESTS } else { 1 });

    match Stripe::from_state(state) {
        Ok(stripe) => {
            let mut share = budget.share(CRON_WEBHOOK_FLOOR);
            let paid = pay(state, &stripe, &mut share, now, &mut out).await;
            budget.absorb(&share);
            paid?;
        }
        Err(e) => worker::console_error!("cron: payouts skipped: {e}"),
    }

    // Webhook deliveries due (first attempts missed by their request, retries, payout events),
    // as many as the budget has left room for.
    let limit = (budget.remaining().saturating_sub(1) / 3).min(crate::webhook_delivery::PER_RUN as usize) as u32;
    if limit > 0 {
        let (delivered, spent) = crate::webhook_delivery::deliver_due_counted(state, now, limit).await?;
        out.webhooks_delivered = delivered;
        budget.charge(spent);
    }
    Ok(out)
}

/// Payouts: the sweep, then the claims of every program due today, enqueued (or, without a
/// queue, paid by this run) within `budget`; nothing while payouts are paused.
async fn pay(state: &AppState, stripe: &Stripe, budget: &mut Budget, now: i64, out: &mut Outcome) -> ApiResult<()> {
    if !budget.take(1) {
        out.more_work = true;
        return Ok(());
    }
    if let Some(p) = payouts::pause(&state.db).await? {
        if p.until_ms > now {
            out.paused = Some(p.cause);
            return Ok(());
        }
    }
    match state.payouts_queue() {
        Ok(queue) => fan_out(state, &queue, budget, now, out).await,
        Err(_) => {
            // Logged once per run: an older deployment without the queue still gets paid.
            worker::console_log!("cron: no PAYOUTS queue bound: this run pays what it claims itself");
            pay_directly(state, stripe, budget, now, out).await
        }
    }
}

/// Leases up to `limit` payouts untouched for the reconciliation delay (one subrequest) and
/// answers their messages.
async fn sweep(
    state: &AppState,
    budget: &mut Budget,
    limit: usize,
    now: i64,
    out: &mut Outcome,
) -> ApiResult<Vec<PayoutMessage>> {
    if limit == 0 || !budget.take(1) {
        out.more_work = true;
        return Ok(Vec::new());
    }
    let swept = payouts::sweep(&state.db, now - state.config.reconcile_after_ms, now.max(now_ms()), limit).await?;
    out.swept += swept.len();
    out.more_work |= swept.len() == limit;
    Ok(swept
        .into_iter()
        .map(|p| PayoutMessage { payout_id: p.id, attempt: p.transfer_attempt, lease: p.updated_at })
        .collect())
}

/// The settings of every program with owed balances whose schedule is due now (one subrequest).
async fn due_programs(state: &AppState, budget: &mut Budget, now: i64) -> ApiResult<HashMap<String, ProgramSettings>> {
    let mut due = HashMap::new();
    if !budget.take(1) {
        return Ok(due);
    }
    for p in payouts::programs_with_balances(&state.db, MAX_PROGRAMS_PER_RUN).await? {
        match refport_core::wire::from_text::<ProgramSettings>(p.settings.as_bytes()) {
            Ok(settings) if settings.payout_schedule.is_due(now) => {
                due.insert(p.id, settings);
            }
            Ok(_) => {}
            Err(e) => worker::console_error!("cron: program {}: unreadable settings: {e}", p.id),
        }
    }
    Ok(due)
}

/// Claims up to `n` balances payable today (one subrequest; the caller took it). A claimed sum
/// below the minimum cannot happen (selection and claim read one snapshot); should one appear,
/// its claim is released when the budget allows, and it is never enqueued.
async fn claim(
    state: &AppState,
    budget: &mut Budget,
    due: &HashMap<String, ProgramSettings>,
    n: usize,
    now: i64,
    out: &mut Outcome,
) -> ApiResult<Vec<Claimed>> {
    let claim_now = now.max(now_ms());
    let ids = (0..n).map(|_| new_id(ids::PAYOUT, claim_now)).collect::<Result<Vec<_>, _>>()?;
    let programs: Vec<String> = due.keys().cloned().collect();
    let review: Vec<String> =
        due.iter().filter(|(_, s)| s.payout_mode == PayoutMode::Review).map(|(id, _)| id.clone()).collect();
    let claimed = payouts::claim_due(&state.db, &ids, &programs, &review, claim_now).await?;
    out.claimed += claimed.len();
    let mut kept = Vec::with_capacity(claimed.len());
    for c in claimed {
        // The minimum (the partner's, else its group's, else the program's) applies in the
        // program's payout currency; a balance left in an earlier currency is paid whatever its
        // size (nothing new will ever add to it).
        let min = match due.get(&c.program_id) {
            Some(s) if s.payout_currency.code() == c.currency => {
                refport_core::group::effective_min_payout(s.min_payout, None, c.partner_min_payout)
            }
            _ => 1,
        };
        if claim_matches(c.amount, min) {
            // A payout prepared for review waits for the merchant: nothing to send now.
            if c.status == PayoutStatus::Processing {
                kept.push(c);
            } else {
                out.awaiting_approval += 1;
            }
            continue;
        }
        worker::console_error!("cron: payout {} claimed {} below the minimum {min}", c.id, c.amount);
        if budget.take(1) && payouts::release_untaken(&state.db, &c.id, now.max(now_ms())).await? {
            out.released += 1;
        }
    }
    Ok(kept)
}

/// Sends `messages` to the queue, 100 per subrequest (the caller checked they fit). A send
/// that fails leaves its payouts claimed: the sweep enqueues them again after the delay.
async fn enqueue(queue: &worker::Queue, budget: &mut Budget, messages: Vec<PayoutMessage>, out: &mut Outcome) -> bool {
    for chunk in messages.chunks(QUEUE_SEND_BATCH_MAX) {
        if !budget.take(1) {
            out.more_work = true;
            return false;
        }
        if let Err(e) = queue.send_batch(chunk.to_vec()).await {
            worker::console_error!("cron: enqueueing {} payouts failed (the sweep retries them): {e}", chunk.len());
            return false;
        }
        out.enqueued += chunk.len();
        metrics::add(Counter::payouts_enqueued, chunk.len() as u64);
    }
    true
}

/// With the queue: re-enqueue what the sweep leased, then claim and enqueue chunk after chunk
/// until nothing payable is left or the budget is spent (the next run continues).
async fn fan_out(
    state: &AppState,
    queue: &worker::Queue,
    budget: &mut Budget,
    now: i64,
    out: &mut Outcome,
) -> ApiResult<()> {
    // Room for the lease, its sends and the due-programs query.
    let room = budget.remaining().saturating_sub(2);
    let limit = SWEEP_MAX.min(room.saturating_sub(1) * QUEUE_SEND_BATCH_MAX);
    let swept = sweep(state, budget, limit, now, out).await?;
    if !enqueue(queue, budget, swept, out).await {
        return Ok(());
    }
    let due = due_programs(state, budget, now).await?;
    if due.is_empty() {
        return Ok(());
    }
    loop {
        // The claim batch and the sends of a chunk of `n` fit what is left.
        let n = claim_chunk(budget.remaining());
        if n == 0 || !budget.take(1) {
            out.more_work = true;
            return Ok(());
        }
        let before = out.claimed;
        let claimed = claim(state, budget, &due, n, now, out).await?;
        if out.claimed == before {
            return Ok(());
        }
        let messages =
            claimed.into_iter().map(|c| PayoutMessage { payout_id: c.id, attempt: 0, lease: c.updated_at }).collect();
        if !enqueue(queue, budget, messages, out).await {
            return Ok(());
        }
    }
}

/// Without the queue: this run pays what the sweep leased (up to `DIRECT_SWEEP_MAX`) and up to
/// `DIRECT_PAYOUTS_MAX` new payouts itself, paced, within its budget, as before the fan-out.
async fn pay_directly(
    state: &AppState,
    stripe: &Stripe,
    budget: &mut Budget,
    now: i64,
    out: &mut Outcome,
) -> ApiResult<()> {
    let mut work = sweep(state, budget, DIRECT_SWEEP_MAX, now, out).await?;
    let due = due_programs(state, budget, now).await?;
    // Room after the claim, the load and the swept payouts at their worst (one pause write).
    let reserved = 2 + work.len() * RECONCILE_COST + PAUSE_COST;
    let n = (budget.remaining().saturating_sub(reserved) / SEND_COST).min(DIRECT_PAYOUTS_MAX);
    if !due.is_empty() && n > 0 && budget.take(1) {
        let before = out.claimed;
        let claimed = claim(state, budget, &due, n, now, out).await?;
        out.more_work |= out.claimed - before == n;
        work.extend(claimed.into_iter().map(|c| PayoutMessage { payout_id: c.id, attempt: 0, lease: c.updated_at }));
    }
    if work.is_empty() || !budget.take(1) {
        return Ok(());
    }
    let ids: Vec<String> = work.iter().map(|m| m.payout_id.clone()).collect();
    let (_, rows) = payouts::load_queued(&state.db, &ids).await?;
    let mut payer = Payer { state, stripe, budget, pacer: Pacer::default(), tally: Tally::default() };
    let result = payer.run_all(&work, &rows, now).await;
    payer.pacer.finish().await;
    out.more_work |= matches!(result, Ok(true));
    out.paused = payer.tally.paused.clone();
    out.direct = Some(payer.tally);
    result.map(|_| ())
}
