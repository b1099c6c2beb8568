//! Fraud rules (issue 14): what a program does when a conversion or a payout looks wrong.
//!
//! A program's `fraud_rules` map each [`Rule`] to an [`Action`]: `hold` (the commission stays
//! `pending` with the rule in its `hold_reasons`, the cron never approves it, the merchant
//! approves or rejects it), `reject` (the commission is created `rejected`, the rule as its
//! reason) or `off`. Rules judge *signals*, facts the shell gathers when a commission is created
//! ([`Signals`]): the email checks need the lists the shell bundles (free-mail providers,
//! disposable domains), the click checks come with the converting click. [`judge`] turns
//! signals and rules into a [`Verdict`]; the rules in force when the commission is created are
//! the ones that count, so changing a rule never touches a commission already approved or paid.

use crate::error::Invalid;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;

/// A fraud rule; its code is what the API, the dashboard and webhooks show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// The customer's email is the partner's.
    SelfReferral,
    /// The customer's email domain is the partner's (free-mail providers excepted).
    EmailDomainMatch,
    /// The customer's email domain is a disposable-mail service.
    DisposableEmail,
    /// The converting click came with an ad platform's click id: a partner bidding on the brand.
    PaidTraffic,
    /// The converting visitor visited the partner's links more than the program's
    /// `click_spam_threshold` times in the 24 hours up to the converting click.
    ClickSpam,
    /// The partner is paid to the same Stripe account or bank account as another partner
    /// (judged on payouts, not on commissions).
    DuplicatePayoutAccount,
    /// The converting click came from one of the program's `banned_referrers`.
    BannedReferrer,
}

impl Rule {
    pub const ALL: [Rule; 7] = [
        Rule::SelfReferral,
        Rule::EmailDomainMatch,
        Rule::DisposableEmail,
        Rule::PaidTraffic,
        Rule::ClickSpam,
        Rule::DuplicatePayoutAccount,
        Rule::BannedReferrer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::SelfReferral => "self_referral",
            Rule::EmailDomainMatch => "email_domain_match",
            Rule::DisposableEmail => "disposable_email",
            Rule::PaidTraffic => "paid_traffic",
            Rule::ClickSpam => "click_spam",
            Rule::DuplicatePayoutAccount => "duplicate_payout_account",
            Rule::BannedReferrer => "banned_referrer",
        }
    }

    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The action of a program that does not set this rule.
    pub fn default_action(self) -> Action {
        match self {
            Rule::SelfReferral => Action::Reject,
            Rule::BannedReferrer => Action::Off,
            _ => Action::Hold,
        }
    }

    /// Whether `a` is an action this rule can take: a payout cannot be created rejected, so
    /// `duplicate_payout_account` is `hold` or `off`.
    pub fn allows(self, a: Action) -> bool {
        !(self == Rule::DuplicatePayoutAccount && a == Action::Reject)
    }

    /// What the rule checks, in words (dashboard and error messages).
    pub fn describe(self) -> &'static str {
        match self {
            Rule::SelfReferral => "the customer's email is the partner's",
            Rule::EmailDomainMatch => "the customer's email domain is the partner's",
            Rule::DisposableEmail => "the customer used a disposable email address",
            Rule::PaidTraffic => "the click came from a paid ad (gclid, msclkid, ttclid...)",
            Rule::ClickSpam => "the visitor clicked the partner's links unusually often",
            Rule::DuplicatePayoutAccount => "another partner is paid to the same account",
            Rule::BannedReferrer => "the click came from a banned referrer",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl crate::wire::FromJson for Rule {
    fn from_json(v: Value) -> Result<Self, crate::wire::Error> {
        use serde::de::Error as _;
        let s = String::from_json(v)?;
        Rule::parse(&s).ok_or_else(|| crate::wire::Error::custom(format!("unknown fraud rule `{s}`")))
    }
}

/// What a rule does when it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Hold,
    Reject,
    Off,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Hold, Action::Reject, Action::Off];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Hold => "hold",
            Action::Reject => "reject",
            Action::Off => "off",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Every rule's action (a rule a program never set has its [`Rule::default_action`]). On the
/// wire and in the stored settings: an object of every rule code to its action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FraudRules([Action; Rule::ALL.len()]);

impl Default for FraudRules {
    fn default() -> Self {
        FraudRules(Rule::ALL.map(Rule::default_action))
    }
}

impl FraudRules {
    pub fn action(&self, r: Rule) -> Action {
        self.0[r.index()]
    }

    pub fn with(mut self, r: Rule, a: Action) -> FraudRules {
        self.0[r.index()] = a;
        self
    }

    /// These rules with the rules named in `changes` (an object of rule code to action) set;
    /// a rule not named keeps its action. Unknown rules and actions are refused, with the field.
    pub fn apply(&self, field: &str, changes: &Map<String, Value>) -> Result<FraudRules, Invalid> {
        let mut out = *self;
        for (name, v) in changes {
            let f = format!("{field}.{name}");
            let rule = Rule::parse(name).ok_or_else(|| {
                let known = Rule::ALL.map(Rule::as_str).join(", ");
                Invalid::new(f.clone(), "unknown_fraud_rule", format!("`{name}` is not a fraud rule (one of {known})"))
            })?;
            let action = v.as_str().and_then(Action::parse).filter(|a| rule.allows(*a)).ok_or_else(|| {
                let allowed: Vec<&str> =
                    Action::ALL.into_iter().filter(|a| rule.allows(*a)).map(Action::as_str).collect();
                Invalid::new(f.clone(), "invalid_fraud_action", format!("{name} must be one of {}", allowed.join(", ")))
            })?;
            out.0[rule.index()] = action;
        }
        Ok(out)
    }
}

impl Serialize for FraudRules {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(Rule::ALL.len()))?;
        for r in Rule::ALL {
            m.serialize_entry(r.as_str(), self.action(r).as_str())?;
        }
        m.end()
    }
}

impl crate::wire::FromJson for FraudRules {
    fn from_json(v: Value) -> Result<Self, crate::wire::Error> {
        use serde::de::Error as _;
        let m = crate::wire::object(v, "a map")?;
        FraudRules::default().apply("fraud_rules", &m).map_err(|e| crate::wire::Error::custom(e.message))
    }
}

/// The largest `click_spam_threshold` a program may set.
pub const MAX_CLICK_SPAM_THRESHOLD: u32 = 10_000;
/// The default `click_spam_threshold`: clicks of one visitor on a link in 24 hours.
pub const DEFAULT_CLICK_SPAM_THRESHOLD: u32 = 20;
/// The most referrer hosts a program may ban.
pub const MAX_BANNED_REFERRERS: usize = 100;

/// What the shell found about a new commission's conversion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    pub self_referral: bool,
    pub email_domain_match: bool,
    pub disposable_email: bool,
    pub paid_traffic: bool,
    pub click_spam: bool,
    pub banned_referrer: bool,
}

impl Signals {
    /// The rules these signals match, in [`Rule::ALL`] order.
    pub fn matched(&self) -> Vec<Rule> {
        let on = [
            (Rule::SelfReferral, self.self_referral),
            (Rule::EmailDomainMatch, self.email_domain_match),
            (Rule::DisposableEmail, self.disposable_email),
            (Rule::PaidTraffic, self.paid_traffic),
            (Rule::ClickSpam, self.click_spam),
            (Rule::BannedReferrer, self.banned_referrer),
        ];
        on.into_iter().filter(|(_, b)| *b).map(|(r, _)| r).collect()
    }

    /// The click half of these signals (what a customer's attribution carries to later sales).
    pub fn click_part(&self) -> ClickSignals {
        ClickSignals {
            paid_traffic: self.paid_traffic,
            click_spam: self.click_spam,
            banned_referrer: self.banned_referrer,
        }
    }
}

/// What the converting click says (stored with the customer's attribution, so a later sale of
/// the customer is judged on the click that brought them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClickSignals {
    pub paid_traffic: bool,
    pub click_spam: bool,
    pub banned_referrer: bool,
}

impl ClickSignals {
    /// Stored form: the matched rule codes, comma-separated; `None` when none.
    pub fn to_stored(self) -> Option<String> {
        let codes: Vec<&str> = [
            (Rule::PaidTraffic, self.paid_traffic),
            (Rule::ClickSpam, self.click_spam),
            (Rule::BannedReferrer, self.banned_referrer),
        ]
        .into_iter()
        .filter(|(_, b)| *b)
        .map(|(r, _)| r.as_str())
        .collect();
        (!codes.is_empty()).then(|| codes.join(","))
    }

    /// Reads [`ClickSignals::to_stored`] back (unknown codes are ignored).
    pub fn from_stored(s: Option<&str>) -> ClickSignals {
        let has = |r: Rule| s.is_some_and(|s| s.split(',').any(|c| c == r.as_str()));
        ClickSignals {
            paid_traffic: has(Rule::PaidTraffic),
            click_spam: has(Rule::ClickSpam),
            banned_referrer: has(Rule::BannedReferrer),
        }
    }
}

/// What the rules decide for a new commission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing matched (or only rules that are off).
    Clear,
    /// Created `pending` and held for the merchant, with these reasons.
    Hold(Vec<Rule>),
    /// Created `rejected`, with this rule as the reason (the first rejecting rule in
    /// [`Rule::ALL`] order wins over any hold).
    Reject(Rule),
}

/// The verdict of `rules` on `signals`.
pub fn judge(rules: &FraudRules, signals: &Signals) -> Verdict {
    let matched = signals.matched();
    if let Some(r) = matched.iter().find(|r| rules.action(**r) == Action::Reject) {
        return Verdict::Reject(*r);
    }
    let held: Vec<Rule> = matched.into_iter().filter(|r| rules.action(*r) == Action::Hold).collect();
    if held.is_empty() {
        Verdict::Clear
    } else {
        Verdict::Hold(held)
    }
}

/// The domain of an email address (after the last `@`), lower-case, without a trailing dot.
pub fn email_domain(email: &str) -> Option<String> {
    let (_, d) = email.trim().rsplit_once('@')?;
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    (!d.is_empty() && d.contains('.')).then_some(d)
}

/// `a.b.example.com`, `b.example.com`, `example.com`: the domain and its parents down to two
/// labels, which is how the domain lists are matched (a disposable service's subdomains are
/// disposable too).
pub fn domain_and_parents(domain: &str) -> impl Iterator<Item = &str> {
    let dots: Vec<usize> = domain.match_indices('.').map(|(i, _)| i).collect();
    let keep = dots.len().saturating_sub(1);
    std::iter::once(domain).chain(dots.into_iter().take(keep).map(move |i| &domain[i + 1..]))
}

/// Whether a click's referrer host is one of the program's banned referrers or a subdomain of
/// one (`ads.spam.example` is banned with `spam.example`). Hosts are lower-case already.
pub fn referrer_banned(referrer_host: Option<&str>, banned: &[String]) -> bool {
    let Some(host) = referrer_host.filter(|h| !h.is_empty()) else {
        return false;
    };
    banned.iter().any(|b| {
        host == b || (host.len() > b.len() && host.ends_with(b.as_str()) && host[..host.len() - b.len()].ends_with('.'))
    })
}

/// What the lists say about a customer's email domain (or one of its parents).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmailFacts {
    /// A free-mail provider (gmail.com...): sharing it with the partner proves nothing.
    pub free_mail: bool,
    /// A disposable-mail service.
    pub disposable: bool,
}

impl EmailFacts {
    /// Looks the email's domain and its parents up (`is_free_mail`, `is_disposable`: exact
    /// domain lookups in the lists the shell bundles).
    pub fn of(email: Option<&str>, is_free_mail: impl Fn(&str) -> bool, is_disposable: impl Fn(&str) -> bool) -> Self {
        let Some(domain) = email.and_then(email_domain) else {
            return EmailFacts::default();
        };
        let free_mail = domain_and_parents(&domain).any(&is_free_mail);
        let disposable = domain_and_parents(&domain).any(&is_disposable);
        EmailFacts { free_mail, disposable }
    }
}

/// The email signals of a conversion (`self_referral`, `email_domain_match`,
/// `disposable_email`): the customer's email against the partner's and the lists' facts.
pub fn email_signals(customer_email: Option<&str>, partner_email: &str, facts: EmailFacts) -> (bool, bool, bool) {
    let self_referral = crate::commission::is_self_referral(customer_email, partner_email);
    let Some(domain) = customer_email.and_then(email_domain) else {
        return (self_referral, false, false);
    };
    let domain_match = !self_referral && !facts.free_mail && email_domain(partner_email).is_some_and(|p| p == domain);
    (self_referral, domain_match, facts.disposable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn free(d: &str) -> bool {
        ["gmail.com", "yahoo.co.jp"].contains(&d)
    }
    fn disposable(d: &str) -> bool {
        d == "mailinator.com"
    }

    #[test]
    fn defaults_and_wire_shape() {
        let r = FraudRules::default();
        assert_eq!(r.action(Rule::SelfReferral), Action::Reject);
        assert_eq!(r.action(Rule::BannedReferrer), Action::Off);
        for rule in [Rule::EmailDomainMatch, Rule::DisposableEmail, Rule::PaidTraffic, Rule::ClickSpam] {
            assert_eq!(r.action(rule), Action::Hold);
        }
        assert_eq!(r.action(Rule::DuplicatePayoutAccount), Action::Hold);
        let v = serde_json::to_value(r).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 7);
        assert_eq!(v["paid_traffic"], "hold");
        let back: FraudRules = crate::wire::from_value(v).unwrap();
        assert_eq!(back, r);
        // Stored settings written before the rules existed read as the defaults.
        let empty: FraudRules = crate::wire::from_str("{}").unwrap();
        assert_eq!(empty, r);
    }

    #[test]
    fn apply_names_the_field() {
        let r = FraudRules::default();
        let m = |j: &str| crate::wire::from_str::<Map<String, Value>>(j).unwrap();
        let e = r.apply("fraud_rules", &m(r#"{"bogus":"hold"}"#)).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("fraud_rules.bogus", "unknown_fraud_rule"));
        let e = r.apply("fraud_rules", &m(r#"{"paid_traffic":"block"}"#)).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("fraud_rules.paid_traffic", "invalid_fraud_action"));
        let e = r.apply("fraud_rules", &m(r#"{"click_spam":1}"#)).unwrap_err();
        assert_eq!(e.field, "fraud_rules.click_spam");
        let e = r.apply("fraud_rules", &m(r#"{"duplicate_payout_account":"reject"}"#)).unwrap_err();
        assert_eq!(e.field, "fraud_rules.duplicate_payout_account");
        let t = r.apply("fraud_rules", &m(r#"{"paid_traffic":"off","banned_referrer":"reject"}"#)).unwrap();
        assert_eq!((t.action(Rule::PaidTraffic), t.action(Rule::BannedReferrer)), (Action::Off, Action::Reject));
        assert_eq!(t.action(Rule::ClickSpam), Action::Hold, "rules not named keep their action");
    }

    #[test]
    fn verdicts() {
        let r = FraudRules::default();
        assert_eq!(judge(&r, &Signals::default()), Verdict::Clear);
        let s = Signals { paid_traffic: true, click_spam: true, ..Default::default() };
        assert_eq!(judge(&r, &s), Verdict::Hold(vec![Rule::PaidTraffic, Rule::ClickSpam]));
        let s = Signals { self_referral: true, paid_traffic: true, ..Default::default() };
        assert_eq!(judge(&r, &s), Verdict::Reject(Rule::SelfReferral), "a reject wins over holds");
        let s = Signals { banned_referrer: true, ..Default::default() };
        assert_eq!(judge(&r, &s), Verdict::Clear, "banned_referrer is off by default");
        let off = r.with(Rule::PaidTraffic, Action::Off);
        let s = Signals { paid_traffic: true, disposable_email: true, ..Default::default() };
        assert_eq!(judge(&off, &s), Verdict::Hold(vec![Rule::DisposableEmail]));
    }

    #[test]
    fn email_rules() {
        let sig = |c: &str, p: &str| email_signals(Some(c), p, EmailFacts::of(Some(c), free, disposable));
        assert_eq!(sig("ann@acme.com", "ann@acme.com"), (true, false, false));
        assert_eq!(sig("bob@acme.com", "ann@ACME.com"), (false, true, false));
        assert_eq!(sig("bob@gmail.com", "ann@gmail.com"), (false, false, false), "free mail is no match");
        assert_eq!(sig("bob@mail.yahoo.co.jp", "ann@mail.yahoo.co.jp"), (false, false, false));
        assert_eq!(sig("bob@mailinator.com", "ann@acme.com"), (false, false, true));
        assert_eq!(sig("bob@x.mailinator.com", "ann@acme.com"), (false, false, true), "subdomains too");
        assert_eq!(sig("bob@other.com", "ann@acme.com"), (false, false, false));
        assert_eq!(email_signals(None, "ann@acme.com", EmailFacts::default()), (false, false, false));
    }

    #[test]
    fn banned_referrers() {
        let banned = vec!["spam.example".to_string(), "ads.test".to_string()];
        assert!(referrer_banned(Some("spam.example"), &banned));
        assert!(referrer_banned(Some("www.spam.example"), &banned));
        assert!(!referrer_banned(Some("notspam.example"), &banned));
        assert!(!referrer_banned(Some("spam.example.org"), &banned));
        assert!(!referrer_banned(None, &banned));
        assert!(!referrer_banned(Some("spam.example"), &[]));
    }

    #[test]
    fn parents() {
        let v: Vec<&str> = domain_and_parents("a.b.example.com").collect();
        assert_eq!(v, ["a.b.example.com", "b.example.com", "example.com"]);
        assert_eq!(domain_and_parents("example.com").collect::<Vec<_>>(), ["example.com"]);
    }

    #[test]
    fn click_signals_round_trip() {
        for bits in 0..8u8 {
            let c =
                ClickSignals { paid_traffic: bits & 1 != 0, click_spam: bits & 2 != 0, banned_referrer: bits & 4 != 0 };
            assert_eq!(ClickSignals::from_stored(c.to_stored().as_deref()), c);
        }
        assert_eq!(ClickSignals::default().to_stored(), None);
    }

    proptest! {
        /// A verdict only ever names matched rules, and never one that is off.
        #[test]
        fn verdict_respects_actions(bits in 0u8..64, acts in proptest::collection::vec(0usize..3, 7)) {
            let mut rules = FraudRules::default();
            for (r, a) in Rule::ALL.into_iter().zip(acts) {
                let a = Action::ALL[a];
                if r.allows(a) { rules = rules.with(r, a); }
            }
            let s = Signals {
                self_referral: bits & 1 != 0, email_domain_match: bits & 2 != 0, disposable_email: bits & 4 != 0,
                paid_traffic: bits & 8 != 0, click_spam: bits & 16 != 0, banned_referrer: bits & 32 != 0,
            };
            let matched = s.matched();
            match judge(&rules, &s) {
                Verdict::Clear => prop_assert!(matched.iter().all(|r| rules.action(*r) == Action::Off)),
                Verdict::Hold(h) => {
                    prop_assert!(!h.is_empty());
                    prop_assert!(h.iter().all(|r| matched.contains(r) && rules.action(*r) == Action::Hold));
                    prop_assert!(matched.iter().all(|r| rules.action(*r) != Action::Reject));
                }
                Verdict::Reject(r) => prop_assert!(matched.contains(&r) && rules.action(r) == Action::Reject),
            }
        }
    }
}
