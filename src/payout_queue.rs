//! The payouts queue: one message per payout ([`PayoutMessage`]), and the payment of one
//! payout, shared by the queue's consumer ([`consume`]) and by the cron when no `PAYOUTS`
//! queue is bound ([`Payer`]).
//!
//! The cron claims payouts in bulk (`store::payouts::claim_due`: `processing`, transfer attempt
//! 0) and enqueues them; it also re-enqueues what its sweep leased (a lost message, a transfer
//! of unknown outcome). A consumer reads the batch's payouts and the platform pause in one D1
//! batch, then for each message:
//! - the payout is no longer `processing`, or was touched since the message was sent: a stale
//!   or duplicate message, acknowledged and nothing else;
//! - attempt 0 (claimed, never sent): the first attempt is taken with a conditional UPDATE
//!   (0 → 1) right before the transfer, so only one delivery sends; a partner no longer payable
//!   gets its claim released instead;
//! - a transfer of unknown outcome the sweep leased (same attempt, same lease): looked up by
//!   `transfer_group` first, resent under the next attempt's key only when Stripe has none and
//!   only by whoever claims that attempt (`claim_resend`).
//!
//! Every D1 call, Stripe request and queue send is taken from the invocation's
//! [`Budget`] first; a message whose worst case no longer fits is retried with the rest of the
//! batch after [`BUDGET_RETRY_SECONDS`]. Stripe requests are paced ([`Pacer`],
//! `refport_core::payout` has the arithmetic). An account-wide refusal pauses every payout and
//! retries the rest of the batch once the pause ends; Stripe looking unavailable (no answer, a
//! 5xx) stops sending and leaves the rest to the sweep, which enqueues it again once the
//! reconciliation delay has passed.

use crate::http::error::{ApiError, ApiResult};
use crate::metrics::{self, Counter};
use crate::state::{now_ms, AppState};
use crate::store::payouts::{self, Queued};
use crate::stripe::Stripe;
use refport_core::partner::PartnerStatus;
use refport_core::payout::{
    pace_wait_ms, Budget, PayoutStatus, CONSUMER_FIXED, PAUSE_COST, RECONCILE_COST, RELEASE_COST, SEND_COST,
};
use refport_core::transfer::{classify, transfer_matches, AccountCause, Verdict};
use serde::Serialize;
use std::time::Duration;
use worker::{Delay, MessageBatch, MessageExt, QueueRetryOptionsBuilder};

/// Delay before a message the invocation had no budget left for is delivered again.
pub const BUDGET_RETRY_SECONDS: u32 = 2;
/// The longest delay Queues accepts for a retried message (12 hours).
const MAX_RETRY_DELAY_SECONDS: i64 = 43_200;

refport_core::from_json! {
    deny_unknown_fields
    /// One payout to pay (`PAYOUTS` queue body). `attempt`: the transfer attempt the enqueuer saw
    /// (0: claimed, never sent); `lease`: the payout's `updated_at` then (the claim's clock, or the
    /// sweep's lease). A payout touched since (another attempt, an outcome) makes the message stale.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
    pub struct PayoutMessage {
        pub payout_id: String,
        pub attempt: i64,
        pub lease: i64,
    }
}

/// What the payment of payouts did, for the cron's log and the counters.
#[derive(Debug, Default, Serialize)]
pub struct Tally {
    pub paid: usize,
    pub failed: usize,
    /// Looked up by `transfer_group` and found paid.
    pub reconciled: usize,
    /// Left in flight (outcome unknown): reconciled after the delay.
    pub pending_retry: usize,
    /// Claims released unsent (partner no longer payable, account-wide refusal).
    pub released: usize,
    /// Stale or duplicate messages: nothing to do.
    pub stale: usize,
    /// Transfer requests sent to Stripe.
    pub transfers: usize,
    /// Payouts paused platform-wide (an account-wide Stripe refusal): why.
    pub paused: Option<String>,
}

/// Spaces an invocation's Stripe requests `STRIPE_MIN_INTERVAL_MS` apart, and its end that far
/// after its last request (so consecutive invocations of one concurrency slot stay apart too).
#[derive(Debug, Default)]
pub struct Pacer {
    last_start: Option<i64>,
}

impl Pacer {
    /// Waits until the next Stripe request may start.
    pub async fn ready(&self) {
        let wait = pace_wait_ms(self.last_start, now_ms());
        if wait > 0 {
            Delay::from(Duration::from_millis(wait as u64)).await;
        }
    }

    /// Records that a Stripe request starts now.
    pub fn started(&mut self) {
        self.last_start = Some(now_ms());
    }

    /// The end of the invocation: the interval after its last request has passed.
    pub async fn finish(&self) {
        self.ready().await;
    }
}

/// What one payment attempt left behind.
pub enum Sent {
    Paid,
    Failed,
    /// Kept in flight (outcome unknown, or a key misuse for an operator).
    InFlight,
    /// Nothing to do (stale message, claim released).
    Nothing,
    /// Refused for the whole platform (`Some(until)`: paused until then) or Stripe looks
    /// unavailable (`None`): nothing more is sent by this invocation.
    Stop(Option<i64>),
}

/// Pays payouts within one invocation's budget, pacing its Stripe requests.
pub struct Payer<'a> {
    pub state: &'a AppState,
    pub stripe: &'a Stripe,
    pub budget: &'a mut Budget,
    pub pacer: Pacer,
    pub tally: Tally,
}

/// Whether the partner may still be paid: active, payouts enabled, a Stripe account.
fn payable(q: &Queued) -> bool {
    q.payouts_enabled == 1
        && q.stripe_account_id.is_some()
        && PartnerStatus::parse(&q.partner_status) == Some(PartnerStatus::Active)
}

/// What a message asks of the payout it names, given the payout as read now.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Stale or duplicate: acknowledge.
    Nothing,
    /// Claimed, never sent, partner no longer payable (or nothing owed): release the claim.
    Release,
    /// Claimed, never sent: take the first attempt and send it.
    Send,
    /// In flight, leased by the sweep for this message: reconcile, maybe resend.
    Reconcile,
}

pub fn action(m: &PayoutMessage, q: Option<&Queued>) -> Action {
    let Some(q) = q else { return Action::Nothing };
    if q.status != PayoutStatus::Processing {
        return Action::Nothing;
    }
    if q.transfer_attempt == 0 {
        return if payable(q) && q.amount > 0 { Action::Send } else { Action::Release };
    }
    if m.attempt >= 1 && q.transfer_attempt == m.attempt && q.updated_at == m.lease {
        Action::Reconcile
    } else {
        Action::Nothing
    }
}

impl Action {
    /// Subrequests the action may make at worst (an account-wide refusal adds the pause write).
    pub fn worst_cost(&self) -> usize {
        match self {
            Action::Nothing => 0,
            Action::Release => RELEASE_COST,
            Action::Send => SEND_COST + PAUSE_COST,
            Action::Reconcile => RECONCILE_COST + PAUSE_COST,
        }
    }
}

impl Payer<'_> {
    /// Takes `n` subrequests from the budget before making them. The callers check the worst
    /// case first, so this failing is a bug: nothing is called and the message is retried.
    fn spend(&mut self, n: usize) -> ApiResult<()> {
        if self.budget.take(n) {
            Ok(())
        } else {
            Err(ApiError::Internal("payout subrequest budget exhausted".into()))
        }
    }

    /// Carries out `action` for the payout `q` (as read). The caller checked that
    /// `action.worst_cost()` fits the budget.
    pub async fn run(&mut self, action: Action, q: &Queued, now: i64) -> ApiResult<Sent> {
        let mut p = payouts::InFlight {
            id: q.id.clone(),
            program_id: q.program_id.clone(),
            partner_id: q.partner_id.clone(),
            amount: q.amount,
            currency: q.currency.clone(),
            stripe_account_id: q.stripe_account_id.clone(),
            transfer_attempt: q.transfer_attempt,
        };
        match action {
            Action::Nothing => {
                self.tally.stale += 1;
                Ok(Sent::Nothing)
            }
            Action::Release => {
                self.spend(1)?;
                if payouts::release_untaken(&self.state.db, &q.id, now.max(now_ms())).await? {
                    self.tally.released += 1;
                } else {
                    self.tally.stale += 1;
                }
                Ok(Sent::Nothing)
            }
            Action::Send => {
                // Wait for the pace first: the take's clock is the attempt's lease, and the
                // transfer follows it at once.
                self.pacer.ready().await;
                self.spend(1)?;
                if !payouts::take(&self.state.db, &q.id, now.max(now_ms())).await? {
                    self.tally.stale += 1; // another delivery took it
                    return Ok(Sent::Nothing);
                }
                p.transfer_attempt = 1;
                let sent = self.send(&p, true, now).await?;
                Ok(self.count(sent))
            }
            Action::Reconcile => {
                let sent = self.reconcile(&mut p, now).await?;
                Ok(self.count(sent))
            }
        }
    }

    /// Pays `work` in order (each message's payout as read in `rows`) while the budget allows its
    /// worst case; stops at an account-wide refusal or Stripe looking unavailable. Answers true
    /// when the budget left some for later.
    pub async fn run_all(&mut self, work: &[PayoutMessage], rows: &[Queued], now: i64) -> ApiResult<bool> {
        for m in work {
            let Some(q) = rows.iter().find(|q| q.id == m.payout_id) else { continue };
            let act = action(m, Some(q));
            if !self.budget.allows(act.worst_cost()) {
                return Ok(true);
            }
            if let Sent::Stop(_) = self.run(act, q, now).await? {
                break;
            }
        }
        Ok(false)
    }

    fn count(&mut self, sent: Sent) -> Sent {
        match sent {
            Sent::Paid => self.tally.paid += 1,
            Sent::Failed => self.tally.failed += 1,
            Sent::InFlight => self.tally.pending_retry += 1,
            Sent::Nothing | Sent::Stop(_) => {}
        }
        sent
    }

    /// Sends attempt `p.transfer_attempt` of a payout this invocation just took (or claimed for
    /// a resend) and records what Stripe answered. `fresh`: its first attempt, so a definite
    /// refusal can simply release its claim.
    async fn send(&mut self, p: &payouts::InFlight, fresh: bool, now: i64) -> ApiResult<Sent> {
        let Some(dest) = p.stripe_account_id.as_deref() else {
            self.spend(1)?;
            let now = now.max(now_ms());
            payouts::mark_failed(&self.state.db, &p.id, "partner has no Stripe account", "no_stripe_account", now)
                .await?;
            return Ok(Sent::Failed);
        };
        self.pacer.ready().await;
        self.spend(1)?;
        self.pacer.started();
        self.tally.transfers += 1;
        metrics::add(Counter::transfers_sent, 1);
        let answer = self
            .stripe
            .transfer(&p.id, p.transfer_attempt, p.amount, &p.currency, dest, &p.program_id, &p.partner_id)
            .await;
        // Every write of an attempt carries the clock of the attempt, not of the invocation's
        // start: a payout's `updated_at` is the lease reconciliation waits out.
        let now = now.max(now_ms());
        let db = &self.state.db;
        let refused = match answer {
            Ok(t) => {
                self.spend(1)?;
                payouts::mark_paid(db, &p.id, &t.id, now).await?;
                return Ok(Sent::Paid);
            }
            Err(r) => r,
        };
        match classify(&refused.refusal) {
            Verdict::Unknown { stop_run } => {
                // The transfer may exist: the sweep looks it up before anything is resent.
                self.spend(1)?;
                payouts::note_attempt(db, &p.id, &refused.to_string(), now).await?;
                Ok(if stop_run { Sent::Stop(None) } else { Sent::InFlight })
            }
            Verdict::KeyMisuse => {
                worker::console_error!("payout {}: idempotency key misuse: {refused}", p.id);
                self.spend(1)?;
                payouts::note_attempt(db, &p.id, &refused.to_string(), now).await?;
                Ok(Sent::InFlight)
            }
            Verdict::AccountWide { cause, resume_after_ms } => {
                // Nothing was created: the money stays owed and nobody fails.
                self.spend(1)?;
                if fresh {
                    payouts::release_unsent(db, &p.id, now).await?;
                    self.tally.released += 1;
                } else {
                    payouts::note_attempt(db, &p.id, &refused.to_string(), now).await?;
                }
                let until = self.pause(cause, &refused.message, resume_after_ms, now).await?;
                Ok(Sent::Stop(Some(until)))
            }
            Verdict::Partner { reason } => {
                self.spend(1)?;
                payouts::mark_failed(db, &p.id, &refused.to_string(), &reason, now).await?;
                Ok(Sent::Failed)
            }
        }
    }

    /// Pauses every payout after an account-wide refusal, at most for the deployment's
    /// maximum. Answers until when.
    async fn pause(&mut self, cause: AccountCause, message: &str, resume_after_ms: i64, now: i64) -> ApiResult<i64> {
        let until = now + resume_after_ms.min(self.state.config.pause_max_ms);
        self.spend(PAUSE_COST)?;
        payouts::set_pause(&self.state.db, cause.as_str(), message, until, now).await?;
        self.tally.paused = Some(cause.as_str().to_string());
        Ok(until)
    }

    /// A payout left in flight: look its transfer up by `transfer_group` first; resend (under
    /// the next attempt's key, claimed so only one invocation sends) only when Stripe has none.
    async fn reconcile(&mut self, p: &mut payouts::InFlight, now: i64) -> ApiResult<Sent> {
        self.pacer.ready().await;
        self.spend(1)?;
        self.pacer.started();
        let found = self.stripe.transfers_of(&p.id).await;
        let now = now.max(now_ms());
        let found = match found {
            Ok(list) => list,
            Err(refused) => {
                return Ok(match classify(&refused.refusal) {
                    Verdict::AccountWide { cause, resume_after_ms } => {
                        Sent::Stop(Some(self.pause(cause, &refused.message, resume_after_ms, now).await?))
                    }
                    Verdict::Unknown { stop_run: true } => Sent::Stop(None),
                    _ => Sent::InFlight,
                })
            }
        };
        let dest = p.stripe_account_id.as_deref().unwrap_or_default();
        if let Some(t) = found
            .iter()
            .find(|t| transfer_matches((dest, p.amount, &p.currency), t.destination.as_deref(), t.amount, &t.currency))
        {
            self.spend(1)?;
            payouts::mark_paid(&self.state.db, &p.id, &t.id, now).await?;
            self.tally.reconciled += 1;
            return Ok(Sent::Paid);
        }
        if !found.is_empty() {
            // A transfer in this payout's group that is not this payout's: never pay on top of it.
            worker::console_error!("payout {}: transfer group holds a transfer that does not match", p.id);
            return Ok(Sent::InFlight);
        }
        // The resend claim's clock is its attempt's lease: take it right before the transfer.
        self.pacer.ready().await;
        self.spend(1)?;
        if !payouts::claim_resend(&self.state.db, &p.id, p.transfer_attempt, now.max(now_ms())).await? {
            return Ok(Sent::Nothing); // another invocation is resending it
        }
        p.transfer_attempt += 1;
        self.send(p, false, now).await
    }
}

/// Sends a payout an approval just made `processing` (transfer attempt 0, `m`) through the
/// normal path: one `PAYOUTS` message. A send that fails, or a deployment without the queue,
/// leaves it claimed: the cron's sweep sends it (itself, without the queue) after the delay.
pub async fn dispatch(state: &AppState, m: PayoutMessage) {
    let sent = match state.payouts_queue() {
        Ok(queue) => queue.send_batch(vec![m]).await,
        Err(e) => Err(e),
    };
    match sent {
        Ok(()) => metrics::add(Counter::payouts_enqueued, 1),
        Err(e) => worker::console_error!("payout approval: not enqueued (the cron's sweep sends it): {e}"),
    }
}

/// Seconds to wait before retrying messages held by a pause (`Some(until)`: until it ends) or
/// by a missing Stripe configuration (`None`: the reconciliation delay).
fn stop_delay_seconds(state: &AppState, until: Option<i64>, now: i64) -> u32 {
    let ms = match until {
        Some(until) => until - now,
        None => state.config.reconcile_after_ms,
    };
    (ms.div_euclid(1000) + 1).clamp(1, MAX_RETRY_DELAY_SECONDS) as u32
}

fn retry_later(m: &worker::RawMessage, seconds: u32) {
    m.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(seconds).build());
}

/// The payouts queue's consumer: pays each message's payout within this invocation's budget.
pub async fn consume(state: &AppState, batch: &MessageBatch<serde_json::Value>, now: i64) -> ApiResult<()> {
    metrics::add(Counter::payout_batches, 1);
    let mut budget = Budget::new(state.config.subrequest_budget);
    let result = consume_within(state, batch, &mut budget, now).await;
    metrics::max(Counter::max_invocation_subrequests, budget.spent() as u64);
    result
}

async fn consume_within(
    state: &AppState,
    batch: &MessageBatch<serde_json::Value>,
    budget: &mut Budget,
    now: i64,
) -> ApiResult<()> {
    let all = batch.raw_iter();
    metrics::add(Counter::payout_messages, all.len() as u64);
    let mut messages = Vec::with_capacity(all.len());
    for m in all {
        // Read through its JSON text: one JSON reader in the wasm, not a second one for JS objects.
        let text = js_sys::JSON::stringify(&m.body()).ok().and_then(|s| s.as_string()).unwrap_or_default();
        match refport_core::wire::from_text::<PayoutMessage>(text.as_bytes()) {
            Ok(body) => messages.push((m, body)),
            Err(e) => {
                // Never retried: no delivery will make it readable.
                worker::console_error!("payouts queue: unreadable message {}: {e}", m.id());
                m.ack();
                metrics::add(Counter::payout_messages_acked, 1);
            }
        }
    }
    if messages.is_empty() {
        return Ok(());
    }
    let retry_from = |from: usize, seconds: u32| {
        for (m, _) in &messages[from..] {
            retry_later(m, seconds);
        }
        metrics::add(Counter::payout_messages_retried, (messages.len() - from) as u64);
    };
    let stripe = match Stripe::from_state(state) {
        Ok(s) => s,
        Err(e) => {
            worker::console_error!("payouts queue: {e}: retried later");
            retry_from(0, stop_delay_seconds(state, None, now));
            return Ok(());
        }
    };
    if !budget.take(CONSUMER_FIXED) {
        retry_from(0, BUDGET_RETRY_SECONDS);
        return Ok(());
    }
    let ids: Vec<String> = messages.iter().map(|(_, b)| b.payout_id.clone()).collect();
    let (pause, rows) = match payouts::load_queued(&state.db, &ids).await {
        Ok(loaded) => loaded,
        Err(e) => {
            worker::console_error!("payouts queue: loading the batch: {e:?}");
            retry_from(0, BUDGET_RETRY_SECONDS);
            return Ok(());
        }
    };
    if let Some(p) = pause.filter(|p| p.until_ms > now) {
        retry_from(0, stop_delay_seconds(state, Some(p.until_ms), now));
        return Ok(());
    }
    let by_id: std::collections::HashMap<&str, &Queued> = rows.iter().map(|q| (q.id.as_str(), q)).collect();
    let mut payer = Payer { state, stripe: &stripe, budget, pacer: Pacer::default(), tally: Tally::default() };
    for (i, (m, body)) in messages.iter().enumerate() {
        let q = by_id.get(body.payout_id.as_str()).copied();
        let action = action(body, q);
        if !payer.budget.allows(action.worst_cost()) {
            retry_from(i, BUDGET_RETRY_SECONDS);
            break;
        }
        let sent = match q {
            Some(q) => payer.run(action, q, now).await,
            None => {
                payer.tally.stale += 1;
                Ok(Sent::Nothing)
            }
        };
        match sent {
            Ok(Sent::Stop(Some(until))) => {
                // Paused: the rest comes back when the pause ends.
                m.ack();
                metrics::add(Counter::payout_messages_acked, 1);
                retry_from(i + 1, stop_delay_seconds(state, Some(until), now_ms()));
                break;
            }
            Ok(Sent::Stop(None)) => {
                // Stripe looks unavailable: nothing more is sent now. The rest is left to the
                // sweep (claims untouched since the claim, transfers in flight), which enqueues
                // it again once the reconciliation delay has passed.
                for (m, _) in &messages[i..] {
                    m.ack();
                }
                metrics::add(Counter::payout_messages_acked, (messages.len() - i) as u64);
                break;
            }
            Ok(_) => {
                m.ack();
                metrics::add(Counter::payout_messages_acked, 1);
            }
            Err(e) => {
                // D1 or the budget failed mid-payout: whatever was recorded stands, the rest
                // (this one included: a taken payout is swept, a fresh one taken again) later.
                worker::console_error!("payouts queue: payout {}: {e:?}", body.payout_id);
                retry_from(i, BUDGET_RETRY_SECONDS);
                break;
            }
        }
    }
    payer.pacer.finish().await;
    Ok(())
}
