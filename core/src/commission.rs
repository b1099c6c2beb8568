//! Commissions: statuses and their allowed changes, kinds, self-referral, and refund planning.
//!
//! Status machine: `pending -> approved -> paid`, and `pending | approved -> rejected`;
//! `paid` and `rejected` are terminal. Refunds are planned here ([`plan_refund`]) and applied
//! by the shell: an unpaid commission is lowered in place (or rejected on a full refund); a
//! paid one gets a negative `clawback` commission.

use crate::error::Invalid;
use crate::fraud::Rule;
use crate::money::{mul_div_half_even, Currency, MAX_AMOUNT};
use serde::Serialize;
use std::fmt;

/// A commission's status.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Paid,
    Rejected,
}

crate::from_json_enum!(Status { Pending = "pending", Approved = "approved", Paid = "paid", Rejected = "rejected" });

impl Status {
    pub const ALL: [Status; 4] = [Status::Pending, Status::Approved, Status::Paid, Status::Rejected];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Paid => "paid",
            Status::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The only allowed changes: pending->approved, pending->rejected, approved->rejected,
    /// approved->paid.
    pub fn can_transition(self, to: Status) -> bool {
        use Status::*;
        matches!((self, to), (Pending, Approved) | (Pending, Rejected) | (Approved, Rejected) | (Approved, Paid))
    }

    /// No change is allowed out of this status (`paid`, `rejected`).
    pub fn is_terminal(self) -> bool {
        Status::ALL.into_iter().all(|to| !self.can_transition(to))
    }

    /// Not yet paid nor rejected: the amount may still change (`pending`, `approved`).
    pub fn is_open(self) -> bool {
        matches!(self, Status::Pending | Status::Approved)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused status change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransitionError {
    pub from: Status,
    pub to: Status,
}

impl TransitionError {
    pub fn code(&self) -> &'static str {
        "invalid_transition"
    }

    /// E.g. "a paid commission cannot become rejected".
    pub fn message(&self) -> String {
        if self.from == self.to {
            format!("the commission is already {}", self.from)
        } else {
            format!("a {} commission cannot become {}", self.from, self.to)
        }
    }
}

impl fmt::Display for TransitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// Checks a status change.
pub fn transition(from: Status, to: Status) -> Result<(), TransitionError> {
    if from.can_transition(to) {
        Ok(())
    } else {
        Err(TransitionError { from, to })
    }
}

/// What a commission is for.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Lead,
    Sale,
    /// A negative commission taking back (part of) a paid sale commission after a refund.
    Clawback,
    /// A manual commission the merchant adds (a bonus, a correction), with a description.
    Bonus,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Lead, Kind::Sale, Kind::Clawback, Kind::Bonus];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Lead => "lead",
            Kind::Sale => "sale",
            Kind::Clawback => "clawback",
            Kind::Bonus => "bonus",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a commission was rejected (stored as `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// A fraud rule whose action is `reject` matched (`self_referral`: the customer is the
    /// partner).
    Fraud(Rule),
    /// The sale was fully refunded before the commission was paid.
    Refund,
    /// Rejected by the merchant.
    Manual,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Fraud(r) => r.as_str(),
            RejectReason::Refund => "refund",
            RejectReason::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<RejectReason> {
        match s {
            "refund" => Some(RejectReason::Refund),
            "manual" => Some(RejectReason::Manual),
            _ => Rule::parse(s).map(RejectReason::Fraud),
        }
    }
}

/// The customer referred themself: their email equals the partner's (trimmed, case-insensitive).
/// The `self_referral` fraud rule ([`Rule::SelfReferral`]) judges it. An absent or
/// blank email never matches.
pub fn is_self_referral(customer_email: Option<&str>, partner_email: &str) -> bool {
    let Some(customer) = customer_email.map(str::trim).filter(|s| !s.is_empty()) else {
        return false;
    };
    let partner = partner_email.trim();
    !partner.is_empty() && lowercase(customer) == lowercase(partner)
}

/// Unicode full lowercase mapping, final sigma included: in the Worker (wasm32) the runtime's
/// `String.prototype.toLowerCase`, the same Unicode algorithm as `str::to_lowercase`, which
/// keeps std's case tables out of the wasm; natively (tests) `str::to_lowercase` itself. As with
/// the URL parser's IDNA (`weburl`), the runtime's Unicode version is its own.
#[cfg(target_arch = "wasm32")]
pub(crate) fn lowercase(s: &str) -> String {
    js_sys::JsString::from(s).to_lower_case().into()
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn lowercase(s: &str) -> String {
    s.to_lowercase()
}

/// A sale commission as stored, with what the refunds have done to it so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleCommission {
    pub status: Status,
    /// The commission as first computed, minor units.
    pub original_amount: i64,
    /// The commission now (lowered by partial refunds while unpaid; what was paid once paid).
    pub amount: i64,
    /// The sale amount, minor units.
    pub sale_amount: i64,
    /// Sale minor units refunded so far.
    pub refunded: i64,
    /// Positive sum of the clawbacks created so far.
    pub clawed_back: i64,
}

impl SaleCommission {
    /// Sale minor units that may still be refunded.
    pub fn refundable(&self) -> i64 {
        let sale = self.sale_amount.max(0);
        sale - self.refunded.clamp(0, sale)
    }
}

/// What a refund does to a sale commission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundPlan {
    /// Unpaid and partly refunded: set the commission's amount to `new_amount`.
    Reduce { new_amount: i64 },
    /// Unpaid and fully refunded: reject the commission with [`RejectReason::Refund`].
    Reject,
    /// Paid: create a `clawback` commission of `amount` (negative).
    Clawback { amount: i64 },
    /// No commission changes (already rejected, or nothing left to take back).
    NoChange,
}

/// A refused refund.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundError {
    /// The refund amount is zero or negative.
    InvalidAmount,
    /// The refund is larger than what remains refundable on the sale.
    ExceedsRefundable { refundable: i64 },
    /// The sale is fully refunded already (or was for 0).
    NothingToRefund,
}

impl RefundError {
    pub fn code(&self) -> &'static str {
        match self {
            RefundError::InvalidAmount => "invalid_amount",
            RefundError::ExceedsRefundable { .. } => "refund_exceeds_refundable",
            RefundError::NothingToRefund => "nothing_to_refund",
        }
    }

    pub fn message(&self) -> String {
        match self {
            RefundError::InvalidAmount => "a refund amount must be positive".to_string(),
            RefundError::ExceedsRefundable { refundable } => {
                format!("the refund exceeds what remains refundable on the sale ({refundable} minor units)")
            }
            RefundError::NothingToRefund => "the sale has nothing left to refund".to_string(),
        }
    }
}

impl fmt::Display for RefundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// Plans a refund of `refund` sale minor units (`None` = everything that remains refundable).
///
/// Returns the refund amount actually applied (the caller adds it to `refunded` and records
/// the refund, whatever the plan) and the change to make:
/// - pending/approved: the commission becomes the pro rata of the original commission on
///   what remains of the sale, `round_half_even(original * remaining / sale)` (never raised);
///   a full refund rejects it;
/// - paid: a clawback bringing the net paid down to that same pro rata target, never taking
///   back more than was paid in total;
/// - rejected: no change.
pub fn plan_refund(c: &SaleCommission, refund: Option<i64>) -> Result<(i64, RefundPlan), RefundError> {
    if matches!(refund, Some(r) if r <= 0) {
        return Err(RefundError::InvalidAmount);
    }
    let sale = c.sale_amount.max(0);
    let refundable = c.refundable();
    if sale == 0 || refundable == 0 {
        return Err(RefundError::NothingToRefund);
    }
    let applied = match refund {
        Some(r) if r > refundable => return Err(RefundError::ExceedsRefundable { refundable }),
        Some(r) => r,
        None => refundable,
    };
    let remaining = refundable - applied;
    let original = c.original_amount.clamp(0, MAX_AMOUNT);
    let target = mul_div_half_even(original, remaining, sale);
    let current = c.amount.max(0);

    // Clawbacks already taken from this sale while a payout held it (that payout then failed and
    // released the commission): they stay, so the commission keeps them on top of its target.
    let clawed_open = c.clawed_back.max(0);
    let plan = match c.status {
        Status::Rejected => RefundPlan::NoChange,
        Status::Pending | Status::Approved if clawed_open > 0 => {
            let new_amount = target.saturating_add(clawed_open).min(current);
            if new_amount == c.amount {
                RefundPlan::NoChange
            } else {
                RefundPlan::Reduce { new_amount }
            }
        }
        Status::Pending | Status::Approved if remaining == 0 => RefundPlan::Reject,
        Status::Pending | Status::Approved => {
            let new_amount = target.min(current);
            if new_amount == c.amount {
                RefundPlan::NoChange
            } else {
                RefundPlan::Reduce { new_amount }
            }
        }
        Status::Paid => {
            let clawed = c.clawed_back.clamp(0, current);
            let take = current - target - clawed;
            if take > 0 {
                RefundPlan::Clawback { amount: -take }
            } else {
                RefundPlan::NoChange
            }
        }
    };
    Ok((applied, plan))
}

crate::from_json! {
    deny_unknown_fields
    /// `POST /api/v1/commissions` body: a manual commission (`kind: "bonus"`).
    #[derive(Clone, Debug)]
    pub struct BonusInput {
        pub partner_id: String,
        pub amount: i64,
        pub currency: Option<String>,
        pub description: String,
        pub status: Option<Status>,
    }
}

/// A validated manual commission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bonus {
    pub partner_id: String,
    pub amount: i64,
    pub currency: Currency,
    pub description: String,
    pub status: Status,
}

/// Longest bonus description, in characters.
pub const MAX_DESCRIPTION: usize = 500;

impl BonusInput {
    /// Checks the bonus in a program paying in `payout_currency`: a positive amount, the
    /// program's currency (the default), a description, `pending` (the default) or `approved`.
    pub fn validate(self, payout_currency: Currency) -> Result<Bonus, Invalid> {
        if !crate::ids::is_valid(crate::ids::PARTNER, &self.partner_id) {
            return Err(Invalid::new("partner_id", "invalid_partner", "partner_id must be a pn_ id"));
        }
        if self.amount <= 0 || self.amount > crate::money::MAX_AMOUNT {
            return Err(Invalid::new(
                "amount",
                "invalid_amount",
                format!("amount must be a positive integer in minor units, at most {}", crate::money::MAX_AMOUNT),
            ));
        }
        let currency = match self.currency.as_deref() {
            None => payout_currency,
            Some(c) => match Currency::parse(c) {
                Some(c) if c == payout_currency => c,
                _ => {
                    return Err(Invalid::new(
                        "currency",
                        "invalid_currency",
                        format!("the program pays in {}: a bonus is in that currency", payout_currency.code()),
                    ))
                }
            },
        };
        let description = self.description.trim();
        if description.is_empty() || description.chars().count() > MAX_DESCRIPTION {
            return Err(Invalid::new(
                "description",
                "invalid_description",
                format!("description must be 1 to {MAX_DESCRIPTION} characters"),
            ));
        }
        let status = match self.status {
            None | Some(Status::Pending) => Status::Pending,
            Some(Status::Approved) => Status::Approved,
            Some(_) => return Err(Invalid::new("status", "invalid_status", "a new commission is pending or approved")),
        };
        Ok(Bonus {
            partner_id: self.partner_id,
            amount: self.amount,
            currency,
            description: description.to_string(),
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sale(status: Status, commission: i64, sale_amount: i64) -> SaleCommission {
        SaleCommission {
            status,
            original_amount: commission,
            amount: commission,
            sale_amount,
            refunded: 0,
            clawed_back: 0,
        }
    }

    #[test]
    fn refund_after_a_released_claim_keeps_the_earlier_clawback() {
        // Sale 10,000, commission 2,000; refunded 5,000 while a payout held it (clawback -1,000),
        // the payout failed and released it: approved again, amount 2,000, clawed back 1,000.
        let c = SaleCommission {
            status: Status::Approved,
            original_amount: 2000,
            amount: 2000,
            sale_amount: 10_000,
            refunded: 5000,
            clawed_back: 1000,
        };
        // A further 2,500: the sale nets 2,000 x 2,500 / 10,000 = 500 = commission - clawbacks.
        assert_eq!(plan_refund(&c, Some(2500)).unwrap(), (2500, RefundPlan::Reduce { new_amount: 1500 }));
        // The rest: the sale nets 0 (the commission equals what was clawed back).
        assert_eq!(plan_refund(&c, None).unwrap(), (5000, RefundPlan::Reduce { new_amount: 1000 }));
    }

    /// Applies a plan the way the shell does.
    fn apply(c: &mut SaleCommission, applied: i64, plan: RefundPlan) {
        c.refunded += applied;
        match plan {
            RefundPlan::Reduce { new_amount } => c.amount = new_amount,
            RefundPlan::Reject => c.status = Status::Rejected,
            RefundPlan::Clawback { amount } => c.clawed_back += -amount,
            RefundPlan::NoChange => {}
        }
    }

    #[test]
    fn status_codes() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
            assert_eq!(crate::wire::from_str::<Status>(&format!("\"{s}\"")).unwrap(), s);
        }
        assert_eq!(Status::parse("Paid"), None);
        assert_eq!(Status::parse("void"), None);
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert_eq!(Kind::parse("refund"), None);
        let reasons = [RejectReason::Refund, RejectReason::Manual].into_iter();
        for r in reasons.chain(crate::fraud::Rule::ALL.map(RejectReason::Fraud)) {
            assert_eq!(RejectReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(RejectReason::Fraud(crate::fraud::Rule::SelfReferral).as_str(), "self_referral");
    }

    #[test]
    fn every_transition_pair() {
        use Status::*;
        let allowed = [(Pending, Approved), (Pending, Rejected), (Approved, Rejected), (Approved, Paid)];
        for from in Status::ALL {
            for to in Status::ALL {
                let ok = allowed.contains(&(from, to));
                assert_eq!(from.can_transition(to), ok, "{from} -> {to}");
                assert_eq!(transition(from, to).is_ok(), ok, "{from} -> {to}");
                if !ok {
                    let e = transition(from, to).unwrap_err();
                    assert_eq!(e, TransitionError { from, to });
                    assert_eq!(e.code(), "invalid_transition");
                }
            }
        }
        assert!(Paid.is_terminal() && Rejected.is_terminal());
        assert!(!Pending.is_terminal() && !Approved.is_terminal());
        assert!(Pending.is_open() && Approved.is_open() && !Paid.is_open() && !Rejected.is_open());
    }

    #[test]
    fn transition_messages() {
        use Status::*;
        assert_eq!(transition(Paid, Rejected).unwrap_err().message(), "a paid commission cannot become rejected");
        assert_eq!(transition(Pending, Paid).unwrap_err().to_string(), "a pending commission cannot become paid");
        assert_eq!(transition(Approved, Approved).unwrap_err().message(), "the commission is already approved");
    }

    #[test]
    fn self_referral() {
        assert!(is_self_referral(Some("Ann@Example.com"), "ann@example.com"));
        assert!(is_self_referral(Some("  ann@example.com "), " ANN@EXAMPLE.COM"));
        assert!(is_self_referral(Some("ÉLODIE@example.com"), "élodie@example.com"));
        assert!(!is_self_referral(Some("ann@example.com"), "bob@example.com"));
        assert!(!is_self_referral(Some("ann+1@example.com"), "ann@example.com"));
        assert!(!is_self_referral(None, "ann@example.com"));
        assert!(!is_self_referral(Some(""), ""));
        assert!(!is_self_referral(Some("  "), "  "));
        assert!(!is_self_referral(Some("ann@example.com"), ""));
    }

    #[test]
    fn refund_amount_checks() {
        let c = sale(Status::Pending, 1000, 5000);
        assert_eq!(plan_refund(&c, Some(0)), Err(RefundError::InvalidAmount));
        assert_eq!(plan_refund(&c, Some(-1)), Err(RefundError::InvalidAmount));
        assert_eq!(plan_refund(&c, Some(5001)), Err(RefundError::ExceedsRefundable { refundable: 5000 }));
        let partly = SaleCommission { refunded: 4000, ..c.clone() };
        assert_eq!(plan_refund(&partly, Some(1001)), Err(RefundError::ExceedsRefundable { refundable: 1000 }));
        let full = SaleCommission { refunded: 5000, ..c.clone() };
        assert_eq!(plan_refund(&full, None), Err(RefundError::NothingToRefund));
        assert_eq!(plan_refund(&full, Some(1)), Err(RefundError::NothingToRefund));
        let zero = sale(Status::Pending, 100, 0);
        assert_eq!(plan_refund(&zero, None), Err(RefundError::NothingToRefund));
        assert_eq!(plan_refund(&zero, Some(10)), Err(RefundError::NothingToRefund));
        for e in
            [RefundError::InvalidAmount, RefundError::ExceedsRefundable { refundable: 3 }, RefundError::NothingToRefund]
        {
            assert!(!e.code().is_empty());
            assert_eq!(e.to_string(), e.message());
        }
        assert_eq!(RefundError::ExceedsRefundable { refundable: 3 }.code(), "refund_exceeds_refundable");
    }

    #[test]
    fn partial_refund_of_unpaid_reduces() {
        for status in [Status::Pending, Status::Approved] {
            // 20 % of $100 = $20; refund $25 -> $15 on $75.
            let c = sale(status, 2000, 10_000);
            assert_eq!(plan_refund(&c, Some(2500)), Ok((2500, RefundPlan::Reduce { new_amount: 1500 })));
            // Half-even on the pro rata: 5 * 5/10 = 2.5 -> 2; 7 * 5/10 = 3.5 -> 4.
            assert_eq!(plan_refund(&sale(status, 5, 10), Some(5)), Ok((5, RefundPlan::Reduce { new_amount: 2 })));
            assert_eq!(plan_refund(&sale(status, 7, 10), Some(5)), Ok((5, RefundPlan::Reduce { new_amount: 4 })));
        }
    }

    #[test]
    fn repeated_partial_refunds_use_the_original() {
        let mut c = sale(Status::Approved, 1000, 3000);
        let (a, p) = plan_refund(&c, Some(1000)).unwrap();
        assert_eq!(p, RefundPlan::Reduce { new_amount: 667 }); // 666.67
        apply(&mut c, a, p);
        let (a, p) = plan_refund(&c, Some(1000)).unwrap();
        assert_eq!(p, RefundPlan::Reduce { new_amount: 333 }); // 333.33, not 667 * 1/2
        apply(&mut c, a, p);
        let (a, p) = plan_refund(&c, None).unwrap();
        assert_eq!((a, p), (1000, RefundPlan::Reject));
        apply(&mut c, a, p);
        assert_eq!(plan_refund(&c, None), Err(RefundError::NothingToRefund));
    }

    #[test]
    fn full_refund_of_unpaid_rejects() {
        assert_eq!(plan_refund(&sale(Status::Pending, 100, 500), None), Ok((500, RefundPlan::Reject)));
        assert_eq!(plan_refund(&sale(Status::Approved, 100, 500), Some(500)), Ok((500, RefundPlan::Reject)));
        let partly = SaleCommission { refunded: 200, amount: 60, ..sale(Status::Pending, 100, 500) };
        assert_eq!(plan_refund(&partly, None), Ok((300, RefundPlan::Reject)));
    }

    #[test]
    fn refund_never_raises_a_lowered_commission() {
        // The merchant lowered the commission to 10; a small refund keeps it at 10.
        let c = SaleCommission { amount: 10, ..sale(Status::Pending, 100, 1000) };
        assert_eq!(plan_refund(&c, Some(100)), Ok((100, RefundPlan::NoChange)));
        // A tiny refund that rounds to the same amount changes nothing.
        let c = sale(Status::Pending, 100, 1_000_000);
        assert_eq!(plan_refund(&c, Some(1)), Ok((1, RefundPlan::NoChange)));
    }

    #[test]
    fn refund_of_paid_claws_back() {
        // Paid $20 on $100; refund $25 -> clawback -$5; then the rest -> -$15.
        let mut c = sale(Status::Paid, 2000, 10_000);
        let (a, p) = plan_refund(&c, Some(2500)).unwrap();
        assert_eq!((a, p), (2500, RefundPlan::Clawback { amount: -500 }));
        apply(&mut c, a, p);
        let (a, p) = plan_refund(&c, None).unwrap();
        assert_eq!((a, p), (7500, RefundPlan::Clawback { amount: -1500 }));
        apply(&mut c, a, p);
        assert_eq!(c.clawed_back, 2000);
        assert_eq!(c.status, Status::Paid);
        assert_eq!(plan_refund(&c, None), Err(RefundError::NothingToRefund));
    }

    #[test]
    fn paid_clawback_rounding_and_zero() {
        // 3 paid on a sale of 10: refund 5 -> target 1.5 -> 2, clawback -1; refund 1 -> target
        // 1.2 -> 1, clawback -1; refund 4 -> target 0, clawback -1.
        let mut c = sale(Status::Paid, 3, 10);
        for (refund, claw) in [(5, -1), (1, -1), (4, -1)] {
            let (a, p) = plan_refund(&c, Some(refund)).unwrap();
            assert_eq!(p, RefundPlan::Clawback { amount: claw });
            apply(&mut c, a, p);
        }
        assert_eq!(c.clawed_back, 3);
        // A refund too small to move the rounded target takes nothing back.
        let c = sale(Status::Paid, 100, 1_000_000);
        assert_eq!(plan_refund(&c, Some(1)), Ok((1, RefundPlan::NoChange)));
        // A paid commission of 0 has nothing to claw back.
        let c = sale(Status::Paid, 0, 1000);
        assert_eq!(plan_refund(&c, None), Ok((1000, RefundPlan::NoChange)));
    }

    #[test]
    fn refund_of_rejected_changes_nothing() {
        let c = sale(Status::Rejected, 100, 500);
        assert_eq!(plan_refund(&c, Some(100)), Ok((100, RefundPlan::NoChange)));
        assert_eq!(plan_refund(&c, None), Ok((500, RefundPlan::NoChange)));
        assert_eq!(plan_refund(&c, Some(501)), Err(RefundError::ExceedsRefundable { refundable: 500 }));
    }

    #[test]
    fn jpy_and_kwd_refunds() {
        // JPY: 10 % of ¥1,999 = ¥200 (199.9); refund ¥999 -> 200 * 1000/1999 = 100.05 -> ¥100.
        let c = sale(Status::Approved, 200, 1999);
        assert_eq!(plan_refund(&c, Some(999)), Ok((999, RefundPlan::Reduce { new_amount: 100 })));
        // Paid: the same refund claws back ¥100.
        let c = sale(Status::Paid, 200, 1999);
        assert_eq!(plan_refund(&c, Some(999)), Ok((999, RefundPlan::Clawback { amount: -100 })));
        // KWD: 1.251 KWD on 10.005 KWD; refund 2.001 KWD -> 1251 * 8004/10005 = 1000.8 -> 1.001 KWD.
        let c = sale(Status::Pending, 1251, 10_005);
        assert_eq!(plan_refund(&c, Some(2001)), Ok((2001, RefundPlan::Reduce { new_amount: 1001 })));
        let c = sale(Status::Paid, 1251, 10_005);
        assert_eq!(plan_refund(&c, Some(2001)), Ok((2001, RefundPlan::Clawback { amount: -250 })));
    }

    #[test]
    fn corrupt_inputs_do_not_panic() {
        let weird = [i64::MIN, -1, 0, 1, MAX_AMOUNT, i64::MAX];
        for s in Status::ALL {
            for &x in &weird {
                for &y in &weird {
                    let c = SaleCommission {
                        status: s,
                        original_amount: x,
                        amount: y,
                        sale_amount: x,
                        refunded: y,
                        clawed_back: x,
                    };
                    let _ = plan_refund(&c, None);
                    let _ = plan_refund(&c, Some(1));
                    let _ = plan_refund(&c, Some(i64::MAX));
                }
            }
        }
    }

    fn status_strategy() -> impl Strategy<Value = Status> {
        prop::sample::select(Status::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn transitions_are_closed(from in status_strategy(), to in status_strategy()) {
            use Status::*;
            let allowed = matches!((from, to), (Pending, Approved) | (Pending, Rejected) | (Approved, Rejected) | (Approved, Paid));
            prop_assert_eq!(transition(from, to).is_ok(), allowed);
            if matches!(from, Paid | Rejected) {
                prop_assert!(transition(from, to).is_err());
            }
        }

        #[test]
        fn refund_sequences_stay_within_bounds(
            sale_amount in 1i64..=1_000_000,
            bps in 0i64..=10_000,
            start in status_strategy(),
            pay_after in proptest::option::of(0usize..6),
            refunds in proptest::collection::vec(proptest::option::of(-5i64..=400_000), 1..8),
        ) {
            let commission = mul_div_half_even(sale_amount, bps, 10_000);
            let mut c = sale(start, commission, sale_amount);
            let mut paid: Option<i64> = (start == Status::Paid).then_some(commission);
            for (i, r) in refunds.into_iter().enumerate() {
                if pay_after == Some(i) && c.status == Status::Approved {
                    c.status = Status::Paid;
                    paid = Some(c.amount);
                }
                let before = c.clone();
                match plan_refund(&c, r) {
                    Ok((applied, plan)) => {
                        prop_assert!(applied > 0);
                        if let Some(r) = r { prop_assert_eq!(applied, r); }
                        match plan {
                            RefundPlan::Reduce { new_amount } => {
                                prop_assert!(c.status.is_open());
                                prop_assert!(new_amount >= 0 && new_amount < c.amount);
                            }
                            RefundPlan::Reject => prop_assert!(c.status.is_open()),
                            RefundPlan::Clawback { amount } => {
                                prop_assert_eq!(c.status, Status::Paid);
                                prop_assert!(amount < 0);
                            }
                            RefundPlan::NoChange => {}
                        }
                        apply(&mut c, applied, plan);
                    }
                    Err(RefundError::InvalidAmount) => prop_assert!(matches!(r, Some(x) if x <= 0)),
                    Err(RefundError::ExceedsRefundable { refundable }) => {
                        prop_assert_eq!(refundable, before.refundable());
                        prop_assert!(matches!(r, Some(x) if x > refundable));
                    }
                    Err(RefundError::NothingToRefund) => prop_assert_eq!(before.refundable(), 0),
                }
                prop_assert!(c.amount >= 0);
                prop_assert!(c.refunded >= 0 && c.refunded <= c.sale_amount);
                prop_assert!(c.clawed_back >= 0);
                if let Some(p) = paid {
                    // Sum of clawbacks (negative) >= -paid.
                    prop_assert!(-c.clawed_back >= -p);
                } else {
                    prop_assert_eq!(c.clawed_back, 0);
                }
            }
            // Once the sale is fully refunded nothing is left owed to the partner.
            if c.refunded == c.sale_amount {
                match paid {
                    Some(p) => prop_assert_eq!(c.clawed_back, p),
                    None => prop_assert!(c.status == Status::Rejected),
                }
            }
        }
    }
}
