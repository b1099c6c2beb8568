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
//! # Per-invocation bounds
//!
//! A cron invocation of a Cloudflare Worker may make a bounded number of subrequests: 50 on the
//! free plan, 1000 on the paid plan (Workers Standard now defaults to 10 000 on paid). D1
//! queries count as subrequests, like `fetch`es to Stripe. We design conservatively for the
//! free-plan budget of [`SUBREQUEST_BUDGET`] = 50:
//!
//! | work                                              | subrequests            |
//! |---------------------------------------------------|------------------------|
//! | fixed: approve matured commissions (one `UPDATE`), list due programs, list candidates, list retries, log | [`CRON_FIXED_SUBREQUESTS`] = 5 |
//! | each new payout: claim batch + Stripe transfer + record batch | [`SUBREQUESTS_PER_PAYOUT`] = 3 |
//! | each retry of a failed transfer: same three       | 3                      |
//!
//! 5 + 10 × 3 + 5 × 3 = 50, hence [`MAX_PAYOUTS_PER_RUN`] = 10 and [`MAX_RETRIES_PER_RUN`] = 5
//! (checked at compile time below). Whatever is left over is paid by the next run (the cron
//! runs several times on a due day, and a backlog simply carries over). Approvals are one
//! `UPDATE … WHERE id IN (SELECT … LIMIT ?)` statement bounded by [`MAX_APPROVALS_PER_RUN`], so
//! a single statement never touches an unbounded number of rows (D1 per-query time limit).

use serde::{Deserialize, Serialize};

use crate::error::Invalid;
use crate::time::weekday_and_day;

/// Subrequests one Worker invocation may make on the free plan (D1 queries included). The cron
/// is designed to stay within it even on the paid plan.
pub const SUBREQUEST_BUDGET: usize = SUBREQUESTS_FREE;

/// Subrequests per invocation on the Workers Free plan (D1 queries, `fetch`es, queue sends).
pub const SUBREQUESTS_FREE: usize = 50;
/// Subrequests per invocation on the Workers Paid plan.
pub const SUBREQUESTS_PAID: usize = 1000;

/// Subrequests of one payout: the D1 claim batch, the Stripe transfer `fetch` (with an
/// idempotency key derived from the payout id, so a retry never pays twice) and the D1 batch
/// recording the result.
pub const SUBREQUESTS_PER_PAYOUT: usize = 3;

/// Subrequests every cron run makes regardless of volume: the approval `UPDATE`, the due
/// programs query, the candidates query, the retry query and one spare (logging/metrics).
pub const CRON_FIXED_SUBREQUESTS: usize = 5;

/// New payouts started by one cron invocation. See the module docs for the budget:
/// `5 fixed + 10 × 3 + 5 × 3 = 50` subrequests, the free-plan limit.
pub const MAX_PAYOUTS_PER_RUN: usize = 10;

/// Retries of failed (or unknown-outcome) Stripe transfers per cron invocation, 3 subrequests
/// each like a new payout (the retry reuses the original idempotency key).
pub const MAX_RETRIES_PER_RUN: usize = 5;

/// Pending commissions moved to approved per cron invocation. This is one bounded D1 `UPDATE`
/// (one subrequest, counted in [`CRON_FIXED_SUBREQUESTS`]); the bound keeps the statement well
/// within D1's per-query limits, and a larger backlog is drained by the next runs.
pub const MAX_APPROVALS_PER_RUN: usize = 500;

/// Programs with owed balances read per run to decide which are due (one query).
pub const MAX_PROGRAMS_PER_RUN: usize = 500;

const _: () = assert!(
    CRON_FIXED_SUBREQUESTS + (MAX_PAYOUTS_PER_RUN + MAX_RETRIES_PER_RUN) * SUBREQUESTS_PER_PAYOUT <= SUBREQUEST_BUDGET
);

/// A payout's status: `processing` (claimed, transfer sent or about to be), then `paid` or
/// `failed` (its commissions released).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PayoutStatus {
    Processing,
    Paid,
    Failed,
}

impl PayoutStatus {
    pub const ALL: [PayoutStatus; 3] = [PayoutStatus::Processing, PayoutStatus::Paid, PayoutStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            PayoutStatus::Processing => "processing",
            PayoutStatus::Paid => "paid",
            PayoutStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<PayoutStatus> {
        PayoutStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A program's payout schedule, in UTC. JSON: `{"every":"day"}`,
/// `{"every":"week","weekday":1}` (ISO weekday, 1 = Monday .. 7 = Sunday) or
/// `{"every":"month","day":1}` (1..=28, so every month has that day).
///
/// Deserialization rejects wrong shapes (unknown `every`, missing or extra fields); ranges are
/// checked by [`Schedule::validate`]. Deserialization goes through a private strict shape because
/// serde's internally tagged *unit* variant ignores extra fields (`{"every":"day","x":1}` would
/// be accepted); an empty struct variant with `deny_unknown_fields` refuses them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(tag = "every", rename_all = "snake_case", deny_unknown_fields, from = "ScheduleRepr")]
pub enum Schedule {
    Day,
    Week { weekday: u8 },
    Month { day: u8 },
}

/// Strict wire shape of [`Schedule`] for deserialization only.
#[derive(Deserialize)]
#[serde(tag = "every", rename_all = "snake_case", deny_unknown_fields)]
enum ScheduleRepr {
    Day {},
    Week { weekday: u8 },
    Month { day: u8 },
}

impl From<ScheduleRepr> for Schedule {
    fn from(r: ScheduleRepr) -> Self {
        match r {
            ScheduleRepr::Day {} => Schedule::Day,
            ScheduleRepr::Week { weekday } => Schedule::Week { weekday },
            ScheduleRepr::Month { day } => Schedule::Month { day },
        }
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
        serde_json::from_str(s)
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
    fn run_bounds_fit_free_plan() {
        let used = CRON_FIXED_SUBREQUESTS + (MAX_PAYOUTS_PER_RUN + MAX_RETRIES_PER_RUN) * SUBREQUESTS_PER_PAYOUT;
        assert!(used <= SUBREQUEST_BUDGET);
        assert_eq!((MAX_PAYOUTS_PER_RUN, MAX_RETRIES_PER_RUN, MAX_APPROVALS_PER_RUN), (10, 5, 500));
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

        #[test]
        fn schedule_round_trips(s in any_schedule()) {
            let json = serde_json::to_string(&s).unwrap();
            prop_assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
            let _ = s.describe();
        }
    }
}
