//! Partners: enrolment input, status, and the email rule.

use crate::error::Invalid;
use crate::rules::Rewards;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartnerStatus {
    Invited,
    Active,
    Banned,
}

crate::from_json_enum!(PartnerStatus { Invited = "invited", Active = "active", Banned = "banned" });

impl PartnerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PartnerStatus::Invited => "invited",
            PartnerStatus::Active => "active",
            PartnerStatus::Banned => "banned",
        }
    }
    pub fn parse(s: &str) -> Option<PartnerStatus> {
        match s {
            "invited" => Some(PartnerStatus::Invited),
            "active" => Some(PartnerStatus::Active),
            "banned" => Some(PartnerStatus::Banned),
            _ => None,
        }
    }
}

crate::from_json! {
    deny_unknown_fields
    /// `POST /api/v1/programs/{id}/partners` body.
    #[derive(Clone, Debug)]
    pub struct PartnerInput {
        pub email: String,
        pub name: String,
        /// Per-partner reward override (replaces the program's reward per event kind).
        pub rewards: Option<Rewards>,
        /// `true`: the partner is created `invited` (an invitation is sent) rather than `active`.
        pub invite: bool = default,
        /// ISO 3166-1 alpha-2 country (decides the Stripe service agreement at onboarding).
        pub country: Option<String>,
        /// The partner's group (a group of the same program).
        pub group_id: Option<String>,
        /// The partner's own minimum payout (overrides its group's and the program's).
        pub min_payout: Option<i64>,
    }
}

crate::from_json! {
    deny_unknown_fields
    /// `PATCH /api/v1/partners/{id}` body.
    #[derive(Clone, Debug, Default)]
    pub struct PartnerPatch {
        pub name: Option<String>,
        pub email: Option<String>,
        pub status: Option<PartnerStatus>,
        pub rewards: Option<Option<Rewards>> = nullable,
        pub country: Option<String>,
        /// `null` takes the partner out of its group.
        pub group_id: Option<Option<String>> = nullable,
        /// `null`: the group's or the program's minimum applies again.
        pub min_payout: Option<Option<i64>> = nullable,
    }
}

/// A validated partner.
#[derive(Clone, Debug, PartialEq)]
pub struct PartnerFields {
    pub email: String,
    pub name: String,
    pub status: PartnerStatus,
    pub rewards: Option<Rewards>,
    pub country: Option<String>,
    /// Checked for shape here; the shell checks it names a group of the partner's program.
    pub group_id: Option<String>,
    pub min_payout: Option<i64>,
}

fn parse_group_id(v: Option<String>) -> Result<Option<String>, Invalid> {
    match v {
        Some(id) if !crate::ids::is_valid(crate::ids::GROUP, &id) => {
            Err(Invalid::new("group_id", "invalid_group", format!("`{id}` is not a group id")))
        }
        _ => Ok(v),
    }
}

mod countries {
    include!(concat!(env!("OUT_DIR"), "/countries.rs"));
}

/// An ISO 3166-1 alpha-2 country code (any case), normalised to upper case. The list of codes
/// comes from the maintained `isocountry` crate (compiled into a table by `build.rs`).
pub fn parse_country(field: &str, s: &str) -> Result<String, Invalid> {
    let code = s.trim().to_ascii_uppercase();
    if code.len() == 2 && countries::ALPHA2.as_bytes().chunks_exact(2).any(|c| c == code.as_bytes()) {
        Ok(code)
    } else {
        Err(Invalid::new(field, "invalid_country", format!("`{s}` is not an ISO 3166-1 alpha-2 country code")))
    }
}

/// Normalised email: trimmed, lower-case; one `@`, a non-empty local part, a dotted domain.
pub fn parse_email(field: &str, s: &str) -> Result<String, Invalid> {
    let e = s.trim().to_ascii_lowercase();
    let bad = || Invalid::new(field, "invalid_email", format!("`{s}` is not a valid email address"));
    let (local, domain) = e.split_once('@').ok_or_else(bad)?;
    let ok = !local.is_empty()
        && e.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(e).ok_or_else(bad)
}

/// A partner's name: trimmed, 1 to 200 characters.
pub fn parse_name(s: &str) -> Result<String, Invalid> {
    let n = s.trim();
    if n.is_empty() || n.chars().count() > 200 {
        return Err(Invalid::new("name", "invalid_name", "name must be 1 to 200 characters"));
    }
    Ok(n.to_string())
}

impl PartnerInput {
    pub fn validate(self) -> Result<PartnerFields, Invalid> {
        if let Some(r) = &self.rewards {
            r.validate("rewards")?;
        }
        Ok(PartnerFields {
            email: parse_email("email", &self.email)?,
            name: parse_name(&self.name)?,
            status: if self.invite { PartnerStatus::Invited } else { PartnerStatus::Active },
            rewards: self.rewards,
            country: self.country.as_deref().map(|c| parse_country("country", c)).transpose()?,
            group_id: parse_group_id(self.group_id)?,
            min_payout: crate::group::parse_min_payout(self.min_payout)?,
        })
    }
}

impl PartnerFields {
    pub fn apply(&self, p: PartnerPatch) -> Result<PartnerFields, Invalid> {
        let rewards = p.rewards.unwrap_or_else(|| self.rewards.clone());
        if let Some(r) = &rewards {
            r.validate("rewards")?;
        }
        Ok(PartnerFields {
            email: match p.email {
                Some(e) => parse_email("email", &e)?,
                None => self.email.clone(),
            },
            name: match p.name {
                Some(n) => parse_name(&n)?,
                None => self.name.clone(),
            },
            status: p.status.unwrap_or(self.status),
            rewards,
            country: match p.country {
                Some(c) => Some(parse_country("country", &c)?),
                None => self.country.clone(),
            },
            group_id: parse_group_id(p.group_id.unwrap_or_else(|| self.group_id.clone()))?,
            min_payout: crate::group::parse_min_payout(p.min_payout.unwrap_or(self.min_payout))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(parse_email("email", " Jane@Example.COM ").unwrap(), "jane@example.com");
        for bad in ["", "jane", "@x.com", "jane@", "jane@x", "jane@.com", "ja ne@x.com", "a@b@c.com"] {
            assert!(parse_email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn input_and_patch() {
        let i: PartnerInput = crate::wire::from_str(r#"{"email":"a@b.co","name":"Ann"}"#).unwrap();
        let p = i.validate().unwrap();
        assert_eq!(p.status, PartnerStatus::Active);
        let patch: PartnerPatch = crate::wire::from_str(r#"{"status":"banned"}"#).unwrap();
        let q = p.apply(patch).unwrap();
        assert_eq!(q.status, PartnerStatus::Banned);
        assert_eq!(q.email, "a@b.co");
        assert!(crate::wire::from_str::<PartnerPatch>(r#"{"status":"gone"}"#).is_err());
        assert!(crate::wire::from_str::<PartnerInput>(r#"{"email":"a@b.co","name":"Ann","x":1}"#).is_err());
        let invited: PartnerInput = crate::wire::from_str(r#"{"email":"a@b.co","name":"Ann","invite":true}"#).unwrap();
        assert_eq!(invited.validate().unwrap().status, PartnerStatus::Invited);
    }

    #[test]
    fn country_table() {
        let codes: Vec<&[u8]> = countries::ALPHA2.as_bytes().chunks_exact(2).collect();
        assert_eq!(countries::ALPHA2.len() % 2, 0);
        assert!(codes.len() > 240, "{}", codes.len());
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
        for c in codes {
            let c = std::str::from_utf8(c).unwrap();
            assert_eq!(parse_country("country", &c.to_ascii_lowercase()).unwrap(), c);
        }
    }

    #[test]
    fn countries() {
        assert_eq!(parse_country("country", "de").unwrap(), "DE");
        assert_eq!(parse_country("country", " US ").unwrap(), "US");
        for bad in ["", "USA", "XX", "u", "12", "ZZ"] {
            assert_eq!(parse_country("country", bad).unwrap_err().code, "invalid_country", "{bad}");
        }
        let i: PartnerInput = crate::wire::from_str(r#"{"email":"a@b.co","name":"Ann","country":"fr"}"#).unwrap();
        let p = i.validate().unwrap();
        assert_eq!(p.country.as_deref(), Some("FR"));
        let q = p.apply(crate::wire::from_str(r#"{"country":"GB"}"#).unwrap()).unwrap();
        assert_eq!(q.country.as_deref(), Some("GB"));
        assert!(p.apply(crate::wire::from_str(r#"{"country":"Narnia"}"#).unwrap()).is_err());
    }
}
