//! Program settings (SPEC 1): parsed from the wire into a validated [`ProgramSettings`], the only
//! form the rest of the system sees. A PATCH is applied onto the current settings and the whole
//! result validated again, so a program can never be left in a state a create would refuse.

use crate::attribution::Model;
use crate::error::Invalid;
use crate::fraud::{FraudRules, DEFAULT_CLICK_SPAM_THRESHOLD, MAX_BANNED_REFERRERS, MAX_CLICK_SPAM_THRESHOLD};
use crate::link::parse_hostname;
use crate::money::{Currency, MAX_AMOUNT};
use crate::payout::{PayoutMode, Schedule};
use crate::rules::Rewards;
use serde::Serialize;

pub const DEFAULT_WINDOW_DAYS: u32 = 90;
pub const DEFAULT_HOLD_DAYS: u32 = 30;
pub const DEFAULT_BRAND_COLOR: &str = "#4f46e5";
pub const DEFAULT_MIN_PAYOUT: i64 = 5000;

crate::from_json! {
    /// Validated program settings; serialized as the program's wire shape (without id/timestamps).
    #[derive(Clone, Debug, PartialEq, Serialize)]
    pub struct ProgramSettings {
        pub name: String,
        pub description: String,
        pub logo_url: Option<String>,
        pub brand_color: String,
        pub domains: Vec<String>,
        pub allowed_hosts: Vec<String>,
        pub cookie_domain: Option<String>,
        pub payout_currency: Currency,
        pub min_payout: i64,
        pub payout_schedule: Schedule,
        pub attribution_window_days: u32,
        pub attribution_model: Model,
        pub hold_days: u32,
        pub rewards: Rewards,
        /// Every fraud rule's action (`crate::fraud`); settings stored before the rules existed
        /// read as the defaults.
        pub fraud_rules: FraudRules = default,
        /// `click_spam`: more visits than this by one visitor to a partner's links in 24 hours.
        pub click_spam_threshold: u32 = or(default_click_spam_threshold()),
        /// `banned_referrer`: referrer hosts whose clicks are judged by that rule.
        pub banned_referrers: Vec<String> = default,
        /// `automatic` (the default, also for settings stored before review mode) or `review`.
        pub payout_mode: PayoutMode = default,
    }
}

fn default_click_spam_threshold() -> u32 {
    DEFAULT_CLICK_SPAM_THRESHOLD
}

crate::from_json! {
    deny_unknown_fields
    /// `POST /api/v1/programs` body. Unknown fields are refused.
    #[derive(Clone, Debug, Default)]
    pub struct ProgramInput {
        pub name: String,
        pub description: Option<String>,
        pub logo_url: Option<String>,
        pub brand_color: Option<String>,
        pub domains: Vec<String>,
        pub allowed_hosts: Vec<String>,
        pub cookie_domain: Option<String>,
        pub payout_currency: String,
        pub min_payout: Option<i64>,
        pub payout_schedule: Option<Schedule>,
        pub attribution_window_days: Option<u32>,
        pub attribution_model: Option<Model>,
        pub hold_days: Option<u32>,
        pub rewards: Option<Rewards>,
        /// Rule code -> action, over the defaults (or, in a PATCH, over the program's rules).
        pub fraud_rules: Option<serde_json::Map<String, serde_json::Value>>,
        pub click_spam_threshold: Option<u32>,
        pub banned_referrers: Option<Vec<String>>,
        pub payout_mode: Option<PayoutMode>,
    }
}

crate::from_json! {
    deny_unknown_fields
    /// `PATCH /api/v1/programs/{id}` body: every field optional; `null` clears a nullable field.
    #[derive(Clone, Debug, Default)]
    pub struct ProgramPatch {
        pub name: Option<String>,
        pub description: Option<Option<String>> = nullable,
        pub logo_url: Option<Option<String>> = nullable,
        pub brand_color: Option<String>,
        pub domains: Option<Vec<String>>,
        pub allowed_hosts: Option<Vec<String>>,
        pub cookie_domain: Option<Option<String>> = nullable,
        pub payout_currency: Option<String>,
        pub min_payout: Option<i64>,
        pub payout_schedule: Option<Schedule>,
        pub attribution_window_days: Option<u32>,
        pub attribution_model: Option<Model>,
        pub hold_days: Option<u32>,
        pub rewards: Option<Rewards>,
        /// Only the rules named change.
        pub fraud_rules: Option<serde_json::Map<String, serde_json::Value>>,
        pub click_spam_threshold: Option<u32>,
        pub banned_referrers: Option<Vec<String>>,
        pub payout_mode: Option<PayoutMode>,
    }
}

/// Loopback hosts a merchant's local app runs on: allowed hosts may name them (any port).
const LOOPBACK: [&str; 2] = ["localhost", "127.0.0.1"];

fn hostnames(field: &str, list: &[String], max: usize) -> Result<Vec<String>, Invalid> {
    if list.is_empty() || list.len() > max {
        return Err(Invalid::new(field, "invalid_hostname", format!("{field} needs 1 to {max} hostnames")));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for (i, h) in list.iter().enumerate() {
        // `localhost` (one label) is a hostname only where a merchant's local app may be:
        // `allowed_hosts`. A port is never part of it (every port is allowed).
        let local = h.trim().trim_end_matches('.').eq_ignore_ascii_case("localhost");
        let h = if local && field == "allowed_hosts" {
            "localhost".to_string()
        } else {
            parse_hostname(&format!("{field}[{i}]"), h)?
        };
        if !out.contains(&h) {
            out.push(h);
        }
    }
    Ok(out)
}

fn https_url(field: &str, s: &str) -> Result<String, Invalid> {
    let bad = || Invalid::new(field, "invalid_url", format!("{field} must be an absolute https URL"));
    let u = crate::weburl::HttpUrl::parse(s).map_err(|_| bad())?;
    if u.scheme() != "https" || s.len() > 2048 {
        return Err(bad());
    }
    Ok(u.to_string())
}

fn color(s: &str) -> Result<String, Invalid> {
    let ok = s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(Invalid::new("brand_color", "invalid_color", "brand_color must be a hex colour like #4f46e5"));
    }
    Ok(s.to_ascii_lowercase())
}

impl ProgramInput {
    pub fn validate(self) -> Result<ProgramSettings, Invalid> {
        let name = self.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Invalid::new("name", "invalid_name", "name must be 1 to 100 characters"));
        }
        let description = self.description.unwrap_or_default();
        if description.chars().count() > 1000 {
            return Err(Invalid::new(
                "description",
                "invalid_description",
                "description must be at most 1000 characters",
            ));
        }
        let logo_url = self.logo_url.filter(|s| !s.is_empty()).map(|s| https_url("logo_url", &s)).transpose()?;
        let brand_color = color(self.brand_color.as_deref().unwrap_or(DEFAULT_BRAND_COLOR))?;
        let domains = hostnames("domains", &self.domains, 10)?;
        let allowed_hosts = hostnames("allowed_hosts", &self.allowed_hosts, 50)?;
        let cookie_domain = match self.cookie_domain.filter(|s| !s.is_empty()) {
            None => None,
            Some(c) => {
                let c = parse_hostname("cookie_domain", &c)?;
                if let Some(d) = domains.iter().find(|d| **d != c && !d.ends_with(&format!(".{c}"))) {
                    return Err(Invalid::new(
                        "cookie_domain",
                        "invalid_cookie_domain",
                        format!("cookie_domain `{c}` must be a parent of every branded domain (not of `{d}`)"),
                    ));
                }
                Some(c)
            }
        };
        let payout_currency = Currency::parse(&self.payout_currency).ok_or_else(|| {
            Invalid::new(
                "payout_currency",
                "invalid_currency",
                format!("`{}` is not a supported ISO 4217 currency", self.payout_currency),
            )
        })?;
        let min_payout = self.min_payout.unwrap_or(DEFAULT_MIN_PAYOUT);
        if !(0..=MAX_AMOUNT).contains(&min_payout) {
            return Err(Invalid::new(
                "min_payout",
                "invalid_amount",
                "min_payout must be a non-negative integer amount in minor units",
            ));
        }
        let payout_schedule = self.payout_schedule.unwrap_or_default();
        payout_schedule.validate()?;
        let attribution_window_days = self.attribution_window_days.unwrap_or(DEFAULT_WINDOW_DAYS);
        if !(1..=365).contains(&attribution_window_days) {
            return Err(Invalid::new(
                "attribution_window_days",
                "invalid_window",
                "attribution_window_days must be 1 to 365",
            ));
        }
        let hold_days = self.hold_days.unwrap_or(DEFAULT_HOLD_DAYS);
        if hold_days > 365 {
            return Err(Invalid::new("hold_days", "invalid_hold", "hold_days must be 0 to 365"));
        }
        let rewards = self.rewards.unwrap_or_default();
        rewards.validate("rewards")?;
        let fraud_rules = match &self.fraud_rules {
            None => FraudRules::default(),
            Some(m) => FraudRules::default().apply("fraud_rules", m)?,
        };
        let click_spam_threshold = self.click_spam_threshold.unwrap_or(DEFAULT_CLICK_SPAM_THRESHOLD);
        if !(1..=MAX_CLICK_SPAM_THRESHOLD).contains(&click_spam_threshold) {
            return Err(Invalid::new(
                "click_spam_threshold",
                "invalid_threshold",
                format!("click_spam_threshold must be 1 to {MAX_CLICK_SPAM_THRESHOLD}"),
            ));
        }
        let banned_referrers = match self.banned_referrers {
            None => Vec::new(),
            Some(l) if l.is_empty() => Vec::new(),
            Some(l) => hostnames("banned_referrers", &l, MAX_BANNED_REFERRERS)?,
        };
        Ok(ProgramSettings {
            name,
            description,
            logo_url,
            brand_color,
            domains,
            allowed_hosts,
            cookie_domain,
            payout_currency,
            min_payout,
            payout_schedule,
            attribution_window_days,
            attribution_model: self.attribution_model.unwrap_or(Model::LastClick),
            hold_days,
            rewards,
            fraud_rules,
            click_spam_threshold,
            banned_referrers,
            payout_mode: self.payout_mode.unwrap_or_default(),
        })
    }
}

/// The portal's CSP `frame-ancestors` for a program's allowed hosts: each host on https, and on
/// the portal's own scheme at any port (scheme-less host-sources, for a local deployment); a
/// loopback host (`localhost`, `127.0.0.1`) on http and https at any port, so a merchant's app
/// on `http://localhost:3000` can frame the portal of any deployment.
pub fn frame_ancestors(hosts: &[String]) -> String {
    let mut out = String::from("frame-ancestors 'self'");
    for h in hosts {
        if LOOPBACK.contains(&h.as_str()) {
            out.push_str(&format!(" http://{h}:* https://{h}:*"));
        } else {
            out.push_str(&format!(" https://{h} {h}:*"));
        }
    }
    out
}

impl ProgramSettings {
    /// The settings after a PATCH, validated as a whole.
    pub fn apply(&self, p: ProgramPatch) -> Result<ProgramSettings, Invalid> {
        let cur = self.clone();
        ProgramInput {
            name: p.name.unwrap_or(cur.name),
            description: p.description.unwrap_or(Some(cur.description)),
            logo_url: p.logo_url.unwrap_or(cur.logo_url),
            brand_color: Some(p.brand_color.unwrap_or(cur.brand_color)),
            domains: p.domains.unwrap_or(cur.domains),
            allowed_hosts: p.allowed_hosts.unwrap_or(cur.allowed_hosts),
            cookie_domain: p.cookie_domain.unwrap_or(cur.cookie_domain),
            payout_currency: p.payout_currency.unwrap_or_else(|| cur.payout_currency.code().to_string()),
            min_payout: Some(p.min_payout.unwrap_or(cur.min_payout)),
            payout_schedule: Some(p.payout_schedule.unwrap_or(cur.payout_schedule)),
            attribution_window_days: Some(p.attribution_window_days.unwrap_or(cur.attribution_window_days)),
            attribution_model: Some(p.attribution_model.unwrap_or(cur.attribution_model)),
            hold_days: Some(p.hold_days.unwrap_or(cur.hold_days)),
            rewards: Some(p.rewards.unwrap_or(cur.rewards)),
            fraud_rules: {
                // The program's rules, then the patch's on top (validated as a whole below).
                let mut m = match serde_json::to_value(cur.fraud_rules) {
                    Ok(serde_json::Value::Object(m)) => m,
                    _ => serde_json::Map::new(),
                };
                m.extend(p.fraud_rules.unwrap_or_default());
                Some(m)
            },
            click_spam_threshold: Some(p.click_spam_threshold.unwrap_or(cur.click_spam_threshold)),
            banned_referrers: Some(p.banned_referrers.unwrap_or(cur.banned_referrers)),
            payout_mode: Some(p.payout_mode.unwrap_or(cur.payout_mode)),
        }
        .validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ProgramInput {
        crate::wire::from_str(
            r#"{"name":"Acme Partners","domains":["go.acme.com"],"allowed_hosts":["acme.com","www.acme.com"],
                "cookie_domain":"acme.com","payout_currency":"USD",
                "rewards":{"lead":{"type":"flat","amount":500},"sale":{"type":"percentage","amount":2000,"duration_months":12}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn allowed_hosts_accept_localhost_and_loopback() {
        let mut i = input();
        i.allowed_hosts = vec!["acme.com".into(), "LocalHost".into(), "localhost.".into(), "127.0.0.1".into()];
        let s = i.validate().unwrap();
        assert_eq!(s.allowed_hosts, vec!["acme.com", "localhost", "127.0.0.1"]);
        // a port is not part of an allowed host (every port is allowed)
        let mut i = input();
        i.allowed_hosts = vec!["localhost:3000".into()];
        assert_eq!(i.validate().unwrap_err().field, "allowed_hosts[0]");
        // only allowed_hosts: a branded domain or the cookie domain is never localhost
        let mut i = input();
        i.domains = vec!["localhost".into()];
        assert_eq!(i.validate().unwrap_err().field, "domains[0]");
        let mut i = input();
        i.banned_referrers = Some(vec!["localhost".into()]);
        assert_eq!(i.validate().unwrap_err().field, "banned_referrers[0]");
        // PATCH validates the same way
        let s = input().validate().unwrap();
        let p: ProgramPatch = crate::wire::from_str(r#"{"allowed_hosts":["acme.com","localhost"]}"#).unwrap();
        assert_eq!(s.apply(p).unwrap().allowed_hosts, vec!["acme.com", "localhost"]);
        // a link to the local app is then a valid destination
        let hosts = vec!["localhost".to_string()];
        assert!(crate::link::parse_destination("http://localhost:3000/pricing", &hosts).is_ok());
        assert!(crate::link::parse_destination("http://localhost.evil.com/", &hosts).is_err());
    }

    #[test]
    fn frame_ancestors_allow_loopback_on_any_port_and_scheme() {
        let hosts: Vec<String> = vec!["acme.com".into(), "localhost".into(), "127.0.0.1".into()];
        assert_eq!(
            frame_ancestors(&hosts),
            "frame-ancestors 'self' https://acme.com acme.com:* http://localhost:* https://localhost:* \
             http://127.0.0.1:* https://127.0.0.1:*"
        );
        assert_eq!(frame_ancestors(&[]), "frame-ancestors 'self'");
    }

    #[test]
    fn defaults_and_normalisation() {
        let s = input().validate().unwrap();
        assert_eq!(s.payout_currency.code(), "usd");
        assert_eq!(s.attribution_window_days, 90);
        assert_eq!(s.hold_days, 30);
        assert_eq!(s.min_payout, DEFAULT_MIN_PAYOUT);
        assert_eq!(s.attribution_model, Model::LastClick);
        assert_eq!(s.brand_color, DEFAULT_BRAND_COLOR);
        let back: ProgramSettings = crate::wire::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn refusals() {
        let cases: Vec<(Box<dyn Fn(&mut ProgramInput)>, &str)> = vec![
            (Box::new(|i| i.name = " ".into()), "name"),
            (Box::new(|i| i.payout_currency = "xyz".into()), "payout_currency"),
            (Box::new(|i| i.min_payout = Some(-1)), "min_payout"),
            (Box::new(|i| i.domains = vec![]), "domains"),
            (Box::new(|i| i.domains = vec!["bad host".into()]), "domains[0]"),
            (Box::new(|i| i.cookie_domain = Some("other.com".into())), "cookie_domain"),
            (Box::new(|i| i.brand_color = Some("red".into())), "brand_color"),
            (Box::new(|i| i.logo_url = Some("http://x.com/l.png".into())), "logo_url"),
            (Box::new(|i| i.attribution_window_days = Some(0)), "attribution_window_days"),
            (Box::new(|i| i.hold_days = Some(366)), "hold_days"),
        ];
        for (mutate, field) in cases {
            let mut i = input();
            mutate(&mut i);
            assert_eq!(i.validate().unwrap_err().field, field);
        }
    }

    #[test]
    fn unknown_fields_and_wrong_types_fail_to_parse() {
        assert!(crate::wire::from_str::<ProgramInput>(
            r#"{"name":"x","domains":[],"allowed_hosts":[],"payout_currency":"usd","bogus":1}"#
        )
        .is_err());
        assert!(crate::wire::from_str::<ProgramInput>(
            r#"{"name":"x","domains":[],"allowed_hosts":[],"payout_currency":"usd","min_payout":1.5}"#
        )
        .is_err());
        assert!(crate::wire::from_str::<ProgramInput>(
            r#"{"name":1,"domains":[],"allowed_hosts":[],"payout_currency":"usd"}"#
        )
        .is_err());
    }

    #[test]
    fn patch_revalidates_the_whole() {
        let s = input().validate().unwrap();
        let p: ProgramPatch = crate::wire::from_str(r#"{"hold_days":7,"logo_url":null,"cookie_domain":null}"#).unwrap();
        let t = s.apply(p).unwrap();
        assert_eq!(t.hold_days, 7);
        assert_eq!(t.cookie_domain, None);
        assert_eq!(t.name, s.name);
        // moving the domains away from the cookie domain is refused
        let p: ProgramPatch = crate::wire::from_str(r#"{"domains":["go.other.com"]}"#).unwrap();
        assert_eq!(s.apply(p).unwrap_err().field, "cookie_domain");
    }

    #[test]
    fn payout_mode_defaults_patches_and_reads_old_settings() {
        let s = input().validate().unwrap();
        assert_eq!(s.payout_mode, PayoutMode::Automatic);
        let p: ProgramPatch = crate::wire::from_str(r#"{"payout_mode":"review"}"#).unwrap();
        let t = s.apply(p).unwrap();
        assert_eq!(t.payout_mode, PayoutMode::Review);
        // a patch without it keeps it; a bad one is refused naming the field
        let t2 = t.apply(crate::wire::from_str(r#"{"hold_days":3}"#).unwrap()).unwrap();
        assert_eq!(t2.payout_mode, PayoutMode::Review);
        let e = crate::wire::from_str::<ProgramPatch>(r#"{"payout_mode":"later"}"#).unwrap_err().to_string();
        assert!(e.starts_with("payout_mode must be"), "{e}");
        let e = crate::wire::from_value::<ProgramInput>(serde_json::json!({"name":"x","domains":[],"allowed_hosts":[],
            "payout_currency":"usd","payout_mode":"manual"}))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("payout_mode must be"), "{e}");
        // settings stored before review mode read as automatic
        let mut v = serde_json::to_value(&s).unwrap();
        v.as_object_mut().unwrap().remove("payout_mode");
        let old: ProgramSettings = crate::wire::from_value(v).unwrap();
        assert_eq!(old.payout_mode, PayoutMode::Automatic);
        assert_eq!(serde_json::to_value(&t).unwrap()["payout_mode"], "review");
    }
}

/// A partner's commission terms in words, for the partner portal: `rewards` are the ones that
/// apply to the partner (override > group > program), `hold_days` and `min_payout` likewise.
pub fn describe_terms(s: &ProgramSettings, rewards: &crate::rules::Rewards, hold_days: u32, min_payout: i64) -> String {
    use crate::rules::{Reward, RewardType, Terms};
    let money = |a: i64| s.payout_currency.format(a);
    let rate = |t: &Terms| match t.kind {
        RewardType::Flat => money(t.amount),
        RewardType::Percentage => {
            let (whole, frac) = (t.amount / 100, t.amount % 100);
            if frac == 0 {
                format!("{whole}%")
            } else {
                format!("{whole}.{}%", format!("{frac:02}").trim_end_matches('0'))
            }
        }
    };
    let window = |t: &Terms| match t.duration_months {
        None => " for the lifetime of the customer".to_string(),
        Some(0) => " (first purchase only)".to_string(),
        Some(1) => " for 1 month after the customer's first purchase".to_string(),
        Some(n) => format!(" for {n} months after the customer's first purchase"),
    };
    let sale_terms = |t: &Terms| match t.kind {
        RewardType::Flat => format!("{} per sale", rate(t)),
        RewardType::Percentage => format!("{} of every sale", rate(t)),
    };
    let with_modifiers = |r: &Reward, base: String, one: &dyn Fn(&Terms) -> String| {
        if r.modifiers.is_empty() {
            return base;
        }
        let mut parts: Vec<String> = r
            .modifiers
            .iter()
            .map(|m| format!("{} {}", one(&Terms::of_modifier(m)), m.describe_conditions(&money)))
            .collect();
        parts.push(format!("{base} otherwise"));
        parts.join("; ")
    };
    let mut parts = Vec::new();
    if let Some(r) = &rewards.sale {
        let base = format!("{}{}", sale_terms(&Terms::of(r)), window(&Terms::of(r)));
        let mut text = with_modifiers(r, base, &|t| format!("{}{}", sale_terms(t), window(t)));
        if let Some(cap) = r.max_amount_per_customer {
            text.push_str(&format!(", up to {} per customer", money(cap)));
        }
        if let Some(n) = r.max_sales_per_customer {
            text.push_str(&format!(", on at most {n} sale{} per customer", if n == 1 { "" } else { "s" }));
        }
        parts.push(text);
    }
    if let Some(r) = &rewards.lead {
        let base = format!("{} per signup", rate(&Terms::of(r)));
        parts.push(with_modifiers(r, base, &|t| format!("{} per signup", rate(t))));
    }
    let earn = if parts.is_empty() {
        "No rewards are configured yet.".to_string()
    } else {
        format!("Earn {}.", parts.join(", and "))
    };
    let approval = match hold_days {
        0 => "Commissions are approved right away".to_string(),
        1 => "Commissions are approved after 1 day".to_string(),
        n => format!("Commissions are approved after {n} days"),
    };
    format!(
        "{earn} {approval} and paid {} once your balance reaches {}. Referrals are credited for {} days after a click ({}).",
        s.payout_schedule.describe(),
        money(min_payout),
        s.attribution_window_days,
        if s.attribution_model == Model::FirstClick { "first click wins" } else { "last click wins" }
    )
}

#[cfg(test)]
mod terms_tests {
    use super::*;

    #[test]
    fn terms_in_words() {
        let s: ProgramSettings = crate::wire::from_str::<ProgramInput>(
            r#"{"name":"A","domains":["go.a.com"],"allowed_hosts":["a.com"],"payout_currency":"usd",
                "rewards":{"lead":{"type":"flat","amount":500},"sale":{"type":"percentage","amount":2050,"duration_months":12}}}"#,
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(
            describe_terms(&s, &s.rewards, s.hold_days, s.min_payout),
            "Earn 20.5% of every sale for 12 months after the customer's first purchase, and 5.00 USD per signup. \
             Commissions are approved after 30 days and paid monthly on day 1 once your balance reaches 50.00 USD. \
             Referrals are credited for 90 days after a click (last click wins)."
        );
    }

    #[test]
    fn terms_with_modifiers_caps_and_group_terms() {
        let s: ProgramSettings = crate::wire::from_str::<ProgramInput>(
            r#"{"name":"A","domains":["go.a.com"],"allowed_hosts":["a.com"],"payout_currency":"usd"}"#,
        )
        .unwrap()
        .validate()
        .unwrap();
        let rewards: crate::rules::Rewards = crate::wire::from_str(
            r#"{"sale":{"type":"percentage","amount":2000,"max_amount_per_customer":10000,"modifiers":[
                {"conditions":[{"field":"product_id","op":"eq","value":"Pro plan"}],"type":"percentage","amount":3000},
                {"conditions":[{"field":"country","op":"in","value":["DE","AT"]},{"field":"customer_type","op":"eq","value":"new"}],
                 "type":"flat","amount":2500,"duration_months":0}]}}"#,
        )
        .unwrap();
        assert_eq!(
            describe_terms(&s, &rewards, 7, 1000),
            "Earn 30% of every sale for the lifetime of the customer on Pro plan; 25.00 USD per sale (first purchase only) \
             for customers in DE or AT and on a customer's first purchase; 20% of every sale for the lifetime of the customer \
             otherwise, up to 100.00 USD per customer. Commissions are approved after 7 days and paid monthly on day 1 once \
             your balance reaches 10.00 USD. Referrals are credited for 90 days after a click (last click wins)."
        );
    }
}
