//! Coupon codes (issue 16): a code a partner reads out (on video, in a newsletter) that the buyer
//! types at checkout. A conversion that carries one is attributed to the code's partner as if
//! the buyer had just clicked that partner's link, but with no click and no link:
//!
//! - a customer with no partner (or a new one) is attributed to the code's partner;
//! - under `last_click` the code overrides an earlier attribution (the buyer chose it last);
//! - under `first_click` a customer who already has a partner keeps it;
//! - the code of a banned partner counts like a banned partner's click: for nothing;
//! - an unknown, deleted or malformed code is never an error: the conversion is recorded as it
//!   would be without it, and an otherwise unattributed one says `coupon_not_found`.
//!
//! Codes are unique per program without regard to case: [`CouponCode`] keeps the code as
//! entered (for display) and its lower-case key (for lookups and the unique index).

use crate::attribution::Model;
use crate::conversion::{
    self, AttributionOutcome, CustomerFacts, LeadDecision, LeadFacts, LeadRequest, LoadedClick, PartnerFacts,
    PricedSale, SaleDecision, SaleFacts, SaleRequest,
};
use crate::error::Invalid;
use crate::fraud::ClickSignals;
use crate::partner::PartnerStatus;

/// Shortest and longest code.
pub const MIN_LEN: usize = 3;
pub const MAX_LEN: usize = 40;
/// Longest text of a sent code kept with a conversion (a longer one is no code anyway).
pub const MAX_SENT: usize = 64;

/// A well-formed coupon code: 3 to 40 of `[A-Za-z0-9_-]`, compared without regard to case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CouponCode {
    /// As entered (trimmed): what the dashboard and the partner see.
    pub code: String,
    /// Lower-case: what identifies the code in its program.
    pub key: String,
}

impl CouponCode {
    /// A code from its text (surrounding whitespace ignored), or `None`.
    pub fn try_parse(s: &str) -> Option<CouponCode> {
        let code = s.trim();
        let ok = (MIN_LEN..=MAX_LEN).contains(&code.len())
            && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        // ASCII only: the charset has no other letters, so no Unicode tables are needed.
        ok.then(|| CouponCode { code: code.to_string(), key: code.to_ascii_lowercase() })
    }

    /// A code sent to be created, or a 422 naming `field`.
    pub fn parse(field: &str, s: &str) -> Result<CouponCode, Invalid> {
        CouponCode::try_parse(s).ok_or_else(|| {
            Invalid::new(
                field,
                "invalid_coupon_code",
                format!("{field} must be {MIN_LEN} to {MAX_LEN} letters, digits, `_` or `-`"),
            )
        })
    }
}

/// The `coupon_code` of a conversion as it is recorded: trimmed, control characters dropped, at
/// most [`MAX_SENT`] characters; absent or blank is none. Never an error: whatever a buyer typed
/// is kept, and only a well-formed code of the program attributes.
pub fn sent(v: Option<String>) -> Option<String> {
    let t: String = v?.trim().chars().filter(|c| !c.is_control()).take(MAX_SENT).collect();
    (!t.is_empty()).then_some(t)
}

/// The live coupon a conversion's code names, with its partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedCoupon {
    pub id: String,
    pub program_id: String,
    pub partner_id: String,
    /// `None` when the partner row is gone (such a code credits nobody).
    pub partner: Option<PartnerFacts>,
}

impl LoadedCoupon {
    fn usable(&self) -> Option<&PartnerFacts> {
        self.partner.as_ref().filter(|p| p.status != PartnerStatus::Banned && p.id == self.partner_id)
    }

    /// The coupon as the attribution rules see it: a click of its partner at `now`, with no
    /// click id and no link (both empty: the store records them as none).
    pub fn as_click(&self, now: i64) -> LoadedClick {
        LoadedClick {
            click_id: String::new(),
            program_id: self.program_id.clone(),
            link_id: String::new(),
            partner_id: self.partner_id.clone(),
            at: now,
            partner: self.partner.clone(),
            signals: ClickSignals::default(),
            country: None,
        }
    }
}

/// The reason an unattributed conversion gets from a code that credited nobody: unknown
/// (`coupon_not_found`) or its partner's (`partner_banned`); any other reason stays.
fn unused_code_reason(a: AttributionOutcome, coupon: Option<&LoadedCoupon>) -> AttributionOutcome {
    let default_reason = matches!(a, AttributionOutcome::NoAttribution | AttributionOutcome::ClickNotFound);
    match coupon {
        _ if a.is_attributed() || !default_reason => a,
        None => AttributionOutcome::CouponNotFound,
        Some(_) => AttributionOutcome::PartnerBanned,
    }
}

/// A lead with its coupon (`coupon`: the live coupon its code named, if any). Without a code the
/// lead is decided as ever ([`conversion::decide_lead`]); with a usable one its partner is
/// credited when the model lets it: always under `last_click` (unless the click credited is
/// already that partner's: the click says more), under `first_click` only when nobody else is.
pub fn decide_lead(lead: &LeadRequest, f: &LeadFacts<'_>, coupon: Option<&LoadedCoupon>) -> LeadDecision {
    let mut base = conversion::decide_lead(lead, f);
    if lead.coupon_code.is_none() {
        return base;
    }
    let usable = coupon.filter(|c| c.usable().is_some() && c.program_id == f.program_id);
    let Some(c) = usable else {
        base.attribution = unused_code_reason(base.attribution, coupon);
        return base;
    };
    let credited = base.credited.as_ref().map(|k| k.partner_id.as_str());
    let takes_over = match credited {
        None => true,
        Some(p) if p == c.partner_id => false,
        Some(_) => f.program.attribution_model == Model::LastClick,
    };
    if !takes_over {
        return base;
    }
    conversion::decide_lead(lead, &LeadFacts { presented: Some(c.as_click(f.now)), existing: None, ..f.clone() })
}

/// What a sale's coupon did, beyond [`SaleDecision`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SaleCoupon {
    /// The customer is (re)attributed to this partner (no click, no link), before the sale.
    pub attribute_to: Option<String>,
}

/// A sale with its coupon. Without a code: [`conversion::decide_sale`]. With a usable one, the
/// code's partner takes the customer when it has no partner (or a banned one) and, under
/// `last_click`, from any other partner; the sale is then decided as the new partner's (a new
/// customer is created attributed to it).
pub fn decide_sale(
    sale: &SaleRequest,
    priced: &PricedSale,
    f: &SaleFacts<'_>,
    code_sent: bool,
    coupon: Option<&LoadedCoupon>,
) -> (SaleDecision, SaleCoupon) {
    let partner_now = f.customer.as_ref().and_then(|c| c.partner.as_ref());
    let usable = coupon.and_then(|c| c.usable().map(|p| (c, p)));
    let takes_over = match (usable, partner_now) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(_), Some(p)) if p.status == PartnerStatus::Banned => true,
        (Some((c, _)), Some(p)) if p.id == c.partner_id => false,
        (Some(_), Some(_)) => f.program.attribution_model == Model::LastClick,
    };
    match usable {
        Some((c, p)) if takes_over => {
            let customer = match &f.customer {
                Some(cu) => CustomerFacts {
                    click_id: None,
                    partner: Some(p.clone()),
                    click_signals: ClickSignals::default(),
                    // What the customer earned another partner does not count against this
                    // one's caps (the write checks them again against the stored rows).
                    earned: if cu.partner.as_ref().is_some_and(|x| x.id == p.id) {
                        cu.earned
                    } else {
                        Default::default()
                    },
                    ..cu.clone()
                },
                None => CustomerFacts {
                    click_id: None,
                    first_sale_at: None,
                    partner: Some(p.clone()),
                    email: None,
                    click_signals: ClickSignals::default(),
                    country: None,
                    earned: Default::default(),
                },
            };
            let mut d = conversion::decide_sale(sale, priced, &SaleFacts { customer: Some(customer), ..f.clone() });
            d.create_customer = f.customer.is_none();
            (d, SaleCoupon { attribute_to: Some(c.partner_id.clone()) })
        }
        _ => {
            let mut d = conversion::decide_sale(sale, priced, f);
            if code_sent {
                d.attribution = unused_code_reason(d.attribution, coupon);
            }
            (d, SaleCoupon::default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commission::Kind;
    use crate::fraud::EmailFacts;
    use crate::money::Currency;
    use crate::program::{ProgramInput, ProgramSettings};
    use crate::rules::{Reward, RewardType, Rewards};
    use crate::time::DAY_MS;
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000_000;
    const P: &str = "prog_1";

    fn program(model: Model) -> ProgramSettings {
        let mut s = ProgramInput {
            name: "Acme".into(),
            domains: vec!["go.example.com".into()],
            allowed_hosts: vec!["example.com".into()],
            payout_currency: "usd".into(),
            ..Default::default()
        }
        .validate()
        .unwrap();
        s.attribution_model = model;
        s.rewards = Rewards {
            lead: Some(Reward::new(RewardType::Flat, 500, None)),
            sale: Some(Reward::new(RewardType::Percentage, 2000, None)),
        };
        s
    }

    fn partner(id: &str, status: PartnerStatus) -> PartnerFacts {
        PartnerFacts { id: id.into(), email: format!("{id}@partners.test"), status, rewards: None, group_rewards: None }
    }

    fn coupon(partner_id: &str, status: PartnerStatus) -> LoadedCoupon {
        LoadedCoupon {
            id: format!("cpn_{partner_id}"),
            program_id: P.into(),
            partner_id: partner_id.into(),
            partner: Some(partner(partner_id, status)),
        }
    }

    fn click(partner_id: &str, at: i64) -> LoadedClick {
        LoadedClick {
            click_id: format!("clk_{partner_id}"),
            program_id: P.into(),
            link_id: format!("link_{partner_id}"),
            partner_id: partner_id.into(),
            at,
            partner: Some(partner(partner_id, PartnerStatus::Active)),
            signals: ClickSignals::default(),
            country: None,
        }
    }

    fn lead(code: Option<&str>) -> LeadRequest {
        conversion::parse_lead(conversion::LeadInput {
            click_id: String::new(),
            customer_external_id: "user_1".into(),
            customer_email: None,
            customer_name: None,
            event_name: None,
            program_id: None,
            coupon_code: code.map(str::to_string),
        })
        .unwrap()
    }

    fn decide_lead_with(
        model: Model,
        code: Option<&str>,
        c: Option<LoadedCoupon>,
        presented: Option<LoadedClick>,
        existing: Option<LoadedClick>,
    ) -> LeadDecision {
        let s = program(model);
        let f = LeadFacts { program_id: P, program: &s, presented, existing, email: EmailFacts::default(), now: NOW };
        decide_lead(&lead(code), &f, c.as_ref())
    }

    fn customer(p: Option<PartnerFacts>) -> CustomerFacts {
        CustomerFacts {
            click_id: Some("clk_x".into()),
            first_sale_at: None,
            partner: p,
            email: None,
            click_signals: ClickSignals::default(),
            country: None,
            earned: Default::default(),
        }
    }

    fn decide_sale_with(
        model: Model,
        code_sent: bool,
        c: Option<LoadedCoupon>,
        cu: Option<CustomerFacts>,
    ) -> (SaleDecision, SaleCoupon) {
        let s = program(model);
        let f = SaleFacts { program: &s, customer: cu, email: EmailFacts::default(), now: NOW };
        let sale = conversion::parse_sale(conversion::SaleInput {
            customer_external_id: "user_1".into(),
            amount: 10_000,
            currency: "usd".into(),
            invoice_id: "in_1".into(),
            event_name: None,
            metadata: None,
            payout_amount: None,
            program_id: None,
            product_id: None,
            coupon_code: None,
        })
        .unwrap();
        decide_sale(&sale, &PricedSale { base: 10_000, payout_amount: None }, &f, code_sent, c.as_ref())
    }

    #[test]
    fn codes_parse_case_insensitively() {
        let c = CouponCode::try_parse("  Summer-20_X ").unwrap();
        assert_eq!((c.code.as_str(), c.key.as_str()), ("Summer-20_X", "summer-20_x"));
        assert_eq!(CouponCode::try_parse("SUMMER-20_x").unwrap().key, c.key);
        assert!(CouponCode::try_parse("abc").is_some());
        assert!(CouponCode::try_parse(&"a".repeat(40)).is_some());
        for bad in ["", "ab", "  ab ", &"a".repeat(41), "sum mer", "été20", "a.b.c", "ab\u{0}c", "50%off"] {
            assert_eq!(CouponCode::try_parse(bad), None, "{bad:?}");
        }
        let e = CouponCode::parse("code", "no").unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("code", "invalid_coupon_code"));
        assert_eq!(e.message, "code must be 3 to 40 letters, digits, `_` or `-`");
    }

    #[test]
    fn sent_codes_are_kept_never_refused() {
        assert_eq!(sent(None), None);
        assert_eq!(sent(Some("  ".into())), None);
        assert_eq!(sent(Some(" Jane10 ".into())).as_deref(), Some("Jane10"));
        assert_eq!(sent(Some("a\u{7}b".into())).as_deref(), Some("ab"));
        assert_eq!(sent(Some("é".repeat(100))).map(|s| s.chars().count()), Some(MAX_SENT));
    }

    #[test]
    fn a_code_attributes_a_new_customer_and_earns_the_lead() {
        for model in Model::ALL {
            let d = decide_lead_with(model, Some("JANE"), Some(coupon("pn_j", PartnerStatus::Active)), None, None);
            assert_eq!(d.attribution, AttributionOutcome::Attributed);
            let k = d.credited.unwrap();
            assert_eq!((k.partner_id.as_str(), k.click_id.as_str(), k.link_id.as_str(), k.at), ("pn_j", "", "", NOW));
            let cm = d.commission.unwrap();
            assert_eq!((cm.partner_id.as_str(), cm.kind, cm.amount), ("pn_j", Kind::Lead, 500));
        }
    }

    #[test]
    fn last_click_code_overrides_first_click_keeps() {
        let old = click("pn_a", NOW - DAY_MS);
        let j = coupon("pn_j", PartnerStatus::Active);
        // Existing attribution, and a click presented with the lead: the code wins under last_click.
        for (presented, existing) in [(None, Some(old.clone())), (Some(old.clone()), None)] {
            let d = decide_lead_with(Model::LastClick, Some("j"), Some(j.clone()), presented.clone(), existing.clone());
            assert_eq!(d.credited.map(|k| k.partner_id), Some("pn_j".into()));
            let d = decide_lead_with(Model::FirstClick, Some("j"), Some(j.clone()), presented, existing);
            assert_eq!(d.credited.map(|k| k.partner_id), Some("pn_a".into()));
        }
        // The code of the partner whose click is credited keeps the click (and its link).
        let mine = click("pn_j", NOW - DAY_MS);
        let d = decide_lead_with(Model::LastClick, Some("j"), Some(j.clone()), Some(mine.clone()), None);
        assert_eq!(d.credited.map(|k| k.click_id), Some(mine.click_id));
        // first_click: an expired existing attribution does not hold the customer.
        let expired = click("pn_a", NOW - 200 * DAY_MS);
        let d = decide_lead_with(Model::FirstClick, Some("j"), Some(j), None, Some(expired));
        assert_eq!(d.credited.map(|k| k.partner_id), Some("pn_j".into()));
    }

    #[test]
    fn unknown_and_banned_codes_change_nothing_but_the_reason() {
        let banned = coupon("pn_b", PartnerStatus::Banned);
        for model in Model::ALL {
            let d = decide_lead_with(model, Some("nope"), None, None, None);
            assert_eq!((d.attribution, d.credited, d.commission), (AttributionOutcome::CouponNotFound, None, None));
            let d = decide_lead_with(model, Some("b"), Some(banned.clone()), None, None);
            assert_eq!((d.attribution, d.credited), (AttributionOutcome::PartnerBanned, None));
            // Without a code the reason is the click's.
            assert_eq!(decide_lead_with(model, None, None, None, None).attribution, AttributionOutcome::ClickNotFound);
            // An attributed lead stays attributed to its click.
            let a = click("pn_a", NOW - DAY_MS);
            for c in [None, Some(banned.clone())] {
                let d = decide_lead_with(model, Some("x"), c, Some(a.clone()), None);
                assert_eq!(
                    (d.attribution, d.credited.map(|k| k.partner_id)),
                    (AttributionOutcome::Attributed, Some("pn_a".into()))
                );
            }
            // An expired click keeps its own reason.
            let old = click("pn_a", NOW - 200 * DAY_MS);
            let d = decide_lead_with(model, Some("x"), None, Some(old), None);
            assert_eq!(d.attribution, AttributionOutcome::ClickExpired);
        }
        // A coupon of another program, or whose partner row is gone, credits nobody.
        let other = LoadedCoupon { program_id: "prog_2".into(), ..coupon("pn_j", PartnerStatus::Active) };
        assert_eq!(decide_lead_with(Model::LastClick, Some("j"), Some(other), None, None).credited, None);
        let gone = LoadedCoupon { partner: None, ..coupon("pn_j", PartnerStatus::Active) };
        assert_eq!(decide_lead_with(Model::LastClick, Some("j"), Some(gone), None, None).credited, None);
    }

    #[test]
    fn a_sale_with_a_code_creates_the_customer_attributed() {
        for model in Model::ALL {
            let (d, c) = decide_sale_with(model, true, Some(coupon("pn_j", PartnerStatus::Active)), None);
            assert!(d.create_customer);
            assert_eq!(
                (d.attribution, d.partner_id.as_deref(), d.click_id),
                (AttributionOutcome::Attributed, Some("pn_j"), None)
            );
            assert_eq!(d.commission.map(|c| (c.partner_id, c.amount)), Some(("pn_j".into(), 2000)));
            assert_eq!(c.attribute_to.as_deref(), Some("pn_j"));
        }
    }

    #[test]
    fn sale_models_and_reasons() {
        let j = Some(coupon("pn_j", PartnerStatus::Active));
        let a = customer(Some(partner("pn_a", PartnerStatus::Active)));
        let (d, c) = decide_sale_with(Model::LastClick, true, j.clone(), Some(a.clone()));
        assert_eq!((d.partner_id.as_deref(), d.click_id, d.create_customer), (Some("pn_j"), None, false));
        assert_eq!(c.attribute_to.as_deref(), Some("pn_j"));
        let (d, c) = decide_sale_with(Model::FirstClick, true, j.clone(), Some(a.clone()));
        assert_eq!(
            (d.partner_id.as_deref(), d.click_id.as_deref(), c),
            (Some("pn_a"), Some("clk_x"), SaleCoupon::default())
        );
        // A customer with no partner, or a banned one, is taken under both models.
        for p in [None, Some(partner("pn_a", PartnerStatus::Banned))] {
            for model in Model::ALL {
                let (d, c) = decide_sale_with(model, true, j.clone(), Some(customer(p.clone())));
                assert_eq!((d.partner_id.as_deref(), c.attribute_to.as_deref()), (Some("pn_j"), Some("pn_j")));
            }
        }
        // The customer's own partner's code: nothing to change.
        let own = customer(Some(partner("pn_j", PartnerStatus::Active)));
        let (d, c) = decide_sale_with(Model::LastClick, true, j, Some(own));
        assert_eq!((d.click_id.as_deref(), c.attribute_to), (Some("clk_x"), None));
        // Unknown and banned codes: the sale as without them, and the reason when unattributed.
        let (d, c) = decide_sale_with(Model::LastClick, true, None, None);
        assert_eq!(
            (d.attribution, d.create_customer, c.attribute_to),
            (AttributionOutcome::CouponNotFound, true, None)
        );
        let banned = Some(coupon("pn_b", PartnerStatus::Banned));
        let (d, _) = decide_sale_with(Model::LastClick, true, banned.clone(), Some(customer(None)));
        assert_eq!(d.attribution, AttributionOutcome::PartnerBanned);
        let (d, _) = decide_sale_with(Model::LastClick, true, banned, Some(a.clone()));
        assert_eq!((d.attribution, d.partner_id.as_deref()), (AttributionOutcome::Attributed, Some("pn_a")));
        let (d, _) = decide_sale_with(Model::LastClick, false, None, None);
        assert_eq!(d.attribution, AttributionOutcome::NoAttribution);
    }

    proptest! {
        #[test]
        fn parsed_codes_are_well_formed(s in "[ ]{0,2}[A-Za-z0-9_\\-.% é]{0,45}[ ]{0,2}") {
            match CouponCode::try_parse(&s) {
                Some(c) => {
                    prop_assert_eq!(c.code.as_str(), s.trim());
                    prop_assert!((MIN_LEN..=MAX_LEN).contains(&c.code.len()));
                    prop_assert_eq!(c.key.clone(), c.code.to_lowercase());
                    // Case never changes the identity.
                    prop_assert_eq!(CouponCode::try_parse(&s.to_uppercase()).map(|u| u.key), Some(c.key));
                }
                None => {
                    let t = s.trim();
                    let ok_chars = t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    prop_assert!(!ok_chars || !(MIN_LEN..=MAX_LEN).contains(&t.len()));
                }
            }
        }

        #[test]
        fn the_credited_partner_follows_the_model(
            last: bool, has_existing: bool, existing_banned: bool, code: u8, age_days in 0i64..200,
        ) {
            let model = if last { Model::LastClick } else { Model::FirstClick };
            let status = if existing_banned { PartnerStatus::Banned } else { PartnerStatus::Active };
            let existing = has_existing.then(|| LoadedClick {
                partner: Some(partner("pn_a", status)),
                ..click("pn_a", NOW - age_days * DAY_MS)
            });
            // 0: no code; 1: unknown; 2: banned partner's; 3: usable.
            let (sent, c) = match code % 4 {
                0 => (None, None),
                1 => (Some("zzz"), None),
                2 => (Some("bbb"), Some(coupon("pn_b", PartnerStatus::Banned))),
                _ => (Some("jjj"), Some(coupon("pn_j", PartnerStatus::Active))),
            };
            let base = decide_lead_with(model, None, None, None, existing.clone());
            let d = decide_lead_with(model, sent, c, None, existing);
            let got = d.credited.as_ref().map(|k| k.partner_id.as_str());
            let before = base.credited.as_ref().map(|k| k.partner_id.as_str());
            match code % 4 {
                3 if last || before.is_none() => prop_assert_eq!(got, Some("pn_j")),
                _ => prop_assert_eq!(got, before),
            }
            prop_assert_eq!(d.attribution.is_attributed(), got.is_some());
            prop_assert!(got != Some("pn_b"));
            prop_assert_eq!(d.commission.is_some(), got.is_some());
        }
    }

    #[test]
    fn currency_is_the_programs() {
        let (d, _) = decide_sale_with(Model::LastClick, true, Some(coupon("pn_j", PartnerStatus::Active)), None);
        assert_eq!(d.commission.unwrap().currency, Currency::parse("usd").unwrap());
    }
}
