//! Who gets paid, and when.
//!
//! A program has a payout [`Schedule`] (daily, weekly on an ISO weekday, or monthly on a day
//! 1..=28, all in UTC). On a due day every cron run pays whatever is then due: a partner with
//! payouts enabled (Stripe Connect account able to receive transfers), still active, whose
//! approved balance net of clawbacks (clawbacks are negative approved commissions) reaches the
//! program's minimum payout threshold. A net balance `<= 0` is never paid, even with a minimum
//! of 0. Several cron runs on the same due day are fine: a run only pays what is still unpaid
//! (the shell claims commissions atomically, then re-checks the claimed sum with
//! [`claim_matches`]).
//!
//! # Fan-out: who pays, and how many subrequests each invocation makes
//!
//! A Worker invocation may make a bounded number of subrequests: [`SUBREQUESTS_FREE`] = 50 on
//! the free plan, [`SUBREQUESTS_PAID`] = 1000 on the paid plan (var `WORKERS_PLAN`). D1 queries
//! and batches, Stripe `fetch`es and queue sends all count. Every invocation of the payout path
//! carries an explicit [`Budget`] of its plan's size: each D1 call, Stripe request and queue
//! send draws from it *before* it is made, and work whose worst case no longer fits is left
//! for later (a consumer retries the rest of its batch with a delay; the cron leaves it to the
//! next run). What an invocation spent is what the isolate counters report.
//!
//! **The cron decides and claims; one queue message per payout pays.** On a due day the cron
//! claims what is payable in bulk: one atomic D1 batch creates up to [`CLAIM_CHUNK_MAX`]
//! `processing` payouts (transfer attempt 0: claimed, never sent) and claims their
//! commissions, then it enqueues one `PAYOUTS` message per payout (a `send_batch` of up to
//! [`QUEUE_SEND_BATCH_MAX`] messages is one subrequest). A partner with a payout `processing`
//! is never a candidate again (unique index `payouts_one_processing`), so nobody is enqueued
//! run after run while a message is pending. A consumer takes each payout's first attempt with
//! a conditional UPDATE (attempt 0 → 1) right before its transfer: a message delivered twice
//! sends once. A claimed payout whose message was lost, and a transfer of unknown outcome, are
//! swept by the cron once untouched for the reconciliation delay: leased (their `updated_at`
//! moved to now, so the next run skips them), then enqueued again (reconcile by
//! `transfer_group` before any resend).
//!
//! | cron invocation (queue bound)                    | subrequests |
//! |--------------------------------------------------|-------------|
//! | approvals `UPDATE`, link-cache jobs              | 1 + up to [`LINK_CACHE_MAX_SUBREQUESTS`] |
//! | payout pause, sweep lease, due programs          | [`CRON_PAYOUT_FIXED`] = 3 |
//! | sweep: re-enqueue up to [`SWEEP_MAX`] payouts    | 1 per 100 |
//! | each claim chunk of up to [`CLAIM_CHUNK_MAX`] = 500 | 1 claim batch + 1 send per 100 = 6 |
//! | webhook deliveries (what is left, at least [`CRON_WEBHOOK_FLOOR`]) | 1 + 3 each |
//!
//! Free plan: 50 − 2 − 7 (webhook floor) = 41 for payouts, 41 − 3 = 38 → 6 chunks of 500 and
//! one of 100: 3,100 payouts claimed and enqueued per run (2,700 while a sweep re-enqueues
//! 500), so 10,000 payable partners are all enqueued by the 4th run, 45 minutes into the due
//! day (the cron runs every 15 minutes). Paid plan: 1000 − 9 − 3 = 988 → 164 chunks of 500,
//! 82,000 per run: 10,000 partners in one run.
//!
//! | consumer invocation (a batch of [`PAYOUT_BATCH_SIZE`] = 10 messages) | subrequests |
//! |-----------------------------------------------|-------------|
//! | pause + payouts of the batch (one D1 batch)   | [`CONSUMER_FIXED`] = 1 |
//! | a fresh payout: take, transfer, record        | [`SEND_COST`] = 3 |
//! | a payout in flight: lookup, resend claim, transfer, record | [`RECONCILE_COST`] = 4 |
//! | an account-wide refusal: the pause write (once: it ends the batch) | [`PAUSE_COST`] = 1 |
//!
//! Worst case 1 + 9 × 4 + (4 + 1) = 42 ≤ 50 (checked at compile time below): a whole batch
//! always fits the free plan, and the budget check only bites if `max_batch_size` is raised.
//!
//! **Stripe's rate limit** (100 write requests per second in live mode, 25 in test mode, and
//! as many reads). At most [`PAYOUT_CONSUMERS`] = 10 consumer invocations run at once
//! (`max_concurrency` in wrangler.toml). Each spaces its Stripe requests (reads included)
//! [`STRIPE_MIN_INTERVAL_MS`] = 200 ms apart, and after its last request waits out that
//! interval before returning, so the invocations that follow one another in a concurrency slot
//! also stay 200 ms apart: any one-second window sees at most 5 requests per slot, 10 × 5 = 50
//! from all consumers; the cron sends none while the queue is bound (without it, it pays itself,
//! paced the same: 5 more). 55 ≤ 75, three quarters of the limit, leaves room for onboarding and
//! webhook lookups. A 429 or `rate_limit` refusal still pauses every payout ([`crate::transfer`]).
//! Throughput: 50 transfers/s, so 10,000 payouts take about 200 s of consumer time, paced.
//!
//! Approvals are one `UPDATE … WHERE id IN (SELECT … LIMIT ?)` statement bounded by
//! [`MAX_APPROVALS_PER_RUN`], so a single statement never touches an unbounded number of rows
//! (D1 per-query time limit).

use serde::Serialize;

use crate::error::Invalid;
use crate::time::weekday_and_day;

/// Subrequests per invocation on the Workers Free plan (D1 queries, `fetch`es, queue sends).
pub const SUBREQUESTS_FREE: usize = 50;
/// Subrequests per invocation on the Workers Paid plan.
pub const SUBREQUESTS_PAID: usize = 1000;

/// Messages one queue `send_batch` may carry (the Queues limit); it is one subrequest.
pub const QUEUE_SEND_BATCH_MAX: usize = 100;
/// `max_batch_size` of the payouts consumer (wrangler.toml).
pub const PAYOUT_BATCH_SIZE: usize = 10;
/// `max_concurrency` of the payouts consumer (wrangler.toml): consumer invocations at once.
pub const PAYOUT_CONSUMERS: usize = 10;

/// Payouts one claim batch may create: one D1 batch (insert, claim, sum) over at most this
/// many partners keeps each statement far inside D1's per-query limits.
pub const CLAIM_CHUNK_MAX: usize = 500;
/// Payouts the cron re-enqueues per run from the sweep (lost messages, unknown outcomes).
pub const SWEEP_MAX: usize = 500;
/// Payouts the cron sweeps and pays itself per run when no queue is bound.
pub const DIRECT_SWEEP_MAX: usize = 5;
/// New payouts the cron claims and pays itself per run when no queue is bound.
pub const DIRECT_PAYOUTS_MAX: usize = 10;

/// Cron, payout path, regardless of volume: the pause read, the sweep lease (one `UPDATE …
/// RETURNING`), the due programs query.
pub const CRON_PAYOUT_FIXED: usize = 3;
/// The cron's link-cache step at most (its job list, then a page read and an update for each
/// of at most 5 jobs; its KV writes count against KV's own limit).
pub const LINK_CACHE_MAX_SUBREQUESTS: usize = 11;
/// What the cron's payout path leaves for webhook deliveries: the due query and two
/// deliveries (lease, POST, record). Deliveries get whatever is left, up to their own bound.
pub const CRON_WEBHOOK_FLOOR: usize = 1 + 2 * 3;

/// Consumer: the pause row and the batch's payouts, read in one D1 batch.
pub const CONSUMER_FIXED: usize = 1;
/// A fresh payout: the take (attempt 0 → 1), the transfer, the D1 batch recording it.
pub const SEND_COST: usize = 3;
/// A payout in flight: the `transfer_group` lookup, the resend claim, the transfer, the record.
pub const RECONCILE_COST: usize = 4;
/// The pause write after an account-wide refusal; at most once per invocation (it stops it).
pub const PAUSE_COST: usize = 1;
/// Releasing a claim that will not be sent (partner no longer payable): one D1 batch.
pub const RELEASE_COST: usize = 1;

/// Stripe's live-mode rate limit, write requests per second (reads have their own, equal one).
pub const STRIPE_LIVE_REQUESTS_PER_SECOND: usize = 100;
/// Stripe requests one invocation starts per second at most (reads and writes alike).
pub const STRIPE_REQUESTS_PER_SECOND_PER_INVOCATION: usize = 5;
/// The spacing that rate implies between two Stripe requests of one invocation (and between
/// an invocation's last request and its end).
pub const STRIPE_MIN_INTERVAL_MS: i64 = 1000 / STRIPE_REQUESTS_PER_SECOND_PER_INVOCATION as i64;

/// Pending commissions moved to approved per cron invocation. This is one bounded D1 `UPDATE`
/// (one subrequest); the bound keeps the statement well within D1's per-query limits, and a
/// larger backlog is drained by the next runs.
pub const MAX_APPROVALS_PER_RUN: usize = 500;

/// Programs with owed balances read per run to decide which are due (one query).
pub const MAX_PROGRAMS_PER_RUN: usize = 500;

/// Most Stripe requests all payout invocations together start in any one-second window: each
/// consumer slot and the cron at most [`STRIPE_REQUESTS_PER_SECOND_PER_INVOCATION`].
pub const STRIPE_PEAK_REQUESTS_PER_SECOND: usize = (PAYOUT_CONSUMERS + 1) * STRIPE_REQUESTS_PER_SECOND_PER_INVOCATION;

// Pacing: 11 × 5 = 55 requests/s at most, under three quarters of Stripe's live limit.
const _: () = assert!(STRIPE_PEAK_REQUESTS_PER_SECOND * 4 <= STRIPE_LIVE_REQUESTS_PER_SECOND * 3);
const _: () = assert!(STRIPE_MIN_INTERVAL_MS * STRIPE_REQUESTS_PER_SECOND_PER_INVOCATION as i64 >= 1000);
// A full batch of the costliest messages, one of them pausing, fits the free plan: 42 ≤ 50.
const _: () = assert!(
    CONSUMER_FIXED + (PAYOUT_BATCH_SIZE - 1) * RECONCILE_COST + RECONCILE_COST + PAUSE_COST <= SUBREQUESTS_FREE
);
// The free-plan cron always has room for the fixed payout queries, one sweep send, one full
// claim chunk and the webhook floor: 1 + 11 + 3 + 1 + 6 + 7 = 29 ≤ 50.
const _: () = assert!(
    1 + LINK_CACHE_MAX_SUBREQUESTS + CRON_PAYOUT_FIXED + 1 + chunk_cost(CLAIM_CHUNK_MAX) + CRON_WEBHOOK_FLOOR
        <= SUBREQUESTS_FREE
);
// Without a queue the free-plan cron pays itself: even with every link-cache job and 5 payouts
// in flight at their worst it still starts a new payout (1 + 11 + 3 + 20 + 1 + 3 + 1 + 7 = 47);
// with nothing else to do it starts 10, as before the fan-out (1 + 1 + 3 + 1 + 30 + 1 + 7 = 44).
const _: () = assert!(
    1 + LINK_CACHE_MAX_SUBREQUESTS
        + CRON_PAYOUT_FIXED
        + DIRECT_SWEEP_MAX * RECONCILE_COST
        + 1
        + SEND_COST
        + PAUSE_COST
        + CRON_WEBHOOK_FLOOR
        <= SUBREQUESTS_FREE
);
const _: () = assert!(
    1 + 1 + CRON_PAYOUT_FIXED + 1 + DIRECT_PAYOUTS_MAX * SEND_COST + PAUSE_COST + CRON_WEBHOOK_FLOOR
        <= SUBREQUESTS_FREE
);

/// Queue sends (subrequests) that enqueue `messages` messages.
pub const fn sends_for(messages: usize) -> usize {
    messages.div_ceil(QUEUE_SEND_BATCH_MAX)
}

/// Subrequests of a claim chunk of `n` payouts: the claim batch and the sends enqueueing them.
pub const fn chunk_cost(n: usize) -> usize {
    1 + sends_for(n)
}

/// The largest claim chunk whose claim batch and sends fit in `available` subrequests (0 when
/// not even one payout fits).
pub fn claim_chunk(available: usize) -> usize {
    if available < 2 {
        return 0;
    }
    CLAIM_CHUNK_MAX.min((available - 1) * QUEUE_SEND_BATCH_MAX)
}

/// Milliseconds to wait before the next Stripe request of an invocation whose previous one
/// started at `last_start` (`None`: none yet), so that requests stay
/// [`STRIPE_MIN_INTERVAL_MS`] apart.
pub fn pace_wait_ms(last_start: Option<i64>, now: i64) -> i64 {
    match last_start {
        Some(t) => (t.saturating_add(STRIPE_MIN_INTERVAL_MS).saturating_sub(now)).clamp(0, STRIPE_MIN_INTERVAL_MS),
        None => 0,
    }
}

/// An invocation's subrequests: every D1 call or batch, Stripe request and queue send of the
/// payout path is taken from it before it is made. `spent` is what was actually made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    limit: usize,
    spent: usize,
}

impl Budget {
    pub const fn new(limit: usize) -> Budget {
        Budget { limit, spent: 0 }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn spent(&self) -> usize {
        self.spent
    }

    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.spent)
    }

    /// Whether `n` more subrequests fit.
    pub fn allows(&self, n: usize) -> bool {
        self.remaining() >= n
    }

    /// Takes `n` subrequests if they fit; false (and nothing taken) otherwise.
    pub fn take(&mut self, n: usize) -> bool {
        if !self.allows(n) {
            return false;
        }
        self.spent += n;
        true
    }

    /// Records `n` subrequests already made by a step that bounds itself (its own limit was
    /// derived from [`Budget::remaining`]); may exceed the limit only if that step overran.
    pub fn charge(&mut self, n: usize) {
        self.spent = self.spent.saturating_add(n);
    }

    /// A budget for one part of the invocation: what is left, keeping `keep` for later parts.
    /// Its spending is added back with [`Budget::absorb`].
    pub fn share(&self, keep: usize) -> Budget {
        Budget::new(self.remaining().saturating_sub(keep))
    }

    /// Adds what a [`Budget::share`] spent.
    pub fn absorb(&mut self, part: &Budget) {
        self.spent += part.spent;
    }
}

/// A payout's status: `processing` (claimed, transfer sent or about to be), then `paid` or
/// `failed` (its commissions released). A program in [`PayoutMode::Review`] has its payouts
/// prepared as `awaiting_approval` (commissions claimed, nothing sent): approving moves one to
/// `processing` (then paid like any other), canceling to `canceled` (commissions released).
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PayoutStatus {
    Processing,
    Paid,
    Failed,
    AwaitingApproval,
    Canceled,
}

impl PayoutStatus {
    pub const ALL: [PayoutStatus; 5] = [
        PayoutStatus::Processing,
        PayoutStatus::Paid,
        PayoutStatus::Failed,
        PayoutStatus::AwaitingApproval,
        PayoutStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PayoutStatus::Processing => "processing",
            PayoutStatus::Paid => "paid",
            PayoutStatus::Failed => "failed",
            PayoutStatus::AwaitingApproval => "awaiting_approval",
            PayoutStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<PayoutStatus> {
        PayoutStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The status a merchant's review decision moves a payout to: only a payout
    /// `awaiting_approval` can be approved (to `processing`) or canceled (to `canceled`).
    pub fn review(self, approve: bool) -> Option<PayoutStatus> {
        match (self, approve) {
            (PayoutStatus::AwaitingApproval, true) => Some(PayoutStatus::Processing),
            (PayoutStatus::AwaitingApproval, false) => Some(PayoutStatus::Canceled),
            _ => None,
        }
    }
}

/// How a program's due payouts leave: `automatic` (sent by the cron on the due day, the default)
/// or `review` (prepared as `awaiting_approval` and sent when the merchant approves each one).
/// Parsed, never validated later: any other value fails deserialization with a message naming
/// the field (a 400 from the API).
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PayoutMode {
    #[default]
    Automatic,
    Review,
}

/// Why a `payout_mode` was refused.
pub const PAYOUT_MODE_REFUSED: &str = "payout_mode must be \"automatic\" or \"review\"";

impl PayoutMode {
    pub const ALL: [PayoutMode; 2] = [PayoutMode::Automatic, PayoutMode::Review];

    pub fn as_str(self) -> &'static str {
        match self {
            PayoutMode::Automatic => "automatic",
            PayoutMode::Review => "review",
        }
    }

    pub fn parse(s: &str) -> Option<PayoutMode> {
        PayoutMode::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The status the cron gives a payout it prepares on a due day.
    pub fn claimed_status(self) -> PayoutStatus {
        match self {
            PayoutMode::Automatic => PayoutStatus::Processing,
            PayoutMode::Review => PayoutStatus::AwaitingApproval,
        }
    }
}

/// A program's payout schedule, in UTC. JSON: `{"every":"day"}`,
/// `{"every":"week","weekday":1}` (ISO weekday, 1 = Monday .. 7 = Sunday) or
/// `{"every":"month","day":1}` (1..=28, so every month has that day).
///
/// Deserialization rejects wrong shapes (unknown `every`, missing or extra fields); ranges are
/// checked by [`Schedule::validate`]. Extra fields are refused, `{"every":"day","x":1}` too.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(tag = "every", rename_all = "snake_case")]
pub enum Schedule {
    Day,
    Week { weekday: u8 },
    Month { day: u8 },
}

impl crate::wire::FromJson for PayoutMode {
    fn from_json(v: crate::wire::Value) -> Result<Self, crate::wire::Error> {
        use serde::de::Error as _;
        v.as_str().and_then(PayoutMode::parse).ok_or_else(|| crate::wire::Error::custom(PAYOUT_MODE_REFUSED))
    }
}

/// Schedule's variants, by their `every`, with their one field (if any).
const SCHEDULES: [(&str, &[&str]); 3] = [("day", &[]), ("week", &["weekday"]), ("month", &["day"])];

impl crate::wire::FromJson for Schedule {
    /// Internally tagged on `every`, each variant's fields and nothing else
    /// (`{"every":"day","x":1}` is refused).
    fn from_json(v: crate::wire::Value) -> Result<Self, crate::wire::Error> {
        use crate::wire::{fields, object, variant, Error, Value};
        use serde::de::Error as _;
        const EXPECTED: &str = "internally tagged enum Schedule";
        let mut m = object(v, EXPECTED)?;
        let tag = m.remove("every").ok_or_else(|| Error::missing_field("every"))?;
        let i = variant(tag, &SCHEDULES.map(|(name, _)| name))?;
        let mut o = fields(Value::Object(m), EXPECTED, SCHEDULES[i].1, true)?;
        Ok(match i {
            0 => Schedule::Day,
            1 => Schedule::Week { weekday: o.take("weekday")? },
            _ => Schedule::Month { day: o.take("day")? },
        })
    }
}

impl Default for Schedule {
    /// Monthly on the 1st.
    fn default() -> Self {
        Schedule::Month { day: 1 }
    }
}

const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

impl Schedule {
    /// Field `payout_schedule`, code `invalid_schedule`: weekday must be 1..=7, day 1..=28.
    pub fn validate(&self) -> Result<(), Invalid> {
        match *self {
            Schedule::Day => Ok(()),
            Schedule::Week { weekday } if (1..=7).contains(&weekday) => Ok(()),
            Schedule::Week { .. } => {
                Err(Invalid::new("payout_schedule", "invalid_schedule", "weekday must be 1 (Monday) to 7 (Sunday)"))
            }
            Schedule::Month { day } if (1..=28).contains(&day) => Ok(()),
            Schedule::Month { .. } => Err(Invalid::new(
                "payout_schedule",
                "invalid_schedule",
                "day must be 1 to 28, so that every month has it",
            )),
        }
    }

    /// Whether `now` (UTC ms) falls on a due day. An invalid schedule is never due.
    pub fn is_due(&self, now: i64) -> bool {
        if self.validate().is_err() {
            return false;
        }
        let (weekday, day) = weekday_and_day(now);
        match *self {
            Schedule::Day => true,
            Schedule::Week { weekday: w } => u32::from(w) == weekday,
            Schedule::Month { day: d } => u32::from(d) == day,
        }
    }

    /// Human wording for dashboards: `daily`, `weekly on Monday`, `monthly on day 1`.
    pub fn describe(&self) -> String {
        match *self {
            Schedule::Day => "daily".to_string(),
            Schedule::Week { weekday } => match WEEKDAYS.get(usize::from(weekday).wrapping_sub(1)) {
                Some(name) => format!("weekly on {name}"),
                None => format!("weekly on weekday {weekday}"),
            },
            Schedule::Month { day } => format!("monthly on day {day}"),
        }
    }
}

/// A partner's payable state for one program, as the shell aggregated it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub partner_id: String,
    /// The partner's connected account can receive transfers.
    pub payouts_enabled: bool,
    /// The partner is active in the program (not suspended/removed).
    pub partner_active: bool,
    /// Sum of approved, unpaid commissions, clawbacks (negative amounts) included, minor units.
    pub net_approved: i64,
    /// Number of commissions in that sum.
    pub count: u32,
}

/// Why a candidate is not paid now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    NotDue,
    PayoutsDisabled,
    PartnerInactive,
    BelowMinimum,
    NothingOwed,
}

impl Skip {
    pub fn as_str(&self) -> &'static str {
        match self {
            Skip::NotDue => "not_due",
            Skip::PayoutsDisabled => "payouts_disabled",
            Skip::PartnerInactive => "partner_inactive",
            Skip::BelowMinimum => "below_minimum",
            Skip::NothingOwed => "nothing_owed",
        }
    }
}

/// The amount (minor units) to pay `c` now, or why not. A paid amount is always
/// `>= max(min_payout, 1)`. A negative `min_payout` is treated as 0.
pub fn plan(schedule: &Schedule, min_payout: i64, now: i64, c: &Candidate) -> Result<i64, Skip> {
    if !schedule.is_due(now) {
        return Err(Skip::NotDue);
    }
    if !c.payouts_enabled {
        return Err(Skip::PayoutsDisabled);
    }
    if !c.partner_active {
        return Err(Skip::PartnerInactive);
    }
    if c.net_approved <= 0 {
        return Err(Skip::NothingOwed);
    }
    if c.net_approved < min_payout {
        return Err(Skip::BelowMinimum);
    }
    Ok(c.net_approved)
}

/// After the shell atomically claims a partner's approved commissions for a payout, it re-sums
/// what it actually claimed: between [`plan`] and the claim a concurrent run, a refund or a
/// clawback may have changed the set. The payout goes ahead (for exactly `claimed_sum`) only if
/// this returns true; otherwise the shell releases the claim and the partner waits for a later
/// run. Same rule as [`plan`]: positive and at least `min_payout`.
pub fn claim_matches(claimed_sum: i64, min_payout: i64) -> bool {
    claimed_sum > 0 && claimed_sum >= min_payout
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::DAY_MS;
    use proptest::prelude::*;

    /// 2026-11-23T00:00:00Z, a Monday.
    const MON: i64 = 1_795_392_000_000;

    fn cand(net: i64) -> Candidate {
        Candidate { partner_id: "p_1".into(), payouts_enabled: true, partner_active: true, net_approved: net, count: 3 }
    }

    fn parse(s: &str) -> Result<Schedule, serde_json::Error> {
        crate::wire::from_str(s)
    }

    #[test]
    fn payout_mode_and_review_rules() {
        assert_eq!(PayoutMode::default(), PayoutMode::Automatic);
        assert_eq!(PayoutMode::parse("review"), Some(PayoutMode::Review));
        assert_eq!(crate::wire::from_str::<PayoutMode>(r#""automatic""#).unwrap(), PayoutMode::Automatic);
        for bad in [r#""""#, r#""Review""#, r#""manual""#, r#"" review""#, "1", "null", "{}"] {
            let e = crate::wire::from_str::<PayoutMode>(bad).unwrap_err().to_string();
            assert!(e.starts_with(PAYOUT_MODE_REFUSED), "{bad}: {e}");
        }
        assert_eq!(serde_json::to_string(&PayoutMode::Review).unwrap(), r#""review""#);
        assert_eq!(PayoutMode::Automatic.claimed_status(), PayoutStatus::Processing);
        assert_eq!(PayoutMode::Review.claimed_status(), PayoutStatus::AwaitingApproval);
        for s in PayoutStatus::ALL {
            assert_eq!(PayoutStatus::parse(s.as_str()), Some(s));
            let ok = s == PayoutStatus::AwaitingApproval;
            assert_eq!(s.review(true).is_some(), ok, "{s:?}");
            assert_eq!(s.review(false).is_some(), ok, "{s:?}");
        }
        assert_eq!(PayoutStatus::AwaitingApproval.review(true), Some(PayoutStatus::Processing));
        assert_eq!(PayoutStatus::AwaitingApproval.review(false), Some(PayoutStatus::Canceled));
        assert_eq!(serde_json::to_string(&PayoutStatus::AwaitingApproval).unwrap(), r#""awaiting_approval""#);
        assert_eq!(PayoutStatus::parse("cancelled"), None);
    }

    #[test]
    fn serde_shapes() {
        assert_eq!(parse(r#"{"every":"day"}"#).unwrap(), Schedule::Day);
        assert_eq!(parse(r#"{"every":"week","weekday":1}"#).unwrap(), Schedule::Week { weekday: 1 });
        assert_eq!(parse(r#"{"every":"month","day":28}"#).unwrap(), Schedule::Month { day: 28 });
        assert_eq!(parse(r#"{"day":5,"every":"month"}"#).unwrap(), Schedule::Month { day: 5 });
        for s in [Schedule::Day, Schedule::Week { weekday: 7 }, Schedule::Month { day: 1 }] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(parse(&json).unwrap(), s);
        }
        assert_eq!(serde_json::to_string(&Schedule::Day).unwrap(), r#"{"every":"day"}"#);
        assert_eq!(serde_json::to_string(&Schedule::Week { weekday: 1 }).unwrap(), r#"{"every":"week","weekday":1}"#);
        for bad in [
            r#"{"every":"year"}"#,
            r#"{"every":"week"}"#,
            r#"{"every":"month"}"#,
            r#"{"every":"week","weekday":"1"}"#,
            r#"{"every":"week","weekday":300}"#,
            r#"{"every":"week","weekday":-1}"#,
            r#"{"every":"week","weekday":1,"day":3}"#,
            r#"{"every":"month","day":1,"x":1}"#,
            r#"{"weekday":1}"#,
            r#"{"every":"Day"}"#,
            r#"{"every":"day","x":1}"#,
            r#"{"every":"day","weekday":1}"#,
            r#"{"every":"week","weekday":1,"every":"day"}"#,
            r#""day""#,
            r#"null"#,
            r#"{}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn default_is_monthly_on_first() {
        assert_eq!(Schedule::default(), Schedule::Month { day: 1 });
    }

    #[test]
    fn daily_always_due() {
        for i in 0..40 {
            assert!(Schedule::Day.is_due(MON + i * DAY_MS + 12_345));
        }
    }

    #[test]
    fn weekly_due_on_its_weekday_only() {
        let monday = Schedule::Week { weekday: 1 };
        assert!(monday.is_due(MON));
        assert!(monday.is_due(MON + DAY_MS - 1)); // 23:59:59.999 Monday
        assert!(!monday.is_due(MON - 1)); // Sunday 23:59:59.999
        assert!(!monday.is_due(MON + DAY_MS)); // Tuesday
        assert!(monday.is_due(MON + 7 * DAY_MS));
        let sunday = Schedule::Week { weekday: 7 };
        assert!(sunday.is_due(MON - 1));
        assert!(sunday.is_due(MON + 6 * DAY_MS));
        assert!(!sunday.is_due(MON));
        let friday = Schedule::Week { weekday: 5 };
        assert!(friday.is_due(MON + 4 * DAY_MS + 3_600_000));
        assert!(!friday.is_due(MON + 3 * DAY_MS));
    }

    #[test]
    fn monthly_due_on_its_day_only() {
        let first = Schedule::Month { day: 1 };
        let dec1 = MON + 8 * DAY_MS; // 2026-12-01
        assert!(first.is_due(dec1));
        assert!(!first.is_due(dec1 - 1));
        assert!(!first.is_due(dec1 + DAY_MS));
        let the23rd = Schedule::Month { day: 23 };
        assert!(the23rd.is_due(MON));
        assert!(!the23rd.is_due(MON + DAY_MS));
    }

    #[test]
    fn monthly_day_28_edge() {
        let d28 = Schedule::Month { day: 28 };
        // 2027-02-28 (not a leap year): the last day of February is due.
        let feb28_2027 = 1_803_772_800_000;
        assert_eq!(crate::time::rfc3339(feb28_2027), "2027-02-28T00:00:00.000Z");
        assert!(d28.is_due(feb28_2027));
        assert!(!d28.is_due(feb28_2027 + DAY_MS)); // March 1
        assert!(!d28.is_due(feb28_2027 - DAY_MS)); // Feb 27
                                                   // 2026-11-28
        assert!(d28.is_due(MON + 5 * DAY_MS));
        assert!(!d28.is_due(MON + 6 * DAY_MS)); // Nov 29
    }

    #[test]
    fn invalid_schedules_never_due() {
        assert!(!Schedule::Week { weekday: 0 }.is_due(MON));
        assert!(!Schedule::Month { day: 29 }.is_due(MON));
    }

    #[test]
    fn validation() {
        assert!(Schedule::Day.validate().is_ok());
        for w in 1..=7 {
            assert!(Schedule::Week { weekday: w }.validate().is_ok());
        }
        for d in 1..=28 {
            assert!(Schedule::Month { day: d }.validate().is_ok());
        }
        for bad in [
            Schedule::Week { weekday: 0 },
            Schedule::Week { weekday: 8 },
            Schedule::Month { day: 0 },
            Schedule::Month { day: 29 },
            Schedule::Month { day: 255 },
        ] {
            let e = bad.validate().unwrap_err();
            assert_eq!(e.field, "payout_schedule");
            assert_eq!(e.code, "invalid_schedule");
        }
    }

    #[test]
    fn describes() {
        assert_eq!(Schedule::Day.describe(), "daily");
        assert_eq!(Schedule::Week { weekday: 1 }.describe(), "weekly on Monday");
        assert_eq!(Schedule::Week { weekday: 7 }.describe(), "weekly on Sunday");
        assert_eq!(Schedule::Month { day: 1 }.describe(), "monthly on day 1");
        assert_eq!(Schedule::Week { weekday: 0 }.describe(), "weekly on weekday 0");
    }

    #[test]
    fn thresholds() {
        let s = Schedule::Day;
        assert_eq!(plan(&s, 5_000, MON, &cand(4_999)), Err(Skip::BelowMinimum));
        assert_eq!(plan(&s, 5_000, MON, &cand(5_000)), Ok(5_000));
        assert_eq!(plan(&s, 5_000, MON, &cand(5_001)), Ok(5_001));
        assert_eq!(plan(&s, 0, MON, &cand(0)), Err(Skip::NothingOwed));
        assert_eq!(plan(&s, 0, MON, &cand(1)), Ok(1));
        // clawbacks exceed approved commissions
        assert_eq!(plan(&s, 0, MON, &cand(-2_500)), Err(Skip::NothingOwed));
        assert_eq!(plan(&s, 5_000, MON, &cand(-2_500)), Err(Skip::NothingOwed));
        // negative minimum behaves like 0
        assert_eq!(plan(&s, -10, MON, &cand(0)), Err(Skip::NothingOwed));
        assert_eq!(plan(&s, -10, MON, &cand(7)), Ok(7));
    }

    #[test]
    fn not_due_disabled_inactive() {
        let weekly = Schedule::Week { weekday: 2 };
        assert_eq!(plan(&weekly, 0, MON, &cand(10_000)), Err(Skip::NotDue));
        assert_eq!(plan(&weekly, 0, MON + DAY_MS, &cand(10_000)), Ok(10_000));
        let mut c = cand(10_000);
        c.payouts_enabled = false;
        assert_eq!(plan(&Schedule::Day, 0, MON, &c), Err(Skip::PayoutsDisabled));
        let mut c = cand(10_000);
        c.partner_active = false;
        assert_eq!(plan(&Schedule::Day, 0, MON, &c), Err(Skip::PartnerInactive));
    }

    #[test]
    fn skip_codes() {
        assert_eq!(Skip::NotDue.as_str(), "not_due");
        assert_eq!(Skip::PayoutsDisabled.as_str(), "payouts_disabled");
        assert_eq!(Skip::PartnerInactive.as_str(), "partner_inactive");
        assert_eq!(Skip::BelowMinimum.as_str(), "below_minimum");
        assert_eq!(Skip::NothingOwed.as_str(), "nothing_owed");
    }

    #[test]
    fn claim_recheck() {
        assert!(claim_matches(5_000, 5_000));
        assert!(claim_matches(5_001, 5_000));
        assert!(!claim_matches(4_999, 5_000));
        assert!(!claim_matches(0, 0));
        assert!(!claim_matches(-1, 0));
        assert!(claim_matches(1, 0));
    }

    #[test]
    fn budget_takes_only_what_fits() {
        let mut b = Budget::new(SUBREQUESTS_FREE);
        assert!(b.take(3));
        assert_eq!((b.spent(), b.remaining()), (3, 47));
        assert!(!b.take(48));
        assert_eq!(b.spent(), 3, "a refused take spends nothing");
        assert!(b.take(47));
        assert_eq!(b.remaining(), 0);
        assert!(!b.allows(1) && b.allows(0));
        let mut cron = Budget::new(SUBREQUESTS_FREE);
        assert!(cron.take(2));
        let mut payouts = cron.share(CRON_WEBHOOK_FLOOR);
        assert_eq!(payouts.limit(), 41);
        assert!(payouts.take(41) && !payouts.take(1));
        cron.absorb(&payouts);
        assert_eq!(cron.remaining(), CRON_WEBHOOK_FLOOR);
        assert_eq!(Budget::new(5).share(9).limit(), 0);
        let mut b = Budget::new(2);
        b.charge(3);
        assert_eq!((b.spent(), b.remaining()), (3, 0), "what was made is recorded, even past the limit");
    }

    #[test]
    fn claim_chunks_and_sends() {
        assert_eq!((sends_for(0), sends_for(1), sends_for(100), sends_for(101), sends_for(500)), (0, 1, 1, 2, 5));
        assert_eq!((claim_chunk(0), claim_chunk(1), claim_chunk(2), claim_chunk(3)), (0, 0, 100, 200));
        assert_eq!((claim_chunk(6), claim_chunk(7), claim_chunk(1000)), (500, 500, 500));
        assert_eq!(chunk_cost(CLAIM_CHUNK_MAX), 6);
    }

    /// The documented arithmetic: how many payouts a free-plan cron run claims, how many runs
    /// 10,000 partners take, and what a consumer batch costs at worst.
    #[test]
    fn documented_fan_out_numbers() {
        let per_run = |plan: usize, sweep: usize| {
            let mut cron = Budget::new(plan);
            assert!(cron.take(2)); // approvals, link-cache jobs
            let mut b = cron.share(CRON_WEBHOOK_FLOOR);
            assert!(b.take(CRON_PAYOUT_FIXED + sends_for(sweep)));
            let mut claimed = 0;
            loop {
                let n = claim_chunk(b.remaining());
                if n == 0 {
                    break;
                }
                assert!(b.take(chunk_cost(n)));
                claimed += n;
            }
            claimed
        };
        assert_eq!(per_run(SUBREQUESTS_FREE, 0), 3_000 + 100);
        assert_eq!(per_run(SUBREQUESTS_FREE, SWEEP_MAX), 2_500 + 200);
        assert!(per_run(SUBREQUESTS_PAID, SWEEP_MAX) >= 10_000);
        assert_eq!(10_000usize.div_ceil(per_run(SUBREQUESTS_FREE, 0)), 4);
        let worst_batch = CONSUMER_FIXED + (PAYOUT_BATCH_SIZE - 1) * RECONCILE_COST + RECONCILE_COST + PAUSE_COST;
        assert_eq!(worst_batch, 42);
        assert_eq!(STRIPE_PEAK_REQUESTS_PER_SECOND, 55);
        assert_eq!(STRIPE_MIN_INTERVAL_MS, 200);
    }

    #[test]
    fn pacing_waits_out_the_interval() {
        assert_eq!(pace_wait_ms(None, 1_000), 0);
        assert_eq!(pace_wait_ms(Some(1_000), 1_000), 200);
        assert_eq!(pace_wait_ms(Some(1_000), 1_150), 50);
        assert_eq!(pace_wait_ms(Some(1_000), 1_200), 0);
        assert_eq!(pace_wait_ms(Some(1_000), 5_000), 0);
        // a clock that went backwards never waits more than one interval
        assert_eq!(pace_wait_ms(Some(10_000), 1_000), 200);
    }

    /// The wrangler.toml consumer is the one the arithmetic assumes.
    #[test]
    fn wrangler_consumer_matches_the_constants() {
        let value = |key| crate::wrangler_toml::consumer_value("refport-payouts", key);
        assert_eq!(value("max_batch_size"), PAYOUT_BATCH_SIZE);
        assert_eq!(value("max_concurrency"), PAYOUT_CONSUMERS);
    }

    fn any_schedule() -> impl Strategy<Value = Schedule> {
        prop_oneof![
            Just(Schedule::Day),
            any::<u8>().prop_map(|weekday| Schedule::Week { weekday }),
            any::<u8>().prop_map(|day| Schedule::Month { day }),
        ]
    }

    proptest! {
        #[test]
        fn plan_never_pays_below_floor(
            s in any_schedule(),
            min in any::<i64>(),
            now in any::<i64>(),
            net in any::<i64>(),
            enabled in any::<bool>(),
            active in any::<bool>(),
        ) {
            let c = Candidate {
                partner_id: "p".into(),
                payouts_enabled: enabled,
                partner_active: active,
                net_approved: net,
                count: 1,
            };
            if let Ok(amount) = plan(&s, min, now, &c) {
                prop_assert!(amount >= min.max(1));
                prop_assert_eq!(amount, net);
                prop_assert!(enabled && active);
                prop_assert!(s.validate().is_ok());
                prop_assert!(claim_matches(amount, min));
            }
            if !enabled {
                prop_assert!(plan(&s, min, now, &c).is_err());
            }
        }

        /// Requests paced by `pace_wait_ms` are never closer than the interval, so any
        /// one-second window holds at most the per-invocation rate.
        #[test]
        fn paced_requests_respect_the_rate(gaps in proptest::collection::vec(0i64..400, 1..60)) {
            let mut now = 0i64;
            let mut starts: Vec<i64> = Vec::new();
            for g in gaps {
                now += g; // work between requests (D1 calls, parsing)
                now += pace_wait_ms(starts.last().copied(), now);
                starts.push(now);
            }
            // the invocation's end waits out the interval after its last request
            let end = now + pace_wait_ms(starts.last().copied(), now);
            prop_assert!(end >= starts[starts.len() - 1] + STRIPE_MIN_INTERVAL_MS);
            for w in starts.windows(2) {
                prop_assert!(w[1] - w[0] >= STRIPE_MIN_INTERVAL_MS);
            }
            for (i, t) in starts.iter().enumerate() {
                let in_window = starts[i..].iter().take_while(|u| **u < t + 1000).count();
                prop_assert!(in_window <= STRIPE_REQUESTS_PER_SECOND_PER_INVOCATION);
            }
        }

        /// A claim chunk and its sends always fit what was available, and use it well.
        #[test]
        fn claim_chunk_fits(available in 0usize..5_000) {
            let n = claim_chunk(available);
            if n > 0 {
                prop_assert!(chunk_cost(n) <= available);
                prop_assert!(n <= CLAIM_CHUNK_MAX);
            }
            if available >= chunk_cost(CLAIM_CHUNK_MAX) {
                prop_assert_eq!(n, CLAIM_CHUNK_MAX);
            }
            if available >= 2 {
                prop_assert!(n >= QUEUE_SEND_BATCH_MAX.min(CLAIM_CHUNK_MAX));
            }
        }

        /// Whatever is taken, a budget never spends past its limit, and a refused take spends
        /// nothing.
        #[test]
        fn budget_never_overspends(limit in 0usize..2_000, takes in proptest::collection::vec(0usize..60, 0..100)) {
            let mut b = Budget::new(limit);
            let mut sum = 0;
            for n in takes {
                let before = b.spent();
                if b.take(n) {
                    sum += n;
                } else {
                    prop_assert_eq!(b.spent(), before);
                    prop_assert!(n > b.remaining());
                }
                prop_assert!(b.spent() <= limit);
            }
            prop_assert_eq!(b.spent(), sum);
        }

        #[test]
        fn schedule_round_trips(s in any_schedule()) {
            let json = serde_json::to_string(&s).unwrap();
            prop_assert_eq!(crate::wire::from_str::<Schedule>(&json).unwrap(), s);
            let _ = s.describe();
        }
    }
}
