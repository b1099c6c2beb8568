//! Commission rules: how much a partner earns for a lead or a sale.
//!
//! A program has one optional [`Reward`] per event kind (`lead`, `sale`), grouped in
//! [`Rewards`]. A partner may carry an override whose rewards replace the program's per kind
//! (lead and sale independently), see [`effective`]. Amounts are integer minor units of the
//! payout currency, so zero-decimal (JPY) and three-decimal (KWD) currencies need no special
//! case: a percentage is applied to minor units and rounded half to even.

use crate::error::Invalid;
use crate::modifiers::{Context, CustomerType, Modifier, MAX_MODIFIERS};
use crate::money::{mul_div_half_even, MAX_AMOUNT};
use crate::time::add_months;
use serde::Serialize;

/// 100 % in basis points.
pub const MAX_BPS: i64 = 10_000;
/// Longest recurring window a sale reward may have, in months.
pub const MAX_DURATION_MONTHS: u32 = 120;

/// How a reward's `amount` is read.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RewardType {
    /// `amount` is minor units of the payout currency.
    Flat,
    /// `amount` is basis points (1/100 of a percent) of the sale amount.
    Percentage,
}

crate::from_json_enum!(RewardType { Flat = "flat", Percentage = "percentage" });

crate::from_json! {
    deny_unknown_fields
    /// One reward. Wire form: `{"type":"percentage","amount":2000,"duration_months":12}`.
    #[derive(Serialize, Clone, Debug, PartialEq, Eq)]
    pub struct Reward {
        #[serde(rename = "type")]
        pub kind as "type": RewardType,
        /// Minor units (flat) or basis points (percentage).
        pub amount: i64,
        /// Sale rewards only: how many months after the customer's first sale later sales still
        /// earn. `None` = forever, `Some(0)` = the first sale only.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub duration_months: Option<u32>,
        /// Terms that replace these when a conversion meets their conditions (the best paying
        /// matching one wins): see [`crate::modifiers`].
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub modifiers: Vec<Modifier> = default,
        /// Sale rewards only: the most one customer can ever earn its partner, minor units (the
        /// sale that crosses it earns the remainder; later ones nothing, `cap_reached`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub max_amount_per_customer: Option<i64>,
        /// Sale rewards only: how many of one customer's sales can earn its partner a commission.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub max_sales_per_customer: Option<u32>,
    }
}

crate::from_json! {
    deny_unknown_fields
    /// A program's (or a partner override's) rewards, one per event kind.
    #[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
    pub struct Rewards {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub lead: Option<Reward>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub sale: Option<Reward>,
    }
}

fn join(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_string()
    } else {
        format!("{prefix}.{rest}")
    }
}

impl Reward {
    /// A reward with only base terms.
    pub fn new(kind: RewardType, amount: i64, duration_months: Option<u32>) -> Reward {
        Reward {
            kind,
            amount,
            duration_months,
            modifiers: Vec::new(),
            max_amount_per_customer: None,
            max_sales_per_customer: None,
        }
    }

    fn validate(&self, field: &str, is_lead: bool) -> Result<(), Invalid> {
        Terms::of(self).validate(field, is_lead)?;
        if self.modifiers.len() > MAX_MODIFIERS {
            return Err(Invalid::new(
                join(field, "modifiers"),
                "invalid_reward",
                format!("a reward has at most {MAX_MODIFIERS} modifiers"),
            ));
        }
        for (i, m) in self.modifiers.iter().enumerate() {
            let path = join(field, &format!("modifiers[{i}]"));
            m.validate_conditions(&path)?;
            Terms::of_modifier(m).validate(&path, is_lead)?;
        }
        let caps = [
            ("max_amount_per_customer", self.max_amount_per_customer.map(|a| (a, MAX_AMOUNT))),
            ("max_sales_per_customer", self.max_sales_per_customer.map(|n| (i64::from(n), i64::from(u32::MAX)))),
        ];
        for (name, cap) in caps {
            let Some((value, max)) = cap else { continue };
            let f = join(field, name);
            if is_lead {
                return Err(Invalid::new(f, "invalid_reward", format!("{name} applies to sale rewards only")));
            }
            if !(1..=max).contains(&value) {
                return Err(Invalid::new(f, "invalid_reward", format!("{name} must be from 1 to {max}")));
            }
        }
        Ok(())
    }
}

/// What a reward (or one of its modifiers) pays: its type, amount and recurring window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terms {
    pub kind: RewardType,
    pub amount: i64,
    pub duration_months: Option<u32>,
}

impl Terms {
    pub fn of(r: &Reward) -> Terms {
        Terms { kind: r.kind, amount: r.amount, duration_months: r.duration_months }
    }

    pub fn of_modifier(m: &Modifier) -> Terms {
        Terms { kind: m.kind, amount: m.amount, duration_months: m.duration_months }
    }

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

/// The rewards that apply to one partner, per event kind: the partner's override, else its
/// group's, else the program's. Each kind is taken whole from one level (its modifiers and caps
/// included).
pub fn effective(program: &Rewards, group: Option<&Rewards>, partner_override: Option<&Rewards>) -> Rewards {
    let pick = |f: fn(&Rewards) -> &Option<Reward>| {
        [partner_override, group].into_iter().flatten().find_map(|r| f(r).clone()).or_else(|| f(program).clone())
    };
    Rewards { lead: pick(|r| &r.lead), sale: pick(|r| &r.sale) }
}

/// The commission for a lead, in minor units; `None` when there is no lead reward (or it is a
/// percentage, which [`Rewards::validate`] refuses since a lead has no amount). Of the lead
/// reward's modifiers matching the lead (`c`), the best paying wins; none: the base amount.
pub fn lead_commission(rewards: &Rewards, c: &Context<'_>) -> Option<i64> {
    let reward = rewards.lead.as_ref()?;
    let flat = |t: Terms| (t.kind == RewardType::Flat).then_some(t.amount.clamp(0, MAX_AMOUNT));
    let matching: Vec<Terms> = reward.modifiers.iter().filter(|m| m.matches(c)).map(Terms::of_modifier).collect();
    if matching.is_empty() {
        flat(Terms::of(reward))
    } else {
        matching.into_iter().filter_map(flat).max()
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
    /// The customer has earned its partner the reward's cap (amount or number of sales).
    CapReached,
}

/// What the partner earned from this customer before this sale (sale commissions not
/// rejected, at the amount they were created with): what the reward's caps count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Earned {
    pub amount: i64,
    pub sales: u32,
}

/// A sale, as the sale reward is evaluated on it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sale<'a> {
    /// The commission base, minor units of the payout currency.
    pub base: i64,
    /// The customer's first sale time; `None`, or a time not before `at`: this is the first.
    pub first_sale_at: Option<i64>,
    pub at: i64,
    /// What the conditions of modifiers read (`sale_amount` and `customer_type` are set here).
    pub context: Context<'a>,
    pub earned: Earned,
}

/// The commission on a sale with only base terms and no caps reached (see [`sale_decision`]).
pub fn sale_commission(rewards: &Rewards, sale_amount: i64, first_sale_at: Option<i64>, sale_at: i64) -> SaleDecision {
    let sale = Sale { base: sale_amount, first_sale_at, at: sale_at, ..Sale::default() };
    sale_decision(rewards, &sale).0
}

/// The commission on `sale`, and the terms it was computed with (`None` when nothing is earned).
///
/// Terms: of the sale reward's modifiers whose conditions the sale meets, the one paying the
/// most (the first of equals); none: the reward's base terms. Recurring window, per terms:
/// `duration_months` `None` = every sale, `Some(0)` = the first sale only, `Some(n)` = sales
/// with `at < first_sale_at + n months` (calendar months, clamped to the month's end). A
/// matching modifier whose window is over does not pay; when none of the candidate terms is in
/// its window the sale is outside it. Caps last: a customer that already brought
/// `max_sales_per_customer` commissioned sales, or `max_amount_per_customer`, earns nothing
/// (`CapReached`); the sale that crosses the amount cap earns the remainder.
pub fn sale_decision(rewards: &Rewards, sale: &Sale<'_>) -> (SaleDecision, Option<Terms>) {
    let Some(reward) = &rewards.sale else {
        return (SaleDecision::NoReward, None);
    };
    let first = match sale.first_sale_at {
        Some(f) if f < sale.at => f,
        _ => sale.at,
    };
    let is_first = first == sale.at;
    let context = Context {
        sale_amount: Some(sale.base.max(0)),
        customer_type: Some(if is_first { CustomerType::New } else { CustomerType::Recurring }),
        ..sale.context
    };
    let mut candidates: Vec<Terms> =
        reward.modifiers.iter().filter(|m| m.matches(&context)).map(Terms::of_modifier).collect();
    if candidates.is_empty() {
        candidates.push(Terms::of(reward));
    }
    let eligible = |t: &Terms| match t.duration_months {
        None => true,
        Some(0) => is_first,
        Some(n) => is_first || sale.at < add_months(first, n),
    };
    let pays = |t: &Terms| match t.kind {
        RewardType::Flat => t.amount.clamp(0, MAX_AMOUNT),
        RewardType::Percentage => mul_div_half_even(sale.base.max(0), t.amount.clamp(0, MAX_BPS), MAX_BPS),
    };
    let mut best: Option<(i64, Terms)> = None;
    for t in candidates.into_iter().filter(eligible) {
        let amount = pays(&t);
        if best.is_none_or(|(b, _)| amount > b) {
            best = Some((amount, t));
        }
    }
    let Some((amount, terms)) = best else {
        return (SaleDecision::OutsideRecurringWindow, None);
    };
    if reward.max_sales_per_customer.is_some_and(|n| sale.earned.sales >= n) {
        return (SaleDecision::CapReached, None);
    }
    let amount = match reward.max_amount_per_customer {
        Some(cap) => {
            let left = cap.saturating_sub(sale.earned.amount.max(0));
            if left <= 0 {
                return (SaleDecision::CapReached, None);
            }
            amount.min(left)
        }
        None => amount,
    };
    (SaleDecision::Commission(amount), Some(terms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::DAY_MS;
    use proptest::prelude::*;

    fn pct(bps: i64, months: Option<u32>) -> Reward {
        Reward::new(RewardType::Percentage, bps, months)
    }
    fn flat(amount: i64) -> Reward {
        Reward::new(RewardType::Flat, amount, None)
    }
    fn sale_only(r: Reward) -> Rewards {
        Rewards { lead: None, sale: Some(r) }
    }

    const JAN31_2026: i64 = 1_769_817_600_000; // 2026-01-31T00:00:00Z

    #[test]
    fn wire_format_round_trips() {
        let json = r#"{"type":"percentage","amount":2000,"duration_months":12}"#;
        let r: Reward = crate::wire::from_str(json).unwrap();
        assert_eq!(r, pct(2000, Some(12)));
        assert_eq!(serde_json::to_string(&r).unwrap(), json);
        let r: Reward = crate::wire::from_str(r#"{"type":"flat","amount":500}"#).unwrap();
        assert_eq!(r, flat(500));
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"type":"flat","amount":500}"#);

        let rs: Rewards = crate::wire::from_str("{}").unwrap();
        assert_eq!(rs, Rewards::default());
        assert_eq!(serde_json::to_string(&rs).unwrap(), "{}");
        let rs: Rewards = crate::wire::from_str(r#"{"lead":{"type":"flat","amount":100},"sale":null}"#).unwrap();
        assert_eq!(rs.lead, Some(flat(100)));
        assert_eq!(rs.sale, None);
    }

    #[test]
    fn wire_format_refuses_unknown() {
        assert!(crate::wire::from_str::<Reward>(r#"{"type":"flat","amount":1,"x":1}"#).is_err());
        assert!(crate::wire::from_str::<Reward>(r#"{"type":"fixed","amount":1}"#).is_err());
        assert!(crate::wire::from_str::<Reward>(r#"{"type":"flat"}"#).is_err());
        assert!(crate::wire::from_str::<Rewards>(r#"{"click":{"type":"flat","amount":1}}"#).is_err());
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
        assert_eq!(effective(&program, None, None), program);
        assert_eq!(effective(&program, None, Some(&Rewards::default())), program);
        let only_sale = sale_only(pct(3000, Some(6)));
        assert_eq!(
            effective(&program, None, Some(&only_sale)),
            Rewards { lead: Some(flat(100)), sale: Some(pct(3000, Some(6))) }
        );
        let only_lead = Rewards { lead: Some(flat(0)), sale: None };
        assert_eq!(
            effective(&program, None, Some(&only_lead)),
            Rewards { lead: Some(flat(0)), sale: Some(pct(1000, None)) }
        );
        // An override can give a reward the program does not have.
        assert_eq!(effective(&Rewards::default(), None, Some(&only_sale)), only_sale);
        // The override's sale reward is used whole, duration included.
        let eff = effective(&sale_only(pct(1000, Some(12))), None, Some(&sale_only(flat(700))));
        assert_eq!(eff.sale, Some(flat(700)));
    }

    #[test]
    fn lead_commission_is_flat() {
        assert_eq!(lead_commission(&Rewards::default(), &Context::default()), None);
        assert_eq!(lead_commission(&Rewards { lead: Some(flat(250)), sale: None }, &Context::default()), Some(250));
        assert_eq!(lead_commission(&Rewards { lead: Some(pct(250, None)), sale: None }, &Context::default()), None);
        assert_eq!(lead_commission(&sale_only(flat(250)), &Context::default()), None);
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

    fn modifier(conditions: serde_json::Value, kind: RewardType, amount: i64, months: Option<u32>) -> Modifier {
        Modifier {
            conditions: crate::wire::from_value(conditions).unwrap(),
            matching: crate::modifiers::Match::All,
            kind,
            amount,
            duration_months: months,
        }
    }

    fn sale<'a>(base: i64, ctx: Context<'a>) -> Sale<'a> {
        Sale { base, first_sale_at: None, at: JAN31_2026, context: ctx, earned: Earned::default() }
    }

    #[test]
    fn the_best_paying_matching_modifier_wins() {
        use serde_json::json;
        let mut r = pct(2000, None); // 20 %
        r.modifiers = vec![
            modifier(json!([{"field": "product_id", "op": "eq", "value": "pro"}]), RewardType::Percentage, 3000, None),
            modifier(json!([{"field": "country", "op": "in", "value": ["DE", "AT"]}]), RewardType::Flat, 2500, None),
            modifier(json!([{"field": "country", "op": "eq", "value": "FR"}]), RewardType::Percentage, 1000, None),
        ];
        let rs = sale_only(r);
        let d = |base, ctx| sale_decision(&rs, &sale(base, ctx)).0;
        let pro = Context { product_id: Some("pro"), ..Context::default() };
        let pro_de = Context { country: Some("de"), ..pro };
        let fr = Context { country: Some("FR"), ..Context::default() };
        assert_eq!(d(10_000, Context::default()), SaleDecision::Commission(2000)); // none: base 20 %
        assert_eq!(d(10_000, pro), SaleDecision::Commission(3000)); // 30 %
        assert_eq!(d(10_000, pro_de), SaleDecision::Commission(3000)); // 30 % = 3000 > flat 2500
        assert_eq!(d(5_000, pro_de), SaleDecision::Commission(2500)); // flat 2500 > 30 % = 1500
                                                                      // A matching modifier replaces the base even when it pays less (FR: 10 %).
        assert_eq!(d(10_000, fr), SaleDecision::Commission(1000));
        // Equal pay: the first matching modifier's terms.
        let (_, terms) = sale_decision(&rs, &sale(25_000 / 3, pro_de));
        assert_eq!(terms.map(|t| t.kind), Some(RewardType::Percentage));
    }

    #[test]
    fn customer_type_and_modifier_windows() {
        use serde_json::json;
        let mut r = pct(1000, None);
        r.modifiers = vec![modifier(
            json!([{"field": "customer_type", "op": "eq", "value": "new"}]),
            RewardType::Flat,
            5000,
            Some(0),
        )];
        let rs = sale_only(r);
        let first = sale(1000, Context::default());
        assert_eq!(sale_decision(&rs, &first).0, SaleDecision::Commission(5000));
        assert_eq!(sale_decision(&rs, &first).1.and_then(|t| t.duration_months), Some(0));
        let later = Sale { first_sale_at: Some(JAN31_2026 - DAY_MS), ..first };
        assert_eq!(sale_decision(&rs, &later).0, SaleDecision::Commission(100));
        // A matching modifier outside its own window does not pay; with no other candidate the
        // sale is outside the window.
        let mut r = flat(100);
        r.modifiers = vec![modifier(
            json!([{"field": "event_name", "op": "eq", "value": "Renewal"}]),
            RewardType::Flat,
            900,
            Some(0),
        )];
        let rs = sale_only(r);
        let renewal = Sale { context: Context { event_name: Some("Renewal"), ..Context::default() }, ..later };
        assert_eq!(sale_decision(&rs, &renewal).0, SaleDecision::OutsideRecurringWindow);
    }

    #[test]
    fn caps_at_the_boundary() {
        let mut r = flat(3000);
        r.max_amount_per_customer = Some(10_000);
        r.max_sales_per_customer = Some(5);
        let rs = sale_only(r);
        let at = |amount, sales| Sale { earned: Earned { amount, sales }, ..sale(1, Context::default()) };
        assert_eq!(sale_decision(&rs, &at(0, 0)).0, SaleDecision::Commission(3000));
        assert_eq!(sale_decision(&rs, &at(7000, 2)).0, SaleDecision::Commission(3000)); // reaches 10,000 exactly
        assert_eq!(sale_decision(&rs, &at(9000, 3)).0, SaleDecision::Commission(1000)); // the remainder
        assert_eq!(sale_decision(&rs, &at(9999, 3)).0, SaleDecision::Commission(1));
        assert_eq!(sale_decision(&rs, &at(10_000, 4)).0, SaleDecision::CapReached);
        assert_eq!(sale_decision(&rs, &at(0, 5)).0, SaleDecision::CapReached);
        assert_eq!(sale_decision(&rs, &at(0, 4)).0, SaleDecision::Commission(3000));
    }

    #[test]
    fn modifiers_and_caps_validate_with_their_path() {
        use serde_json::json;
        let rewards = |v: serde_json::Value| crate::wire::from_value::<Rewards>(v).unwrap().validate("rewards");
        let c = json!({"field": "country", "op": "eq", "value": "DE"});
        let field = |v| rewards(v).unwrap_err().field;
        assert_eq!(
            field(json!({"sale": {"type": "flat", "amount": 1, "modifiers": [
                {"conditions": [c], "type": "flat", "amount": 2},
                {"conditions": [c], "type": "flat", "amount": 2},
                {"conditions": [c, {"field": "country", "op": "gte", "value": "DE"}], "type": "flat", "amount": 2}]}})),
            "rewards.sale.modifiers[2].conditions[1].op"
        );
        assert_eq!(
            field(
                json!({"sale": {"type": "flat", "amount": 1, "modifiers": [{"conditions": [c], "type": "percentage", "amount": 10001}]}})
            ),
            "rewards.sale.modifiers[0].amount"
        );
        assert_eq!(
            field(
                json!({"lead": {"type": "flat", "amount": 1, "modifiers": [{"conditions": [c], "type": "percentage", "amount": 100}]}})
            ),
            "rewards.lead.modifiers[0].type"
        );
        assert_eq!(
            field(
                json!({"sale": {"type": "flat", "amount": 1, "modifiers": [{"conditions": [], "type": "flat", "amount": 1}]}})
            ),
            "rewards.sale.modifiers[0].conditions"
        );
        let many: Vec<_> = (0..21).map(|_| json!({"conditions": [c], "type": "flat", "amount": 1})).collect();
        assert_eq!(field(json!({"sale": {"type": "flat", "amount": 1, "modifiers": many}})), "rewards.sale.modifiers");
        assert_eq!(
            field(json!({"sale": {"type": "flat", "amount": 1, "max_amount_per_customer": 0}})),
            "rewards.sale.max_amount_per_customer"
        );
        assert_eq!(
            field(json!({"lead": {"type": "flat", "amount": 1, "max_sales_per_customer": 2}})),
            "rewards.lead.max_sales_per_customer"
        );
        assert!(rewards(json!({"sale": {"type": "percentage", "amount": 2000, "max_amount_per_customer": 50000,
            "max_sales_per_customer": 12, "modifiers": [{"conditions": [c], "match": "any", "type": "percentage", "amount": 3000, "duration_months": 12}]}}))
        .is_ok());
    }

    #[test]
    fn group_sits_between_program_and_partner() {
        let program = Rewards { lead: Some(flat(100)), sale: Some(pct(1000, None)) };
        let group = Rewards { lead: None, sale: Some(pct(2000, None)) };
        let partner = Rewards { lead: Some(flat(300)), sale: None };
        assert_eq!(
            effective(&program, Some(&group), None),
            Rewards { lead: Some(flat(100)), sale: Some(pct(2000, None)) }
        );
        assert_eq!(
            effective(&program, Some(&group), Some(&partner)),
            Rewards { lead: Some(flat(300)), sale: Some(pct(2000, None)) }
        );
        let partner_sale = sale_only(flat(5));
        assert_eq!(effective(&program, Some(&group), Some(&partner_sale)).sale, Some(flat(5)));
    }

    #[test]
    fn lead_modifiers_are_flat_and_best_wins() {
        use serde_json::json;
        let mut r = flat(100);
        r.modifiers = vec![
            modifier(json!([{"field": "country", "op": "eq", "value": "US"}]), RewardType::Flat, 300, None),
            modifier(json!([{"field": "event_name", "op": "eq", "value": "Sign up"}]), RewardType::Flat, 200, None),
        ];
        let rs = Rewards { lead: Some(r), sale: None };
        let us = Context { country: Some("US"), event_name: Some("Sign up"), ..Context::default() };
        assert_eq!(lead_commission(&rs, &us), Some(300));
        assert_eq!(lead_commission(&rs, &Context { country: Some("CA"), ..us }), Some(200));
        assert_eq!(lead_commission(&rs, &Context::default()), Some(100));
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
        fn caps_never_exceeded(cap in 1i64..100_000, amounts in proptest::collection::vec(0i64..50_000, 1..30)) {
            let mut r = pct(2500, None);
            r.max_amount_per_customer = Some(cap);
            let rs = sale_only(r);
            let mut earned = Earned::default();
            for base in amounts {
                let s = Sale { base, first_sale_at: Some(0), at: 1, context: Context::default(), earned };
                match sale_decision(&rs, &s).0 {
                    SaleDecision::Commission(c) => {
                        prop_assert!(c >= 0 && c <= mul_div_half_even(base, 2500, MAX_BPS));
                        earned.amount += c;
                        earned.sales += 1;
                    }
                    SaleDecision::CapReached => prop_assert!(earned.amount >= cap),
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
                prop_assert!(earned.amount <= cap);
            }
        }

        #[test]
        fn best_modifier_pays_at_least_every_matching_one(base in 0i64..1_000_000, a in 0i64..=MAX_BPS, b in 0i64..100_000) {
            use serde_json::json;
            let mut r = flat(1);
            let de = json!([{"field": "country", "op": "eq", "value": "DE"}]);
            r.modifiers = vec![
                modifier(de.clone(), RewardType::Percentage, a, None),
                modifier(de, RewardType::Flat, b, None),
            ];
            let rs = sale_only(r);
            let s = sale(base, Context { country: Some("DE"), ..Context::default() });
            let SaleDecision::Commission(c) = sale_decision(&rs, &s).0 else { panic!() };
            prop_assert_eq!(c, mul_div_half_even(base, a, MAX_BPS).max(b));
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
