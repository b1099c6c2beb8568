//! Attribution: which partner gets the credit for a lead.
//!
//! The shell resolves the click id the lead carried (from the cookie / `refport_id`) into
//! [`ClickFacts`], or `None` when the id is unknown, malformed or forged, and loads the
//! customer's current attribution (from an earlier lead), then calls [`attribute`]. The
//! result is never an error: a lead that cannot be attributed is recorded unattributed with a
//! [`Reason`], and earns no commission.

use crate::time::DAY_MS;
use serde::Serialize;
use std::fmt;

/// Attribution window used when a program does not set one.
pub const DEFAULT_WINDOW_DAYS: u32 = 90;
/// How far in the future a click time may be (clock skew between isolates) and still count.
pub const CLICK_SKEW_MS: i64 = 5 * 60 * 1000;

/// Which click wins when a customer clicked several partners' links.
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// The newest valid click wins (default).
    #[default]
    LastClick,
    /// The customer's existing attribution wins while it is inside the window.
    FirstClick,
}

crate::from_json_enum!(Model { LastClick = "last_click", FirstClick = "first_click" });

impl Model {
    pub const ALL: [Model; 2] = [Model::LastClick, Model::FirstClick];

    pub fn as_str(self) -> &'static str {
        match self {
            Model::LastClick => "last_click",
            Model::FirstClick => "first_click",
        }
    }

    pub fn parse(s: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

crate::from_json! {
    /// What the core needs to know about a click.
    #[derive(Serialize, Clone, Debug, PartialEq, Eq)]
    pub struct ClickFacts {
        pub click_id: String,
        pub program_id: String,
        pub partner_id: String,
        pub link_id: String,
        /// Click time, UTC ms.
        pub at: i64,
        /// The click's partner is banned from the program.
        pub partner_banned: bool,
    }
}

/// Why a lead was recorded without a partner.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No click id, or one that is unknown, malformed or forged.
    ClickNotFound,
    /// The click is older than the program's attribution window.
    ClickExpired,
    /// The click time is later than now (beyond the allowed skew).
    ClickInFuture,
    /// The click belongs to another program.
    ClickOtherProgram,
    /// The click's partner is banned.
    PartnerBanned,
}

impl Reason {
    /// Stable machine-readable code, stored with the lead.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ClickNotFound => "click_not_found",
            Reason::ClickExpired => "click_expired",
            Reason::ClickInFuture => "click_in_future",
            Reason::ClickOtherProgram => "click_other_program",
            Reason::PartnerBanned => "partner_banned",
        }
    }

    /// A sentence for the merchant's dashboard.
    pub fn message(self) -> &'static str {
        match self {
            Reason::ClickNotFound => "No valid referral click was found for this lead.",
            Reason::ClickExpired => "The referral click is older than the program's attribution window.",
            Reason::ClickInFuture => "The referral click has a time in the future.",
            Reason::ClickOtherProgram => "The referral click belongs to another program.",
            Reason::PartnerBanned => "The referring partner is banned from the program.",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome for a lead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attribution {
    /// Credit goes to this click's partner.
    Attributed(ClickFacts),
    /// No partner; the lead is still recorded, with this reason and no commission.
    Unattributed(Reason),
}

impl Attribution {
    /// The winning click, if any.
    pub fn click(&self) -> Option<&ClickFacts> {
        match self {
            Attribution::Attributed(c) => Some(c),
            Attribution::Unattributed(_) => None,
        }
    }

    /// The reason, when unattributed.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Attribution::Attributed(_) => None,
            Attribution::Unattributed(r) => Some(*r),
        }
    }
}

/// Whether `click` may be credited now in `program_id`, else why not.
pub fn check_click(program_id: &str, window_days: u32, now: i64, click: &ClickFacts) -> Result<(), Reason> {
    if click.program_id != program_id {
        return Err(Reason::ClickOtherProgram);
    }
    if click.partner_banned {
        return Err(Reason::PartnerBanned);
    }
    // i128: never overflows whatever the stored times are.
    let age = now as i128 - click.at as i128;
    if age < -(CLICK_SKEW_MS as i128) {
        return Err(Reason::ClickInFuture);
    }
    if age > window_days as i128 * DAY_MS as i128 {
        return Err(Reason::ClickExpired);
    }
    Ok(())
}

/// Decides which click (if any) a lead in `program_id` is credited to at `now`.
///
/// - `presented`: the click the lead carried, resolved by the shell; `None` when there was no
///   click id or it is unknown, malformed or forged.
/// - `existing`: the click the customer is currently attributed to (from an earlier lead).
///
/// A click counts only when it belongs to the program, its partner is not banned, and
/// `now - at <= window_days` days (with [`CLICK_SKEW_MS`] tolerated for future times).
/// With [`Model::LastClick`] a valid presented click wins unless the valid existing one is
/// newer; with [`Model::FirstClick`] a valid existing click wins. When neither counts, the
/// reason is the presented click's, else the existing click's, else `click_not_found`.
pub fn attribute(
    program_id: &str,
    model: Model,
    window_days: u32,
    now: i64,
    presented: Option<ClickFacts>,
    existing: Option<ClickFacts>,
) -> Attribution {
    let check = |c: &ClickFacts| check_click(program_id, window_days, now, c);
    let presented = presented.map(|c| check(&c).map(|()| c));
    let existing = existing.map(|c| check(&c).map(|()| c));

    match (presented, existing) {
        (Some(Ok(p)), Some(Ok(e))) => {
            let keep_existing = match model {
                Model::FirstClick => true,
                Model::LastClick => e.at > p.at,
            };
            Attribution::Attributed(if keep_existing { e } else { p })
        }
        (Some(Ok(p)), _) => Attribution::Attributed(p),
        (_, Some(Ok(e))) => Attribution::Attributed(e),
        (Some(Err(r)), _) | (None, Some(Err(r))) => Attribution::Unattributed(r),
        (None, None) => Attribution::Unattributed(Reason::ClickNotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000_000;
    const P: &str = "prog_1";

    fn click(id: &str, partner: &str, at: i64) -> ClickFacts {
        ClickFacts {
            click_id: id.into(),
            program_id: P.into(),
            partner_id: partner.into(),
            link_id: format!("link_{partner}"),
            at,
            partner_banned: false,
        }
    }

    fn run(model: Model, presented: Option<ClickFacts>, existing: Option<ClickFacts>) -> Attribution {
        attribute(P, model, DEFAULT_WINDOW_DAYS, NOW, presented, existing)
    }

    #[test]
    fn model_codes() {
        for m in Model::ALL {
            assert_eq!(Model::parse(m.as_str()), Some(m));
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{}\"", m.as_str()));
        }
        assert_eq!(Model::default(), Model::LastClick);
        assert_eq!(Model::parse("LAST_CLICK"), None);
        assert_eq!(Model::parse(""), None);
    }

    #[test]
    fn reason_codes_and_messages() {
        let all = [
            Reason::ClickNotFound,
            Reason::ClickExpired,
            Reason::ClickInFuture,
            Reason::ClickOtherProgram,
            Reason::PartnerBanned,
        ];
        for r in all {
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{}\"", r.as_str()));
            assert_eq!(r.to_string(), r.as_str());
            assert!(!r.message().is_empty());
        }
    }

    #[test]
    fn valid_click_is_attributed() {
        let c = click("c1", "a", NOW - DAY_MS);
        let got = run(Model::LastClick, Some(c.clone()), None);
        assert_eq!(got, Attribution::Attributed(c.clone()));
        assert_eq!(got.click().map(|c| c.partner_id.as_str()), Some("a"));
        assert_eq!(got.reason(), None);
        assert_eq!(run(Model::FirstClick, Some(c.clone()), None), Attribution::Attributed(c));
    }

    #[test]
    fn window_edges() {
        let w = DEFAULT_WINDOW_DAYS as i64 * DAY_MS;
        let edge = click("c", "a", NOW - w);
        assert!(matches!(run(Model::LastClick, Some(edge), None), Attribution::Attributed(_)));
        let late = click("c", "a", NOW - w - 1);
        assert_eq!(run(Model::LastClick, Some(late), None), Attribution::Unattributed(Reason::ClickExpired));
        // A custom window.
        let c = click("c", "a", NOW - 8 * DAY_MS);
        assert_eq!(
            attribute(P, Model::LastClick, 7, NOW, Some(c.clone()), None),
            Attribution::Unattributed(Reason::ClickExpired)
        );
        assert!(matches!(attribute(P, Model::LastClick, 8, NOW, Some(c), None), Attribution::Attributed(_)));
        // Zero window: only clicks at (or just after, by skew) now.
        let c = click("c", "a", NOW);
        assert!(matches!(attribute(P, Model::LastClick, 0, NOW, Some(c), None), Attribution::Attributed(_)));
    }

    #[test]
    fn future_clicks_within_skew_only() {
        let soon = click("c", "a", NOW + CLICK_SKEW_MS);
        assert!(matches!(run(Model::LastClick, Some(soon), None), Attribution::Attributed(_)));
        let far = click("c", "a", NOW + CLICK_SKEW_MS + 1);
        assert_eq!(run(Model::LastClick, Some(far), None), Attribution::Unattributed(Reason::ClickInFuture));
    }

    #[test]
    fn unknown_click() {
        assert_eq!(run(Model::LastClick, None, None), Attribution::Unattributed(Reason::ClickNotFound));
        assert_eq!(run(Model::FirstClick, None, None), Attribution::Unattributed(Reason::ClickNotFound));
    }

    #[test]
    fn other_program() {
        let c = ClickFacts { program_id: "prog_2".into(), ..click("c", "a", NOW) };
        assert_eq!(run(Model::LastClick, Some(c), None), Attribution::Unattributed(Reason::ClickOtherProgram));
    }

    #[test]
    fn banned_partner_gets_nothing() {
        let c = ClickFacts { partner_banned: true, ..click("c", "a", NOW) };
        assert_eq!(run(Model::LastClick, Some(c.clone()), None), Attribution::Unattributed(Reason::PartnerBanned));
        assert_eq!(run(Model::FirstClick, Some(c.clone()), None), Attribution::Unattributed(Reason::PartnerBanned));
        // A banned existing partner loses the customer to a valid new click, under both models.
        let fresh = click("d", "b", NOW - 1);
        for m in Model::ALL {
            assert_eq!(run(m, Some(fresh.clone()), Some(c.clone())), Attribution::Attributed(fresh.clone()));
        }
        // ... and with no new click, the lead is unattributed.
        assert_eq!(run(Model::FirstClick, None, Some(c)), Attribution::Unattributed(Reason::PartnerBanned));
    }

    #[test]
    fn last_click_newer_presented_wins() {
        let old = click("c1", "a", NOW - 10 * DAY_MS);
        let new = click("c2", "b", NOW - DAY_MS);
        assert_eq!(run(Model::LastClick, Some(new.clone()), Some(old.clone())), Attribution::Attributed(new.clone()));
        // Replaying an older click does not steal the customer from a newer attribution.
        assert_eq!(run(Model::LastClick, Some(old.clone()), Some(new.clone())), Attribution::Attributed(new.clone()));
        // Same time: the presented click wins.
        let same = click("c3", "c", new.at);
        assert_eq!(run(Model::LastClick, Some(same.clone()), Some(new)), Attribution::Attributed(same));
    }

    #[test]
    fn first_click_existing_wins_while_in_window() {
        let old = click("c1", "a", NOW - 10 * DAY_MS);
        let new = click("c2", "b", NOW - DAY_MS);
        assert_eq!(run(Model::FirstClick, Some(new.clone()), Some(old.clone())), Attribution::Attributed(old));
        // Once the existing attribution is out of the window, the new click wins.
        let expired = click("c0", "a", NOW - 91 * DAY_MS);
        assert_eq!(run(Model::FirstClick, Some(new.clone()), Some(expired)), Attribution::Attributed(new));
    }

    #[test]
    fn invalid_presented_falls_back_to_existing() {
        let existing = click("c1", "a", NOW - 10 * DAY_MS);
        let bad = [
            None,
            Some(click("x", "b", NOW - 100 * DAY_MS)),
            Some(ClickFacts { program_id: "other".into(), ..click("x", "b", NOW) }),
            Some(ClickFacts { partner_banned: true, ..click("x", "b", NOW) }),
        ];
        for m in Model::ALL {
            for p in bad.clone() {
                assert_eq!(run(m, p, Some(existing.clone())), Attribution::Attributed(existing.clone()));
            }
        }
    }

    #[test]
    fn both_invalid_reports_presented_reason() {
        let expired_existing = click("c1", "a", NOW - 100 * DAY_MS);
        let other = ClickFacts { program_id: "other".into(), ..click("x", "b", NOW) };
        assert_eq!(
            run(Model::LastClick, Some(other), Some(expired_existing.clone())),
            Attribution::Unattributed(Reason::ClickOtherProgram)
        );
        assert_eq!(
            run(Model::LastClick, None, Some(expired_existing)),
            Attribution::Unattributed(Reason::ClickExpired)
        );
    }

    #[test]
    fn extreme_times_do_not_panic() {
        for at in [i64::MIN, i64::MAX, 0] {
            for now in [i64::MIN, i64::MAX, 0] {
                let _ =
                    attribute(P, Model::LastClick, u32::MAX, now, Some(click("c", "a", at)), Some(click("d", "b", at)));
            }
        }
    }

    proptest! {
        #[test]
        fn winner_is_always_a_valid_input(
            p_age in proptest::option::of(-400i64..200), e_age in proptest::option::of(-400i64..200),
            p_banned: bool, e_banned: bool, first: bool, window in 0u32..120,
        ) {
            let model = if first { Model::FirstClick } else { Model::LastClick };
            let mk = |id: &str, age: i64, banned: bool| ClickFacts {
                partner_banned: banned,
                ..click(id, id, NOW - age * DAY_MS / 2)
            };
            let p = p_age.map(|a| mk("p", a, p_banned));
            let e = e_age.map(|a| mk("e", a, e_banned));
            match attribute(P, model, window, NOW, p.clone(), e.clone()) {
                Attribution::Attributed(c) => {
                    prop_assert!(Some(&c) == p.as_ref() || Some(&c) == e.as_ref());
                    prop_assert!(check_click(P, window, NOW, &c).is_ok());
                    prop_assert!(!c.partner_banned);
                }
                Attribution::Unattributed(_) => {
                    let p_ok = p.as_ref().is_some_and(|c| check_click(P, window, NOW, c).is_ok());
                    let e_ok = e.as_ref().is_some_and(|c| check_click(P, window, NOW, c).is_ok());
                    prop_assert!(!p_ok && !e_ok);
                }
            }
        }
    }
}
