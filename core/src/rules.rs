//! Commission rules: how much a partner earns for a lead or a sale.
//!
//! A program has one optional [`Reward`] per event kind (`lead`, `sale`), grouped in
//! [`Rewards`]. A partner may carry an override whose rewards replace the program's per kind
//! (lead and sale independently), see [`effective`]. Amounts are integer minor units of the
//! payout currency, so zero-decimal (JPY) and three-decimal (KWD) currencies need no special
//! case: a percentage is applied to minor units and rounded half to even.

use crate::error::Invalid;
use crate::money::{mul_div_half_even, MAX_AMOUNT};
use crate::time::add_months;
use serde::{Deserialize, Serialize};

/// 100 % in basis points.
pub const MAX_BPS: i64 = 10_000;
/// Longest recurring window a sale reward may have, in months.
pub const MAX_DURATION_MONTHS: u32 = 120;

/// How a reward's `amount` is read.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RewardType {
    /// `amount` is minor units of the payout currency.
    Flat,
    /// `amount` is basis points (1/100 of a percent) of the sale amount.
    Percentage,
}

/// One reward. Wire form: `{"type":"percentage","amount":2000,"duration_months":12}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Reward {
    #[serde(rename = "type")]
    pub kind: RewardType,
    /// Minor units (flat) or basis points (percentage).
    pub amount: i64,
    /// Sale rewards only: how many months after the customer's first sale later sales still
    /// earn. `None` = forever, `Some(0)` = the first sale only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_months: Option<u32>,
}

/// A program's (or a partner override's) rewards, one per event kind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rewards {
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::wire::opt_object")]
    pub lead: Option<Reward>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::wire::opt_object")]
    pub sale: Option<Reward>,
}

fn join(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_string()
    } else {
        format!("{prefix}.{rest}")
    }
}

impl Reward {
    fn validate(&self, field: &str, is_lead: bool) -> Result<(), Invalid> {
        let amount_field = join(field, "amount");
        if self.amount < 0 {
            return Err(Invalid::new(amount_field, "invalid_reward", "amount must not be negative"));
        }
        match self.kind {
            RewardType::Flat if self.amount > MAX_AMOUNT => {
                return Err(Invalid::new(
                    amount_field,
                    "invalid_reward",
                    format!("a flat amount must be at most {MAX_AMOUNT} minor units"),
                ));
            }
            RewardType::Percentage if is_lead => {
                return Err(Invalid::new(
                    join(field, "type"),
                    "invalid_reward",
                    "a lead has no sale amount: a lead reward must be flat",
                ));
            }
            RewardType::Percentage if self.amount > MAX_BPS => {
                return Err(Invalid::new(
                    amount_field,
                    "invalid_reward",
                    "a percentage is in basis points and must be at most 10000 (100%)",
                ));
            }
            _ => {}
        }
        if let Some(months) = self.duration_months {
            let f = join(field, "duration_months");
            if is_lead {
                return Err(Invalid::new(f, "invalid_reward", "duration_months applies to sale rewards only"));
            }
            if months > MAX_DURATION_MONTHS {
                return Err(Invalid::new(
                    f,
                    "invalid_reward",
                    format!("duration_months must be at most {MAX_DURATION_MONTHS}"),
                ));
            }
        }
        Ok(())
    }
}

impl Rewards {
    /// Checks both rewards. `field_prefix` is the dotted path of this object in the request
    /// body (e.g. `rewards`), used to build error fields such as `rewards.sale.amount`.
    pub fn validate(&self, field_prefix: &str) -> Result<(), Invalid> {
        if let Some(lead) = &self.lead {
            lead.validate(&join(field_prefix, "lead"), true)?;
        }
        if let Some(sale) = &self.sale {
            sale.validate(&join(field_prefix, "sale"), false)?;
        }
        Ok(())
    }
}

/// The rewards that apply to one partner: each kind present in the override replaces the
/// program's reward of that kind; absent kinds fall back to the program's.
pub fn effective(program: &Rewards, partner_override: Option<&Rewards>) -> Rewards {
    match partner_override {
        None => program.clone(),
        Some(o) => Rewards {
            lead: o.lead.clone().or_else(|| program.lead.clone()),
            sale: o.sale.clone().or_else(|| program.sale.clone()),
        },
    }
}

/// The commission for a lead, in minor units; `None` when there is no lead reward (or it is a
/// percentage, which [`Rewards::validate`] refuses since a lead has no amount).
pub fn lead_commission(rewards: &Rewards) -> Option<i64> {
    match &rewards.lead {
        Some(Reward { kind: RewardType::Flat, amount, .. }) => Some((*amount).clamp(0, MAX_AMOUNT)),
        _ => None,
    }
}

/// What a sale earns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaleDecision {
    /// A commission of this many minor units (may be 0 for a 0 % / 0 flat reward).
    Commission(i64),
    /// The rules have no sale reward.
    NoReward,
    /// The sale reward's recurring window (`duration_months`) is over for this customer.
    OutsideRecurringWindow,
}

/// The commission on a sale of `sale_amount` minor units at `sale_at`.
///
/// `first_sale_at` is the customer's first sale time; `None`, or a time not before `sale_at`,
/// means this sale is the first. Recurring window: `duration_months` `None` = every sale,
/// `Some(0)` = the first sale only, `Some(n)` = sales with `sale_at < first_sale_at + n months`
/// (calendar months, clamped to the month's end).
pub fn sale_commission(rewards: &Rewards, sale_amount: i64, first_sale_at: Option<i64>, sale_at: i64) -> SaleDecision {
    let Some(reward) = &rewards.sale else {
        return SaleDecision::NoReward;
    };
    let first = match first_sale_at {
        Some(f) if f < sale_at => f,
        _ => sale_at,
    };
    let is_first = first == sale_at;
    let eligible = match reward.duration_months {
        None => true,
        Some(0) => is_first,
        Some(n) => is_first || sale_at < add_months(first, n),
    };
    if !eligible {
        return SaleDecision::OutsideRecurringWindow;
    }
    let amount = match reward.kind {
        RewardType::Flat => reward.amount.clamp(0, MAX_AMOUNT),
        RewardType::Percentage => {
            let bps = reward.amount.clamp(0, MAX_BPS);
            mul_div_half_even(sale_amount.max(0), bps, MAX_BPS)
        }
    };
    SaleDecision::Commission(amount)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::DAY_MS;
    use proptest::prelude::*;

    fn pct(bps: i64, months: Option<u32>) -> Reward {
        Reward { kind: RewardType::Percentage, amount: bps, duration_months: months }
    }
    fn flat(amount: i64) -> Reward {
        Reward { kind: RewardType::Flat, amount, duration_months: None }
    }
    fn sale_only(r: Reward) -> Rewards {
        Rewards { lead: None, sale: Some(r) }
    }

    const JAN31_2026: i64 = 1_769_817_600_000; // 2026-01-31T00:00:00Z

    #[test]
    fn wire_format_round_trips() {
        let json = r#"{"type":"percentage","amount":2000,"duration_months":12}"#;
        let r: Reward = serde_json::from_str(json).unwrap();
        assert_eq!(r, pct(2000, Some(12)));
        assert_eq!(serde_json::to_string(&r).unwrap(), json);
        let r: Reward = serde_json::from_str(r#"{"type":"flat","amount":500}"#).unwrap();
        assert_eq!(r, flat(500));
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"type":"flat","amount":500}"#);

        let rs: Rewards = serde_json::from_str("{}").unwrap();
        assert_eq!(rs, Rewards::default());
        assert_eq!(serde_json::to_string(&rs).unwrap(), "{}");
        let rs: Rewards = serde_json::from_str(r#"{"lead":{"type":"flat","amount":100},"sale":null}"#).unwrap();
        assert_eq!(rs.lead, Some(flat(100)));
        assert_eq!(rs.sale, None);
    }

    #[test]
    fn wire_format_refuses_unknown() {
        assert!(serde_json::from_str::<Reward>(r#"{"type":"flat","amount":1,"x":1}"#).is_err());
        assert!(serde_json::from_str::<Reward>(r#"{"type":"fixed","amount":1}"#).is_err());
        assert!(serde_json::from_str::<Reward>(r#"{"type":"flat"}"#).is_err());
        assert!(serde_json::from_str::<Rewards>(r#"{"click":{"type":"flat","amount":1}}"#).is_err());
    }

    #[test]
    fn validate_accepts_good_rules() {
        let rs = Rewards { lead: Some(flat(0)), sale: Some(pct(MAX_BPS, Some(MAX_DURATION_MONTHS))) };
        assert_eq!(rs.validate("rewards"), Ok(()));
        assert_eq!(Rewards::default().validate("rewards"), Ok(()));
        assert_eq!(sale_only(flat(MAX_AMOUNT)).validate(""), Ok(()));
        assert_eq!(sale_only(pct(0, Some(0))).validate(""), Ok(()));
    }

    #[test]
    fn validate_refuses_bad_rules() {
        let cases: Vec<(Rewards, &str)> = vec![
            (sale_only(flat(-1)), "rewards.sale.amount"),
            (sale_only(flat(MAX_AMOUNT + 1)), "rewards.sale.amount"),
            (sale_only(pct(-1, None)), "rewards.sale.amount"),
            (sale_only(pct(MAX_BPS + 1, None)), "rewards.sale.amount"),
            (sale_only(pct(100, Some(MAX_DURATION_MONTHS + 1))), "rewards.sale.duration_months"),
            (Rewards { lead: Some(pct(100, None)), sale: None }, "rewards.lead.type"),
            (Rewards { lead: Some(flat(-5)), sale: None }, "rewards.lead.amount"),
            (
                Rewards { lead: Some(Reward { duration_months: Some(1), ..flat(5) }), sale: None },
                "rewards.lead.duration_months",
            ),
        ];
        for (rs, field) in cases {
            let e = rs.validate("rewards").unwrap_err();
            assert_eq!(e.field, field, "{rs:?}");
            assert_eq!(e.code, "invalid_reward");
            assert!(!e.message.is_empty());
        }
        let e = sale_only(flat(-1)).validate("").unwrap_err();
        assert_eq!(e.field, "sale.amount");
        let e = sale_only(flat(-1)).validate("partners.0.rewards").unwrap_err();
        assert_eq!(e.field, "partners.0.rewards.sale.amount");
    }

    #[test]
    fn override_replaces_per_kind() {
        let program = Rewards { lead: Some(flat(100)), sale: Some(pct(1000, None)) };
        assert_eq!(effective(&program, None), program);
        assert_eq!(effective(&program, Some(&Rewards::default())), program);
        let only_sale = sale_only(pct(3000, Some(6)));
        assert_eq!(
            effective(&program, Some(&only_sale)),
            Rewards { lead: Some(flat(100)), sale: Some(pct(3000, Some(6))) }
        );
        let only_lead = Rewards { lead: Some(flat(0)), sale: None };
        assert_eq!(effective(&program, Some(&only_lead)), Rewards { lead: Some(flat(0)), sale: Some(pct(1000, None)) });
        // An override can give a reward the program does not have.
        assert_eq!(effective(&Rewards::default(), Some(&only_sale)), only_sale);
        // The override's sale reward is used whole, duration included.
        let eff = effective(&sale_only(pct(1000, Some(12))), Some(&sale_only(flat(700))));
        assert_eq!(eff.sale, Some(flat(700)));
    }

    #[test]
    fn lead_commission_is_flat() {
        assert_eq!(lead_commission(&Rewards::default()), None);
        assert_eq!(lead_commission(&Rewards { lead: Some(flat(250)), sale: None }), Some(250));
        assert_eq!(lead_commission(&Rewards { lead: Some(pct(250, None)), sale: None }), None);
        assert_eq!(lead_commission(&sale_only(flat(250))), None);
    }

    #[test]
    fn percentage_rounds_half_even() {
        let rs = sale_only(pct(1000, None)); // 10 %
        let c = |amount| sale_commission(&rs, amount, None, 0);
        assert_eq!(c(25), SaleDecision::Commission(2)); // 2.5 -> 2
        assert_eq!(c(35), SaleDecision::Commission(4)); // 3.5 -> 4
        assert_eq!(c(45), SaleDecision::Commission(4)); // 4.5 -> 4
        assert_eq!(c(34), SaleDecision::Commission(3));
        assert_eq!(c(36), SaleDecision::Commission(4));
        assert_eq!(c(0), SaleDecision::Commission(0));
        assert_eq!(c(-100), SaleDecision::Commission(0));
        // 20 % of $49.99 = 999.8 -> 1000 cents
        assert_eq!(sale_commission(&sale_only(pct(2000, None)), 4999, None, 0), SaleDecision::Commission(1000));
        // 100 % of the max is the max
        assert_eq!(
            sale_commission(&sale_only(pct(MAX_BPS, None)), MAX_AMOUNT, None, 0),
            SaleDecision::Commission(MAX_AMOUNT)
        );
    }

    #[test]
    fn zero_and_three_decimal_currencies() {
        // JPY: 15 % of ¥1,999 = 299.85 -> ¥300; 10 % of ¥125 = 12.5 -> ¥12.
        assert_eq!(sale_commission(&sale_only(pct(1500, None)), 1999, None, 0), SaleDecision::Commission(300));
        assert_eq!(sale_commission(&sale_only(pct(1000, None)), 125, None, 0), SaleDecision::Commission(12));
        assert_eq!(sale_commission(&sale_only(pct(1000, None)), 135, None, 0), SaleDecision::Commission(14));
        // KWD: 12.5 % of 10.005 KWD (10005 fils) = 1250.625 -> 1.251 KWD.
        assert_eq!(sale_commission(&sale_only(pct(1250, None)), 10_005, None, 0), SaleDecision::Commission(1251));
        // KWD: 5 % of 0.050 KWD = 2.5 fils -> 2 fils.
        assert_eq!(sale_commission(&sale_only(pct(500, None)), 50, None, 0), SaleDecision::Commission(2));
        // Flat amounts are minor units as given: ¥500, 2.500 KWD.
        assert_eq!(sale_commission(&sale_only(flat(500)), 1, None, 0), SaleDecision::Commission(500));
        assert_eq!(sale_commission(&sale_only(flat(2500)), 0, None, 0), SaleDecision::Commission(2500));
    }

    #[test]
    fn no_sale_reward() {
        let rs = Rewards { lead: Some(flat(5)), sale: None };
        assert_eq!(sale_commission(&rs, 1000, None, 0), SaleDecision::NoReward);
    }

    #[test]
    fn recurring_forever() {
        let rs = sale_only(flat(100));
        let later = JAN31_2026 + 3650 * DAY_MS;
        assert_eq!(sale_commission(&rs, 1, Some(JAN31_2026), later), SaleDecision::Commission(100));
    }

    #[test]
    fn first_sale_only() {
        let rs = sale_only(pct(1000, Some(0)));
        assert_eq!(sale_commission(&rs, 1000, None, JAN31_2026), SaleDecision::Commission(100));
        assert_eq!(sale_commission(&rs, 1000, Some(JAN31_2026), JAN31_2026), SaleDecision::Commission(100));
        assert_eq!(sale_commission(&rs, 1000, Some(JAN31_2026), JAN31_2026 + 1), SaleDecision::OutsideRecurringWindow);
        // A recorded "first" sale later than this one: this one is the first.
        assert_eq!(sale_commission(&rs, 1000, Some(JAN31_2026 + 1), JAN31_2026), SaleDecision::Commission(100));
    }

    #[test]
    fn recurring_window_across_month_end() {
        // First sale 2026-01-31; 1 month later is clamped to 2026-02-28.
        let rs = sale_only(flat(100));
        let one = Rewards { sale: Some(Reward { duration_months: Some(1), ..flat(100) }), ..rs.clone() };
        let feb28 = JAN31_2026 + 28 * DAY_MS;
        assert_eq!(sale_commission(&one, 1, Some(JAN31_2026), feb28 - 1), SaleDecision::Commission(100));
        assert_eq!(sale_commission(&one, 1, Some(JAN31_2026), feb28), SaleDecision::OutsideRecurringWindow);
        // 12 months: until 2027-01-31 exclusive.
        let twelve = sale_only(pct(1000, Some(12)));
        let jan31_2027 = JAN31_2026 + 365 * DAY_MS;
        assert_eq!(sale_commission(&twelve, 1000, Some(JAN31_2026), jan31_2027 - 1), SaleDecision::Commission(100));
        assert_eq!(sale_commission(&twelve, 1000, Some(JAN31_2026), jan31_2027), SaleDecision::OutsideRecurringWindow);
        // Leap year: 2028-02-29 + 12 months = 2029-02-28.
        let feb29_2028 = 1_835_395_200_000; // 2028-02-29T00:00:00Z
        let feb28_2029 = feb29_2028 + 365 * DAY_MS;
        assert_eq!(sale_commission(&twelve, 1000, Some(feb29_2028), feb28_2029 - 1), SaleDecision::Commission(100));
        assert_eq!(sale_commission(&twelve, 1000, Some(feb29_2028), feb28_2029), SaleDecision::OutsideRecurringWindow);
    }

    #[test]
    fn extreme_times_do_not_panic() {
        let rs = sale_only(pct(1000, Some(120)));
        let _ = sale_commission(&rs, MAX_AMOUNT, Some(i64::MIN), i64::MAX);
        let _ = sale_commission(&rs, i64::MAX, Some(i64::MAX), i64::MIN);
        let _ = sale_commission(&sale_only(pct(i64::MAX, None)), i64::MAX, None, 0);
    }

    proptest! {
        #[test]
        fn percentage_is_between_zero_and_sale(sale in 0i64..=MAX_AMOUNT, bps in 0i64..=MAX_BPS) {
            match sale_commission(&sale_only(pct(bps, None)), sale, None, 0) {
                SaleDecision::Commission(c) => {
                    prop_assert!(c >= 0);
                    prop_assert!(c <= sale);
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }

        #[test]
        fn validated_rewards_never_exceed_limits(amount in -10i64..=20_000, months in proptest::option::of(0u32..200)) {
            let rs = sale_only(pct(amount, months));
            let ok = rs.validate("rewards").is_ok();
            prop_assert_eq!(ok, (0..=MAX_BPS).contains(&amount) && months.is_none_or(|m| m <= MAX_DURATION_MONTHS));
        }

        #[test]
        fn window_is_monotonic(months in 1u32..=120, offset_days in 0i64..4000) {
            let rs = sale_only(pct(1000, Some(months)));
            let at = JAN31_2026 + offset_days * DAY_MS;
            let inside = matches!(sale_commission(&rs, 1000, Some(JAN31_2026), at), SaleDecision::Commission(_));
            prop_assert_eq!(inside, at < add_months(JAN31_2026, months));
        }
    }
}
