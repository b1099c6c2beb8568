//! Partner groups: terms shared by a set of partners of one program (a tier, a market, a type
//! of partner). Per field, a partner's own override wins over its group's, the group's over the
//! program's: rewards per event kind ([`crate::rules::effective`]), `min_payout` and
//! `hold_days` ([`effective_min_payout`], [`effective_hold_days`]).

use crate::error::Invalid;
use crate::money::MAX_AMOUNT;

use crate::rules::Rewards;

/// Longest hold period, in days (the program's own bound).
pub const MAX_HOLD_DAYS: u32 = 365;

crate::from_json! {
    deny_unknown_fields
    /// `POST /api/v1/programs/{id}/groups` body.
    #[derive(Clone, Debug)]
    pub struct GroupInput {
        pub name: String,
        pub rewards: Option<Rewards>,
        pub min_payout: Option<i64>,
        pub hold_days: Option<u32>,
    }
}

crate::from_json! {
    deny_unknown_fields
    /// `PATCH /api/v1/groups/{id}` body: absent fields are kept, `null` clears one (the program's
    /// term applies again).
    #[derive(Clone, Debug, Default)]
    pub struct GroupPatch {
        pub name: Option<String>,
        pub rewards: Option<Option<Rewards>> = nullable,
        pub min_payout: Option<Option<i64>> = nullable,
        pub hold_days: Option<Option<u32>> = nullable,
    }
}

/// A validated group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupFields {
    pub name: String,
    pub rewards: Option<Rewards>,
    pub min_payout: Option<i64>,
    pub hold_days: Option<u32>,
}

fn parse_name(s: &str) -> Result<String, Invalid> {
    let n = s.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(Invalid::new("name", "invalid_name", "name must be 1 to 100 characters"));
    }
    Ok(n.to_string())
}

/// A minimum payout override (a partner's or a group's): minor units of the payout currency.
pub fn parse_min_payout(v: Option<i64>) -> Result<Option<i64>, Invalid> {
    match v {
        Some(m) if !(0..=MAX_AMOUNT).contains(&m) => Err(Invalid::new(
            "min_payout",
            "invalid_min_payout",
            "min_payout must be a non-negative integer amount in minor units",
        )),
        _ => Ok(v),
    }
}

fn parse_hold_days(v: Option<u32>) -> Result<Option<u32>, Invalid> {
    match v {
        Some(d) if d > MAX_HOLD_DAYS => {
            Err(Invalid::new("hold_days", "invalid_hold", format!("hold_days must be 0 to {MAX_HOLD_DAYS}")))
        }
        _ => Ok(v),
    }
}

impl GroupFields {
    fn checked(self) -> Result<GroupFields, Invalid> {
        if let Some(r) = &self.rewards {
            r.validate("rewards")?;
        }
        Ok(GroupFields {
            name: parse_name(&self.name)?,
            min_payout: parse_min_payout(self.min_payout)?,
            hold_days: parse_hold_days(self.hold_days)?,
            rewards: self.rewards,
        })
    }

    /// The group after a PATCH.
    pub fn apply(&self, p: GroupPatch) -> Result<GroupFields, Invalid> {
        GroupFields {
            name: p.name.unwrap_or_else(|| self.name.clone()),
            rewards: p.rewards.unwrap_or_else(|| self.rewards.clone()),
            min_payout: p.min_payout.unwrap_or(self.min_payout),
            hold_days: p.hold_days.unwrap_or(self.hold_days),
        }
        .checked()
    }
}

impl GroupInput {
    pub fn validate(self) -> Result<GroupFields, Invalid> {
        GroupFields { name: self.name, rewards: self.rewards, min_payout: self.min_payout, hold_days: self.hold_days }
            .checked()
    }
}

/// The minimum payout that applies: the partner's, else its group's, else the program's.
pub fn effective_min_payout(program: i64, group: Option<i64>, partner: Option<i64>) -> i64 {
    partner.or(group).unwrap_or(program)
}

/// The hold period that applies: the group's, else the program's.
pub fn effective_hold_days(program: u32, group: Option<u32>) -> u32 {
    group.unwrap_or(program)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_and_patch() {
        let g: GroupInput = crate::wire::from_str(
            r#"{"name":" Gold ","rewards":{"sale":{"type":"percentage","amount":3000}},"min_payout":1000,"hold_days":7}"#,
        )
        .unwrap();
        let g = g.validate().unwrap();
        assert_eq!((g.name.as_str(), g.min_payout, g.hold_days), ("Gold", Some(1000), Some(7)));
        let p: GroupPatch = crate::wire::from_str(r#"{"min_payout":null,"rewards":null}"#).unwrap();
        let after = g.apply(p).unwrap();
        assert_eq!((after.min_payout, after.rewards, after.hold_days), (None, None, Some(7)));
        let keep = g.apply(GroupPatch::default()).unwrap();
        assert_eq!(keep, g);
        for (body, field) in [
            (r#"{"name":""}"#, "name"),
            (r#"{"name":"x","min_payout":-1}"#, "min_payout"),
            (r#"{"name":"x","hold_days":366}"#, "hold_days"),
            (r#"{"name":"x","rewards":{"sale":{"type":"percentage","amount":10001}}}"#, "rewards.sale.amount"),
        ] {
            let g: GroupInput = crate::wire::from_str(body).unwrap();
            assert_eq!(g.validate().unwrap_err().field, field, "{body}");
        }
        assert!(crate::wire::from_str::<GroupInput>(r#"{"name":"x","tier":1}"#).is_err());
    }

    #[test]
    fn partner_over_group_over_program() {
        assert_eq!(effective_min_payout(5000, None, None), 5000);
        assert_eq!(effective_min_payout(5000, Some(1000), None), 1000);
        assert_eq!(effective_min_payout(5000, Some(1000), Some(0)), 0);
        assert_eq!(effective_min_payout(5000, None, Some(20_000)), 20_000);
        assert_eq!(effective_hold_days(30, None), 30);
        assert_eq!(effective_hold_days(30, Some(0)), 0);
    }
}
