//! Conversions (SPEC 3): what a lead, a sale or a refund writes, decided from what was loaded.
//!
//! The track API is parse -> load -> decide -> write -> answer. This module holds the parse and
//! the decide steps: [`parse_lead`], [`parse_sale`] and [`parse_refund`] turn a request body into
//! a validated request (or an [`Invalid`], nothing written); [`decide_lead`], [`decide_sale`] and
//! [`decide_refund`] take the loaded facts (the click, the customer, the program, the partner,
//! the existing commission) and answer what to write: the attribution, the commission, the
//! refund plan. The rules themselves live in [`crate::attribution`] (who gets credit),
//! [`crate::rules`] (how much), [`crate::fraud`] (holds and rejections) and [`crate::commission`]
//! (refund planning); this
//! module composes them. No I/O, no clock: `now` is a fact like any other.

use crate::attribution::{self, attribute, Attribution, ClickFacts};
use crate::commission::{plan_refund, Kind, RefundError, RefundPlan, RejectReason, SaleCommission, Status};
use crate::error::Invalid;
use crate::fraud::{self, ClickSignals, EmailFacts, Rule, Signals, Verdict};
use crate::modifiers::Context;
use crate::money::{mul_div_half_even, parse_amount, Currency};
use crate::partner::{parse_email, PartnerStatus};
use crate::program::ProgramSettings;
use crate::rules::{self, Rewards};
use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// Longest id / name accepted in a conversion (customer external id, invoice id, event name...).
pub const MAX_ID_LEN: usize = 255;
/// Largest `metadata` of a sale, in bytes of compact JSON.
pub const MAX_METADATA: usize = 4096;
/// The `event_name` of a lead that names none.
pub const DEFAULT_LEAD_EVENT: &str = "Sign up";
/// The `event_name` of a sale that names none.
pub const DEFAULT_SALE_EVENT: &str = "Purchase";

// ---------------------------------------------------------------------------------------------
// Stored vocabulary

/// What a conversion event is.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Lead,
    Sale,
}

impl EventKind {
    pub const ALL: [EventKind; 2] = [EventKind::Lead, EventKind::Sale];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Lead => "lead",
            EventKind::Sale => "sale",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an event was attributed, stored with it (`events.attribution`); anything but
/// [`AttributionOutcome::Attributed`] is answered as the event's `reason`.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum AttributionOutcome {
    /// A partner is credited (a sale may still earn nothing: no reward, or a reward of 0).
    Attributed,
    /// Sale: the customer is attributed to no partner.
    NoAttribution,
    /// The partner is banned (lead: the click's partner; sale: the customer's partner).
    PartnerBanned,
    /// Sale: the reward's recurring window (`duration_months`) is over for this customer.
    OutsideRecurringWindow,
    /// Lead: no click id, or one that is unknown, malformed or forged.
    ClickNotFound,
    /// Lead: the click is older than the program's attribution window.
    ClickExpired,
    /// Lead: the click time is later than now (beyond the allowed skew).
    ClickInFuture,
    /// Lead: the click belongs to another program.
    ClickOtherProgram,
    /// Sale (Stripe): paid in a currency that did not settle in the payout currency, so there
    /// is no commission base (never a made-up exchange rate).
    CurrencyNotSettled,
    /// Sale: the customer has earned its partner the sale reward's cap (amount or sales).
    CapReached,
    /// The conversion's `coupon_code` names no live coupon of the program, and nothing else
    /// attributes it.
    CouponNotFound,
}

impl AttributionOutcome {
    pub const ALL: [AttributionOutcome; 11] = [
        AttributionOutcome::Attributed,
        AttributionOutcome::NoAttribution,
        AttributionOutcome::PartnerBanned,
        AttributionOutcome::OutsideRecurringWindow,
        AttributionOutcome::ClickNotFound,
        AttributionOutcome::ClickExpired,
        AttributionOutcome::ClickInFuture,
        AttributionOutcome::ClickOtherProgram,
        AttributionOutcome::CurrencyNotSettled,
        AttributionOutcome::CapReached,
        AttributionOutcome::CouponNotFound,
    ];

    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            AttributionOutcome::Attributed => "attributed",
            AttributionOutcome::NoAttribution => "no_attribution",
            AttributionOutcome::PartnerBanned => "partner_banned",
            AttributionOutcome::OutsideRecurringWindow => "outside_recurring_window",
            AttributionOutcome::ClickNotFound => attribution::Reason::ClickNotFound.as_str(),
            AttributionOutcome::ClickExpired => attribution::Reason::ClickExpired.as_str(),
            AttributionOutcome::ClickInFuture => attribution::Reason::ClickInFuture.as_str(),
            AttributionOutcome::ClickOtherProgram => attribution::Reason::ClickOtherProgram.as_str(),
            AttributionOutcome::CurrencyNotSettled => "currency_not_settled",
            AttributionOutcome::CapReached => "cap_reached",
            AttributionOutcome::CouponNotFound => "coupon_not_found",
        }
    }

    pub fn parse(s: &str) -> Option<AttributionOutcome> {
        AttributionOutcome::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn is_attributed(self) -> bool {
        self == AttributionOutcome::Attributed
    }

    /// The event's `reason` on the wire: `None` when attributed, else the stored value.
    pub fn reason(self) -> Option<&'static str> {
        (!self.is_attributed()).then_some(self.as_str())
    }
}

impl From<attribution::Reason> for AttributionOutcome {
    fn from(r: attribution::Reason) -> Self {
        match r {
            attribution::Reason::ClickNotFound => AttributionOutcome::ClickNotFound,
            attribution::Reason::ClickExpired => AttributionOutcome::ClickExpired,
            attribution::Reason::ClickInFuture => AttributionOutcome::ClickInFuture,
            attribution::Reason::ClickOtherProgram => AttributionOutcome::ClickOtherProgram,
            attribution::Reason::PartnerBanned => AttributionOutcome::PartnerBanned,
        }
    }
}

impl fmt::Display for AttributionOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Parse: request bodies into validated requests

crate::from_json! {
    deny_unknown_fields
    /// `POST /api/v1/track/lead` body.
    #[derive(Clone, Debug)]
    pub struct LeadInput {
        pub click_id: String,
        pub customer_external_id: String,
        pub customer_email: Option<String>,
        pub customer_name: Option<String>,
        pub event_name: Option<String>,
        pub program_id: Option<String>,
        pub coupon_code: Option<String>,
    }
}

crate::from_json! {
    deny_unknown_fields
    /// `POST /api/v1/track/sale` body.
    #[derive(Clone, Debug)]
    pub struct SaleInput {
        pub customer_external_id: String,
        pub amount: i64,
        pub currency: String,
        pub invoice_id: String,
        pub event_name: Option<String>,
        pub metadata: Option<serde_json::Map<String, Value>>,
        pub payout_amount: Option<i64>,
        pub program_id: Option<String>,
        /// The product sold (what reward modifiers on `product_id` compare).
        pub product_id: Option<String>,
        pub coupon_code: Option<String>,
    }
}

crate::from_json! {
    deny_unknown_fields
    /// `POST /api/v1/track/refund` body.
    #[derive(Clone, Debug)]
    pub struct RefundInput {
        pub invoice_id: String,
        pub amount: Option<i64>,
        pub program_id: Option<String>,
    }
}

/// A validated lead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadRequest {
    pub customer_external_id: String,
    pub event_name: String,
    /// Normalised (trimmed, lower-case); a blank email is none.
    pub customer_email: Option<String>,
    pub customer_name: Option<String>,
    /// The click id when it is well-formed; a malformed one is no error (the lead is recorded
    /// unattributed, `click_not_found`).
    pub click_id: Option<String>,
    /// As sent: the shell resolves it (a malformed or foreign program id is a 404).
    pub program_id: Option<String>,
    /// The coupon code as recorded ([`crate::coupon::sent`]): never an error.
    pub coupon_code: Option<String>,
}

/// A validated sale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleRequest {
    pub customer_external_id: String,
    pub invoice_id: String,
    pub event_name: String,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: Currency,
    /// The merchant's own conversion of `amount` into the program's payout currency.
    pub payout_amount: Option<i64>,
    /// Compact JSON, at most [`MAX_METADATA`] bytes.
    pub metadata: Option<String>,
    pub program_id: Option<String>,
    pub product_id: Option<String>,
    /// The coupon code as recorded ([`crate::coupon::sent`]): never an error.
    pub coupon_code: Option<String>,
}

/// A validated refund.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundRequest {
    pub invoice_id: String,
    /// Minor units of the sale's currency (positive); `None` = everything still refundable.
    pub amount: Option<i64>,
    pub program_id: Option<String>,
}

/// An id-like text: trimmed, 1 to [`MAX_ID_LEN`] bytes, no control characters.
pub fn text_field(field: &str, v: &str) -> Result<String, Invalid> {
    let t = v.trim();
    if t.is_empty() || t.len() > MAX_ID_LEN || t.chars().any(char::is_control) {
        return Err(Invalid::new(
            field,
            "invalid_field",
            format!("{field} must be 1 to {MAX_ID_LEN} printable characters"),
        ));
    }
    Ok(t.to_string())
}

/// [`text_field`] for an optional field: absent or blank is `None`.
pub fn optional_text(field: &str, v: Option<String>) -> Result<Option<String>, Invalid> {
    v.filter(|s| !s.trim().is_empty()).map(|s| text_field(field, &s)).transpose()
}

pub fn parse_lead(input: LeadInput) -> Result<LeadRequest, Invalid> {
    let customer_external_id = text_field("customer_external_id", &input.customer_external_id)?;
    let event_name = optional_text("event_name", input.event_name)?.unwrap_or_else(|| DEFAULT_LEAD_EVENT.into());
    let customer_email = match input.customer_email.filter(|s| !s.trim().is_empty()) {
        Some(e) => Some(parse_email("customer_email", &e)?),
        None => None,
    };
    let customer_name = optional_text("customer_name", input.customer_name)?;
    if input.click_id.len() > MAX_ID_LEN {
        return Err(Invalid::new("click_id", "invalid_field", "click_id is too long"));
    }
    let click_id = crate::click_id::is_click_id(&input.click_id).then_some(input.click_id);
    Ok(LeadRequest {
        customer_external_id,
        event_name,
        customer_email,
        customer_name,
        click_id,
        program_id: input.program_id,
        coupon_code: crate::coupon::sent(input.coupon_code),
    })
}

fn amount_field(field: &str, v: i64) -> Result<i64, Invalid> {
    parse_amount(v).ok_or_else(|| {
        Invalid::new(field, "invalid_amount", format!("{field} must be a non-negative integer in minor units"))
    })
}

pub fn parse_sale(input: SaleInput) -> Result<SaleRequest, Invalid> {
    let customer_external_id = text_field("customer_external_id", &input.customer_external_id)?;
    let invoice_id = text_field("invoice_id", &input.invoice_id)?;
    let event_name = optional_text("event_name", input.event_name)?.unwrap_or_else(|| DEFAULT_SALE_EVENT.into());
    let amount = amount_field("amount", input.amount)?;
    let currency = Currency::parse(&input.currency).ok_or_else(|| {
        Invalid::new(
            "currency",
            "invalid_currency",
            format!("`{}` is not a supported ISO 4217 currency", input.currency),
        )
    })?;
    let payout_amount = input.payout_amount.map(|p| amount_field("payout_amount", p)).transpose()?;
    let metadata = match input.metadata {
        None => None,
        Some(m) => {
            let s = Value::Object(m).to_string();
            if s.len() > MAX_METADATA {
                return Err(Invalid::new(
                    "metadata",
                    "invalid_metadata",
                    format!("metadata must be at most {MAX_METADATA} bytes of JSON"),
                ));
            }
            Some(s)
        }
    };
    Ok(SaleRequest {
        customer_external_id,
        invoice_id,
        event_name,
        amount,
        currency,
        payout_amount,
        metadata,
        program_id: input.program_id,
        product_id: optional_text("product_id", input.product_id)?,
        coupon_code: crate::coupon::sent(input.coupon_code),
    })
}

pub fn parse_refund(input: RefundInput) -> Result<RefundRequest, Invalid> {
    let invoice_id = text_field("invoice_id", &input.invoice_id)?;
    let amount = match input.amount {
        None => None,
        Some(a) if a > 0 && parse_amount(a).is_some() => Some(a),
        Some(_) => {
            return Err(Invalid::new("amount", "invalid_amount", "amount must be a positive integer in minor units"))
        }
    };
    Ok(RefundRequest { invoice_id, amount, program_id: input.program_id })
}

// ---------------------------------------------------------------------------------------------
// Loaded facts

/// A partner, as a conversion needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartnerFacts {
    pub id: String,
    pub email: String,
    pub status: PartnerStatus,
    /// The partner's reward override, if any.
    pub rewards: Option<Rewards>,
    /// The rewards of the partner's group, if it is in one.
    pub group_rewards: Option<Rewards>,
}

impl PartnerFacts {
    fn is_banned(&self) -> bool {
        self.status == PartnerStatus::Banned
    }

    /// The rewards that apply to this partner: override > group > program, per kind.
    pub fn rewards_in(&self, program: &ProgramSettings) -> Rewards {
        rules::effective(&program.rewards, self.group_rewards.as_ref(), self.rewards.as_ref())
    }
}

/// A click with its partner: the one a lead carried, or the one its customer is attributed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedClick {
    pub click_id: String,
    pub program_id: String,
    pub link_id: String,
    pub partner_id: String,
    /// Click time, UTC ms.
    pub at: i64,
    /// The click's partner; `None` when its row is gone (such a click is never credited).
    pub partner: Option<PartnerFacts>,
    /// What the click says to the fraud rules (ad click id, click spam, banned referrer).
    pub signals: ClickSignals,
    /// The visitor's country (ISO alpha-2) when the click's row says it.
    pub country: Option<String>,
}

impl LoadedClick {
    fn facts(&self) -> ClickFacts {
        ClickFacts {
            click_id: self.click_id.clone(),
            program_id: self.program_id.clone(),
            partner_id: self.partner_id.clone(),
            link_id: self.link_id.clone(),
            at: self.at,
            partner_banned: self.partner.as_ref().is_none_or(PartnerFacts::is_banned),
        }
    }
}

/// What a lead is decided on.
#[derive(Clone, Debug)]
pub struct LeadFacts<'a> {
    pub program_id: &'a str,
    pub program: &'a ProgramSettings,
    /// The click the lead carried, when its id is known.
    pub presented: Option<LoadedClick>,
    /// The click the customer is attributed to now (from an earlier lead).
    pub existing: Option<LoadedClick>,
    /// The lists' facts about the lead's customer email.
    pub email: EmailFacts,
    pub now: i64,
}

/// A customer already known in the program, as a sale needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerFacts {
    /// The click the customer is attributed to (recorded on the sale event).
    pub click_id: Option<String>,
    /// The customer's first sale time (the start of a recurring reward's window).
    pub first_sale_at: Option<i64>,
    /// The partner the customer is attributed to; `None`: no attribution (or the row is gone).
    pub partner: Option<PartnerFacts>,
    /// The customer's email (from a lead), judged by the email rules.
    pub email: Option<String>,
    /// What the click that brought the customer says to the fraud rules.
    pub click_signals: ClickSignals,
    /// The country of the click that brought the customer, when known.
    pub country: Option<String>,
    /// What the customer earned its partner so far (what the sale reward's caps count).
    pub earned: rules::Earned,
}

/// What a sale is decided on.
#[derive(Clone, Debug)]
pub struct SaleFacts<'a> {
    pub program: &'a ProgramSettings,
    /// `None`: the customer is seen for the first time.
    pub customer: Option<CustomerFacts>,
    /// The lists' facts about the customer's email.
    pub email: EmailFacts,
    pub now: i64,
}

/// A tracked sale, as a refund needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackedSale {
    /// Minor units of the sale's currency.
    pub amount: Option<i64>,
    /// Minor units of the payout currency, when the sale was in another currency.
    pub payout_amount: Option<i64>,
}

impl TrackedSale {
    /// The sale in the payout currency: what refunds are bounded by.
    pub fn base_amount(&self) -> i64 {
        self.payout_amount.or(self.amount).unwrap_or(0)
    }

    /// A refund of `a` minor units of the sale's currency, in the payout currency: pro rata
    /// (half to even) when the sale was converted.
    pub fn to_base(&self, a: i64) -> i64 {
        match (self.payout_amount, self.amount) {
            (Some(p), Some(s)) if s > 0 => mul_div_half_even(a, p, s),
            _ => a,
        }
    }
}

/// What a refund is planned against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefundTarget {
    /// The sale earned no commission: only what was refunded of it so far.
    NoCommission { refunded: i64 },
    /// The sale's commission as stored; `claimed_by_payout`: a payout in flight holds it.
    Commission { commission: SaleCommission, claimed_by_payout: bool },
}

/// What a refund is decided on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundFacts {
    pub sale: TrackedSale,
    pub target: RefundTarget,
}

// ---------------------------------------------------------------------------------------------
// Decisions

/// A commission to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCommissionPlan {
    pub partner_id: String,
    pub kind: Kind,
    /// The commission base (the sale in the payout currency); 0 for a lead.
    pub sale_amount: i64,
    pub amount: i64,
    pub currency: Currency,
    pub status: Status,
    pub reason: Option<RejectReason>,
    /// The fraud rules holding a `pending` commission for the merchant (empty: not held).
    pub hold_reasons: Vec<Rule>,
    /// A first-sale-only reward: the shell must keep the commission only if no other sale of the
    /// customer lands first (concurrent "first" sales), inside the same atomic write.
    pub first_sale_only: bool,
    /// The sale reward's caps: the shell enforces them again inside the atomic write (against
    /// what concurrent sales of the customer stored first), keeping at most the remainder.
    pub cap: Option<Cap>,
}

/// A sale reward's per-customer caps, as the write enforces them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    pub max_amount: Option<i64>,
    pub max_sales: Option<u32>,
}

/// What a lead writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadDecision {
    pub attribution: AttributionOutcome,
    /// The credited click: the customer's new attribution and the event's partner and click.
    pub credited: Option<ClickFacts>,
    /// What the credited click says to the fraud rules (kept with the customer's attribution).
    pub credited_signals: ClickSignals,
    /// The credited click's country (kept with the customer's attribution).
    pub credited_country: Option<String>,
    pub commission: Option<NewCommissionPlan>,
}

/// A sale's amount in the program's payout currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PricedSale {
    /// The commission base, minor units of the payout currency.
    pub base: i64,
    /// The `payout_amount` stored with the event: the base when the sale was converted.
    pub payout_amount: Option<i64>,
}

/// A sale that cannot be recorded as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaleRefusal {
    /// A field is invalid in this program (422 with the field).
    Invalid(Invalid),
    /// The sale is in another currency than the payout's and carries no `payout_amount` (422).
    CurrencyMismatch { sale: Currency, payout: Currency },
}

impl SaleRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            SaleRefusal::Invalid(i) => i.code,
            SaleRefusal::CurrencyMismatch { .. } => "currency_mismatch",
        }
    }

    pub fn message(&self) -> String {
        match self {
            SaleRefusal::Invalid(i) => i.message.clone(),
            SaleRefusal::CurrencyMismatch { sale, payout } => format!(
                "the sale is in {} but the program pays in {}: send `payout_amount` in {}",
                sale.code(),
                payout.code(),
                payout.code()
            ),
        }
    }
}

impl fmt::Display for SaleRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// What a sale writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleDecision {
    pub attribution: AttributionOutcome,
    /// The customer is new: create it (unattributed).
    pub create_customer: bool,
    /// Recorded on the event: the customer's partner (even banned) and click.
    pub partner_id: Option<String>,
    pub click_id: Option<String>,
    pub commission: Option<NewCommissionPlan>,
}

/// What a refund writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefundDecision {
    /// Minor units of the payout currency refunded by this refund.
    pub amount: i64,
    /// What of the sale was refunded when this refund was planned (the state it claims).
    pub refunded_before: i64,
    /// The change to the commission; `None` when the sale has none.
    pub plan: Option<RefundPlan>,
}

/// A refund's effect, stored with it (`refunds.effect`).
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RefundEffect {
    NoCommission,
    CommissionReduced,
    CommissionRejected,
    ClawbackCreated,
    NoChange,
}

impl RefundEffect {
    pub const ALL: [RefundEffect; 5] = [
        RefundEffect::NoCommission,
        RefundEffect::CommissionReduced,
        RefundEffect::CommissionRejected,
        RefundEffect::ClawbackCreated,
        RefundEffect::NoChange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundEffect::NoCommission => "no_commission",
            RefundEffect::CommissionReduced => "commission_reduced",
            RefundEffect::CommissionRejected => "commission_rejected",
            RefundEffect::ClawbackCreated => "clawback_created",
            RefundEffect::NoChange => "no_change",
        }
    }
}

impl RefundDecision {
    pub fn effect(&self) -> RefundEffect {
        match self.plan {
            None => RefundEffect::NoCommission,
            Some(RefundPlan::Reduce { .. }) => RefundEffect::CommissionReduced,
            Some(RefundPlan::Reject) => RefundEffect::CommissionRejected,
            Some(RefundPlan::Clawback { .. }) => RefundEffect::ClawbackCreated,
            Some(RefundPlan::NoChange) => RefundEffect::NoChange,
        }
    }
}

/// A refused refund.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundRefusal {
    /// The sale is fully refunded already, or was for 0 (409).
    NothingToRefund,
    /// A sale without commission: the refund is larger than what remains of it (422).
    ExceedsRemaining { remaining: i64 },
    /// A sale without commission: the refund, converted pro rata, rounds to 0 (422).
    RoundsToNothing,
    /// The commission's refund plan refused it (422); never [`RefundError::NothingToRefund`],
    /// which is [`RefundRefusal::NothingToRefund`].
    Plan(RefundError),
}

impl RefundRefusal {
    /// A conflict with the stored state (409), not an invalid request (422).
    pub fn is_conflict(&self) -> bool {
        matches!(self, RefundRefusal::NothingToRefund)
    }

    pub fn code(&self) -> &'static str {
        match self {
            RefundRefusal::NothingToRefund => RefundError::NothingToRefund.code(),
            RefundRefusal::ExceedsRemaining { .. } => "refund_exceeds_refundable",
            RefundRefusal::RoundsToNothing => "invalid_amount",
            RefundRefusal::Plan(e) => e.code(),
        }
    }

    pub fn message(&self) -> String {
        match self {
            RefundRefusal::NothingToRefund => RefundError::NothingToRefund.message(),
            RefundRefusal::ExceedsRemaining { remaining } => {
                format!("the refund exceeds what remains refundable ({remaining})")
            }
            RefundRefusal::RoundsToNothing => "the refund rounds to nothing".to_string(),
            RefundRefusal::Plan(e) => e.message(),
        }
    }
}

impl fmt::Display for RefundRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// Who gets the credit for a lead, and what it earns. The credited partner (if any) earns the
/// lead reward of its effective rules (program's, or its override's) when it is positive; the
/// program's fraud rules judge it ([`judged`]). A presented click from a banned referrer whose
/// rule rejects is not credited at all: the customer keeps any earlier attribution.
pub fn decide_lead(lead: &LeadRequest, f: &LeadFacts<'_>) -> LeadDecision {
    let s = f.program;
    let banned = |c: &&LoadedClick| {
        c.signals.banned_referrer && s.fraud_rules.action(Rule::BannedReferrer) == fraud::Action::Reject
    };
    let presented_click = f.presented.as_ref().filter(|c| !banned(c));
    let presented = presented_click.map(LoadedClick::facts);
    let existing = f.existing.as_ref().map(LoadedClick::facts);
    match attribute(f.program_id, s.attribution_model, s.attribution_window_days, f.now, presented, existing) {
        Attribution::Unattributed(r) => LeadDecision {
            attribution: r.into(),
            credited: None,
            credited_signals: ClickSignals::default(),
            credited_country: None,
            commission: None,
        },
        Attribution::Attributed(click) => {
            // The winner is one of the two clicks; a credited click's partner is never missing.
            let winner = [presented_click, f.existing.as_ref()]
                .into_iter()
                .flatten()
                .find(|c| c.click_id == click.click_id && c.partner_id == click.partner_id);
            let signals = winner.map(|c| c.signals).unwrap_or_default();
            let country = winner.and_then(|c| c.country.as_deref());
            let commission = winner
                .and_then(|c| c.partner.as_ref())
                .and_then(|p| lead_commission(lead, s, p, (signals, country), f.email));
            LeadDecision {
                attribution: AttributionOutcome::Attributed,
                credited: Some(click),
                credited_signals: signals,
                credited_country: country.map(str::to_string),
                commission,
            }
        }
    }
}

/// The status, reject reason and hold reasons the program's fraud rules give a new commission
/// of partner `p` for a customer with `email`, brought by a click saying `click`.
pub fn judged(
    s: &ProgramSettings,
    p: &PartnerFacts,
    email: Option<&str>,
    facts: EmailFacts,
    click: ClickSignals,
) -> (Status, Option<RejectReason>, Vec<Rule>) {
    let (self_referral, email_domain_match, disposable_email) = fraud::email_signals(email, &p.email, facts);
    let signals = Signals {
        self_referral,
        email_domain_match,
        disposable_email,
        paid_traffic: click.paid_traffic,
        click_spam: click.click_spam,
        banned_referrer: click.banned_referrer,
    };
    match fraud::judge(&s.fraud_rules, &signals) {
        Verdict::Clear => (Status::Pending, None, Vec::new()),
        Verdict::Hold(h) => (Status::Pending, None, h),
        Verdict::Reject(r) => (Status::Rejected, Some(RejectReason::Fraud(r)), Vec::new()),
    }
}

fn lead_commission(
    lead: &LeadRequest,
    s: &ProgramSettings,
    p: &PartnerFacts,
    (click, country): (ClickSignals, Option<&str>),
    facts: EmailFacts,
) -> Option<NewCommissionPlan> {
    let context = Context { country, event_name: Some(&lead.event_name), ..Context::default() };
    let amount = rules::lead_commission(&p.rewards_in(s), &context).filter(|a| *a > 0)?;
    let (status, reason, hold_reasons) = judged(s, p, lead.customer_email.as_deref(), facts, click);
    Some(NewCommissionPlan {
        partner_id: p.id.clone(),
        kind: Kind::Lead,
        sale_amount: 0,
        amount,
        currency: s.payout_currency,
        status,
        reason,
        hold_reasons,
        first_sale_only: false,
        cap: None,
    })
}

/// The sale in the program's payout currency. No silent FX: a sale in another currency needs
/// the merchant's own `payout_amount`; in the payout currency, `payout_amount` (if sent) must
/// equal `amount`.
pub fn price_sale(sale: &SaleRequest, payout_currency: Currency) -> Result<PricedSale, SaleRefusal> {
    if sale.currency == payout_currency {
        return match sale.payout_amount {
            Some(p) if p != sale.amount => Err(SaleRefusal::Invalid(Invalid::new(
                "payout_amount",
                "invalid_amount",
                "payout_amount must equal amount when the sale is in the payout currency",
            ))),
            _ => Ok(PricedSale { base: sale.amount, payout_amount: None }),
        };
    }
    match sale.payout_amount {
        Some(p) => Ok(PricedSale { base: p, payout_amount: Some(p) }),
        None => Err(SaleRefusal::CurrencyMismatch { sale: sale.currency, payout: payout_currency }),
    }
}

impl SaleRequest {
    /// Whether a stored sale of the same invoice is this one (a retry): same customer, amount and
    /// currency. Anything else is a conflict, never a second commission.
    pub fn is_same_sale(&self, customer_external_id: &str, amount: Option<i64>, currency: Option<&str>) -> bool {
        customer_external_id == self.customer_external_id
            && amount == Some(self.amount)
            && currency == Some(self.currency.code())
    }
}

/// What a sale earns. The customer's partner earns the sale reward of its effective rules on
/// the priced base, inside the reward's recurring window; a banned partner earns nothing
/// (`partner_banned`), a customer with no partner neither (`no_attribution`).
pub fn decide_sale(sale: &SaleRequest, priced: &PricedSale, f: &SaleFacts<'_>) -> SaleDecision {
    let s = f.program;
    let customer = f.customer.as_ref();
    let partner = customer.and_then(|c| c.partner.as_ref());
    let (attribution, commission) = match partner {
        None => (AttributionOutcome::NoAttribution, None),
        Some(p) if p.is_banned() => (AttributionOutcome::PartnerBanned, None),
        Some(p) => {
            let rewards = p.rewards_in(s);
            let metadata: Option<serde_json::Map<String, Value>> =
                sale.metadata.as_deref().and_then(|m| crate::wire::from_str(m).ok());
            let facts = rules::Sale {
                base: priced.base,
                first_sale_at: customer.and_then(|c| c.first_sale_at),
                at: f.now,
                context: Context {
                    country: customer.and_then(|c| c.country.as_deref()),
                    product_id: sale.product_id.as_deref(),
                    event_name: Some(&sale.event_name),
                    metadata: metadata.as_ref(),
                    ..Context::default()
                },
                earned: customer.map(|c| c.earned).unwrap_or_default(),
            };
            let reward = rewards.sale.as_ref();
            match rules::sale_decision(&rewards, &facts) {
                (rules::SaleDecision::Commission(amount), Some(terms)) if amount > 0 => {
                    let (email, click) = customer.map(|c| (c.email.as_deref(), c.click_signals)).unwrap_or_default();
                    let (status, reason, hold_reasons) = judged(s, p, email, f.email, click);
                    let plan = NewCommissionPlan {
                        partner_id: p.id.clone(),
                        kind: Kind::Sale,
                        sale_amount: priced.base,
                        amount,
                        currency: s.payout_currency,
                        status,
                        reason,
                        hold_reasons,
                        first_sale_only: terms.duration_months == Some(0),
                        cap: reward
                            .filter(|r| r.max_amount_per_customer.is_some() || r.max_sales_per_customer.is_some())
                            .map(|r| Cap {
                                max_amount: r.max_amount_per_customer,
                                max_sales: r.max_sales_per_customer,
                            }),
                    };
                    (AttributionOutcome::Attributed, Some(plan))
                }
                (rules::SaleDecision::Commission(_) | rules::SaleDecision::NoReward, _) => {
                    (AttributionOutcome::Attributed, None)
                }
                (rules::SaleDecision::OutsideRecurringWindow, _) => (AttributionOutcome::OutsideRecurringWindow, None),
                (rules::SaleDecision::CapReached, _) => (AttributionOutcome::CapReached, None),
            }
        }
    };
    SaleDecision {
        attribution,
        create_customer: customer.is_none(),
        partner_id: partner.map(|p| p.id.clone()),
        click_id: customer.and_then(|c| c.click_id.clone()),
        commission,
    }
}

/// A sale that cannot be priced: paid (through Stripe) in a currency whose settlement is not in
/// the payout currency. It is recorded, credited to nobody and earns nothing: there is no
/// commission base, and Refport never converts at a rate of its own.
pub fn unpriced_sale(f: &SaleFacts<'_>) -> SaleDecision {
    SaleDecision {
        attribution: AttributionOutcome::CurrencyNotSettled,
        create_customer: f.customer.is_none(),
        partner_id: None,
        click_id: None,
        commission: None,
    }
}

/// What a refund of `requested` minor units of the sale's currency (`None`: all that remains)
/// does. Amounts are converted to the payout currency pro rata. A sale without commission only
/// records the refund, bounded by the sale; a commission is changed by [`plan_refund`], a
/// commission claimed by a payout in flight being treated as paid (the transfer amount is
/// fixed, so the refund becomes a clawback netted from the next payout).
pub fn decide_refund(requested: Option<i64>, f: &RefundFacts) -> Result<RefundDecision, RefundRefusal> {
    let requested = requested.map(|a| f.sale.to_base(a));
    match &f.target {
        RefundTarget::NoCommission { refunded } => {
            let remaining = f.sale.base_amount().saturating_sub(*refunded);
            let amount = match requested {
                _ if remaining <= 0 => return Err(RefundRefusal::NothingToRefund),
                Some(a) if a > remaining => return Err(RefundRefusal::ExceedsRemaining { remaining }),
                Some(a) if a <= 0 => return Err(RefundRefusal::RoundsToNothing),
                a => a.unwrap_or(remaining),
            };
            Ok(RefundDecision { amount, refunded_before: *refunded, plan: None })
        }
        RefundTarget::Commission { commission, claimed_by_payout } => {
            let state = SaleCommission {
                status: if *claimed_by_payout { Status::Paid } else { commission.status },
                ..commission.clone()
            };
            let (amount, plan) = plan_refund(&state, requested).map_err(|e| match e {
                RefundError::NothingToRefund => RefundRefusal::NothingToRefund,
                e => RefundRefusal::Plan(e),
            })?;
            Ok(RefundDecision { amount, refunded_before: commission.refunded, plan: Some(plan) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::{Model, Reason, CLICK_SKEW_MS};
    use crate::money::MAX_AMOUNT;
    use crate::program::ProgramInput;
    use crate::rules::{Reward, RewardType};
    use crate::time::DAY_MS;
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000_000;
    const P: &str = "prog_1";
    const CLICK: &str = "clk_01JZ0000000000000000000000";

    fn usd() -> Currency {
        Currency::parse("usd").unwrap()
    }

    fn program(rewards: Rewards) -> ProgramSettings {
        ProgramSettings {
            rewards,
            ..ProgramInput {
                name: "Acme".into(),
                domains: vec!["go.example.com".into()],
                allowed_hosts: vec!["example.com".into()],
                payout_currency: "usd".into(),
                ..Default::default()
            }
            .validate()
            .unwrap()
        }
    }

    fn flat(amount: i64) -> Reward {
        Reward::new(RewardType::Flat, amount, None)
    }
    fn pct(bps: i64, months: Option<u32>) -> Reward {
        Reward::new(RewardType::Percentage, bps, months)
    }
    fn lead_reward(amount: i64) -> Rewards {
        Rewards { lead: Some(flat(amount)), sale: None }
    }
    fn sale_reward(r: Reward) -> Rewards {
        Rewards { lead: None, sale: Some(r) }
    }

    fn partner(id: &str, status: PartnerStatus) -> PartnerFacts {
        PartnerFacts { id: id.into(), email: format!("{id}@partners.test"), status, rewards: None, group_rewards: None }
    }

    fn click(id: &str, partner_id: &str, at: i64, p: Option<PartnerFacts>) -> LoadedClick {
        LoadedClick {
            click_id: id.into(),
            program_id: P.into(),
            link_id: format!("link_{partner_id}"),
            partner_id: partner_id.into(),
            at,
            partner: p,
            signals: ClickSignals::default(),
            country: None,
        }
    }

    fn active_click(id: &str, partner_id: &str, at: i64) -> LoadedClick {
        click(id, partner_id, at, Some(partner(partner_id, PartnerStatus::Active)))
    }

    fn lead(email: Option<&str>) -> LeadRequest {
        LeadRequest {
            customer_external_id: "user_1".into(),
            event_name: DEFAULT_LEAD_EVENT.into(),
            customer_email: email.map(str::to_string),
            customer_name: None,
            click_id: Some(CLICK.into()),
            program_id: None,
            coupon_code: None,
        }
    }

    fn decide_lead_with(
        s: &ProgramSettings,
        email: Option<&str>,
        presented: Option<LoadedClick>,
        existing: Option<LoadedClick>,
    ) -> LeadDecision {
        let facts = EmailFacts::of(email, |d| d == "gmail.com", |d| d == "mailinator.com");
        decide_lead(&lead(email), &LeadFacts { program_id: P, program: s, presented, existing, email: facts, now: NOW })
    }

    fn sale(amount: i64, currency: &str, payout_amount: Option<i64>) -> SaleRequest {
        SaleRequest {
            customer_external_id: "user_1".into(),
            invoice_id: "in_1".into(),
            event_name: DEFAULT_SALE_EVENT.into(),
            amount,
            currency: Currency::parse(currency).unwrap(),
            payout_amount,
            metadata: None,
            program_id: None,
            product_id: None,
            coupon_code: None,
        }
    }

    fn customer(p: Option<PartnerFacts>, first_sale_at: Option<i64>) -> CustomerFacts {
        CustomerFacts {
            click_id: Some(CLICK.into()),
            first_sale_at,
            partner: p,
            email: None,
            click_signals: ClickSignals::default(),
            country: None,
            earned: rules::Earned::default(),
        }
    }

    fn decide_sale_with(s: &ProgramSettings, base: i64, c: Option<CustomerFacts>, now: i64) -> SaleDecision {
        let email = EmailFacts::default();
        let sale = sale(base, "USD", None);
        decide_sale(
            &sale,
            &PricedSale { base, payout_amount: None },
            &SaleFacts { program: s, customer: c, email, now },
        )
    }

    fn commission(status: Status, amount: i64, sale_amount: i64) -> SaleCommission {
        SaleCommission { status, original_amount: amount, amount, sale_amount, refunded: 0, clawed_back: 0 }
    }

    fn in_usd(amount: i64) -> TrackedSale {
        TrackedSale { amount: Some(amount), payout_amount: None }
    }

    // --- vocabulary -------------------------------------------------------------------------

    #[test]
    fn attribution_outcomes_are_todays_stored_values() {
        let stored = [
            "attributed",
            "no_attribution",
            "partner_banned",
            "outside_recurring_window",
            "click_not_found",
            "click_expired",
            "click_in_future",
            "click_other_program",
            "currency_not_settled",
            "cap_reached",
            "coupon_not_found",
        ];
        assert_eq!(AttributionOutcome::ALL.map(AttributionOutcome::as_str), stored);
        for a in AttributionOutcome::ALL {
            assert_eq!(AttributionOutcome::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
            assert_eq!(a.reason(), (a != AttributionOutcome::Attributed).then_some(a.as_str()));
        }
        assert_eq!(AttributionOutcome::parse("Attributed"), None);
        assert_eq!(AttributionOutcome::parse(""), None);
        // Every lead reason is an outcome with the same stored value.
        for r in [
            Reason::ClickNotFound,
            Reason::ClickExpired,
            Reason::ClickInFuture,
            Reason::ClickOtherProgram,
            Reason::PartnerBanned,
        ] {
            assert_eq!(AttributionOutcome::from(r).as_str(), r.as_str());
        }
    }

    #[test]
    fn event_kinds_and_refund_effects() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert_eq!(EventKind::ALL.map(EventKind::as_str), ["lead", "sale"]);
        assert_eq!(EventKind::parse("clawback"), None);
        let effects = ["no_commission", "commission_reduced", "commission_rejected", "clawback_created", "no_change"];
        assert_eq!(RefundEffect::ALL.map(RefundEffect::as_str), effects);
        for e in RefundEffect::ALL {
            assert_eq!(serde_json::to_string(&e).unwrap(), format!("\"{}\"", e.as_str()));
        }
        let d = |plan| RefundDecision { amount: 1, refunded_before: 0, plan };
        assert_eq!(d(None).effect(), RefundEffect::NoCommission);
        assert_eq!(d(Some(RefundPlan::Reduce { new_amount: 1 })).effect(), RefundEffect::CommissionReduced);
        assert_eq!(d(Some(RefundPlan::Reject)).effect(), RefundEffect::CommissionRejected);
        assert_eq!(d(Some(RefundPlan::Clawback { amount: -1 })).effect(), RefundEffect::ClawbackCreated);
        assert_eq!(d(Some(RefundPlan::NoChange)).effect(), RefundEffect::NoChange);
    }

    // --- parse ------------------------------------------------------------------------------

    fn lead_input() -> LeadInput {
        LeadInput {
            click_id: CLICK.into(),
            customer_external_id: " user_1 ".into(),
            customer_email: None,
            customer_name: None,
            event_name: None,
            program_id: None,
            coupon_code: None,
        }
    }

    fn sale_input() -> SaleInput {
        SaleInput {
            customer_external_id: "user_1".into(),
            amount: 4900,
            currency: "USD".into(),
            invoice_id: "in_1".into(),
            event_name: None,
            metadata: None,
            payout_amount: None,
            program_id: None,
            product_id: None,
            coupon_code: None,
        }
    }

    fn assert_invalid<T: fmt::Debug>(r: Result<T, Invalid>, field: &str, code: &str, message: &str) {
        let e = r.unwrap_err();
        assert_eq!((e.field.as_str(), e.code, e.message.as_str()), (field, code, message));
    }

    #[test]
    fn text_fields() {
        assert_eq!(text_field("f", "  a b  "), Ok("a b".into()));
        assert_eq!(text_field("f", &"x".repeat(MAX_ID_LEN)), Ok("x".repeat(MAX_ID_LEN)));
        for bad in ["", "   ", "a\u{0}b", "a\nb", &"x".repeat(MAX_ID_LEN + 1)] {
            assert_invalid(
                text_field("invoice_id", bad),
                "invoice_id",
                "invalid_field",
                "invoice_id must be 1 to 255 printable characters",
            );
        }
        assert_eq!(optional_text("f", None), Ok(None));
        assert_eq!(optional_text("f", Some("  ".into())), Ok(None));
        assert_eq!(optional_text("f", Some(" x ".into())), Ok(Some("x".into())));
        assert!(optional_text("f", Some("a\tb".into())).is_err());
    }

    #[test]
    fn parse_lead_defaults_and_normalises() {
        let l = parse_lead(lead_input()).unwrap();
        assert_eq!(l.customer_external_id, "user_1");
        assert_eq!(l.event_name, "Sign up");
        assert_eq!((l.customer_email, l.customer_name, l.click_id.as_deref()), (None, None, Some(CLICK)));
        let l = parse_lead(LeadInput {
            customer_email: Some(" Ann@Example.COM ".into()),
            customer_name: Some(" Ann ".into()),
            event_name: Some(" Trial ".into()),
            program_id: Some("prog_x".into()),
            ..lead_input()
        })
        .unwrap();
        assert_eq!(l.customer_email.as_deref(), Some("ann@example.com"));
        assert_eq!(l.customer_name.as_deref(), Some("Ann"));
        assert_eq!(l.event_name, "Trial");
        assert_eq!(l.program_id.as_deref(), Some("prog_x"));
        // A blank email is none; a malformed or unknown-shaped click id is no error.
        let l = parse_lead(LeadInput { customer_email: Some("  ".into()), click_id: "garbage".into(), ..lead_input() });
        assert_eq!(l.map(|l| (l.customer_email, l.click_id)), Ok((None, None)));
        assert_eq!(parse_lead(LeadInput { click_id: String::new(), ..lead_input() }).unwrap().click_id, None);
    }

    #[test]
    fn parse_lead_refusals() {
        let msg = |f: &str| format!("{f} must be 1 to 255 printable characters");
        let cases = [
            (
                LeadInput { customer_external_id: " ".into(), ..lead_input() },
                "customer_external_id",
                "invalid_field",
                msg("customer_external_id"),
            ),
            (
                LeadInput { event_name: Some("a\u{7}".into()), ..lead_input() },
                "event_name",
                "invalid_field",
                msg("event_name"),
            ),
            (
                LeadInput { customer_email: Some("nope".into()), ..lead_input() },
                "customer_email",
                "invalid_email",
                "`nope` is not a valid email address".into(),
            ),
            (
                LeadInput { customer_name: Some("x".repeat(256)), ..lead_input() },
                "customer_name",
                "invalid_field",
                msg("customer_name"),
            ),
            (
                LeadInput { click_id: "c".repeat(256), ..lead_input() },
                "click_id",
                "invalid_field",
                "click_id is too long".into(),
            ),
        ];
        for (input, field, code, message) in cases {
            assert_invalid(parse_lead(input), field, code, &message);
        }
        // The first invalid field is reported.
        let both = LeadInput { customer_external_id: "".into(), click_id: "c".repeat(256), ..lead_input() };
        assert_eq!(parse_lead(both).unwrap_err().field, "customer_external_id");
    }

    #[test]
    fn parse_sale_fields() {
        let s = parse_sale(sale_input()).unwrap();
        assert_eq!((s.amount, s.currency, s.payout_amount), (4900, usd(), None));
        assert_eq!((s.event_name.as_str(), s.metadata), ("Purchase", None));
        let mut m = serde_json::Map::new();
        m.insert("plan".into(), Value::String("pro".into()));
        m.insert("seats".into(), Value::from(3));
        let s = parse_sale(SaleInput { metadata: Some(m), payout_amount: Some(0), ..sale_input() }).unwrap();
        assert_eq!(s.metadata.as_deref(), Some(r#"{"plan":"pro","seats":3}"#));
        assert_eq!(s.payout_amount, Some(0));
        assert_eq!(parse_sale(SaleInput { amount: MAX_AMOUNT, ..sale_input() }).unwrap().amount, MAX_AMOUNT);
    }

    #[test]
    fn parse_sale_refusals() {
        let mut big = serde_json::Map::new();
        big.insert("k".into(), Value::String("x".repeat(MAX_METADATA)));
        let cases = [
            (
                SaleInput { customer_external_id: "".into(), ..sale_input() },
                "customer_external_id",
                "invalid_field",
                "customer_external_id must be 1 to 255 printable characters",
            ),
            (
                SaleInput { invoice_id: "\u{1}".into(), ..sale_input() },
                "invoice_id",
                "invalid_field",
                "invoice_id must be 1 to 255 printable characters",
            ),
            (
                SaleInput { amount: -1, ..sale_input() },
                "amount",
                "invalid_amount",
                "amount must be a non-negative integer in minor units",
            ),
            (
                SaleInput { amount: MAX_AMOUNT + 1, ..sale_input() },
                "amount",
                "invalid_amount",
                "amount must be a non-negative integer in minor units",
            ),
            (
                SaleInput { currency: "xyz".into(), ..sale_input() },
                "currency",
                "invalid_currency",
                "`xyz` is not a supported ISO 4217 currency",
            ),
            (
                SaleInput { payout_amount: Some(-5), ..sale_input() },
                "payout_amount",
                "invalid_amount",
                "payout_amount must be a non-negative integer in minor units",
            ),
            (
                SaleInput { metadata: Some(big), ..sale_input() },
                "metadata",
                "invalid_metadata",
                "metadata must be at most 4096 bytes of JSON",
            ),
        ];
        for (input, field, code, message) in cases {
            assert_invalid(parse_sale(input), field, code, message);
        }
    }

    #[test]
    fn parse_refund_amounts() {
        let input = |amount| RefundInput { invoice_id: " in_1 ".into(), amount, program_id: None };
        assert_eq!(
            parse_refund(input(None)),
            Ok(RefundRequest { invoice_id: "in_1".into(), amount: None, program_id: None })
        );
        assert_eq!(parse_refund(input(Some(1))).unwrap().amount, Some(1));
        assert_eq!(parse_refund(input(Some(MAX_AMOUNT))).unwrap().amount, Some(MAX_AMOUNT));
        for bad in [0, -1, MAX_AMOUNT + 1, i64::MIN] {
            assert_invalid(
                parse_refund(input(Some(bad))),
                "amount",
                "invalid_amount",
                "amount must be a positive integer in minor units",
            );
        }
        assert_invalid(
            parse_refund(RefundInput { invoice_id: "".into(), amount: None, program_id: None }),
            "invoice_id",
            "invalid_field",
            "invoice_id must be 1 to 255 printable characters",
        );
    }

    #[test]
    fn bodies_refuse_unknown_fields() {
        let e =
            crate::wire::from_str::<LeadInput>(r#"{"click_id":"x","customer_external_id":"y","nope":1}"#).unwrap_err();
        assert!(e.to_string().starts_with("unknown field `nope`, expected one of `click_id`, `customer_external_id`"));
        assert!(
            crate::wire::from_str::<SaleInput>(r#"{"customer_external_id":"y","amount":1,"currency":"usd"}"#).is_err()
        );
        let r: RefundInput = crate::wire::from_str(r#"{"invoice_id":"in_1"}"#).unwrap();
        assert_eq!((r.amount, r.program_id), (None, None));
        assert!(crate::wire::from_str::<SaleInput>(
            r#"{"customer_external_id":"y","amount":1,"currency":"usd","invoice_id":"i","metadata":"x"}"#
        )
        .is_err());
    }

    // --- lead -------------------------------------------------------------------------------

    #[test]
    fn attributed_lead_earns_the_lead_reward() {
        let s = program(lead_reward(250));
        let d = decide_lead_with(&s, Some("ann@example.com"), Some(active_click(CLICK, "pn_a", NOW - DAY_MS)), None);
        assert_eq!(d.attribution, AttributionOutcome::Attributed);
        assert_eq!(d.credited.as_ref().map(|c| c.partner_id.as_str()), Some("pn_a"));
        let c = d.commission.unwrap();
        assert_eq!((c.partner_id.as_str(), c.kind, c.amount, c.sale_amount), ("pn_a", Kind::Lead, 250, 0));
        assert_eq!((c.status, c.reason, c.currency, c.first_sale_only), (Status::Pending, None, usd(), false));
    }

    #[test]
    fn lead_without_positive_reward_is_attributed_without_commission() {
        for rewards in [Rewards::default(), lead_reward(0), sale_reward(pct(1000, None))] {
            let d = decide_lead_with(&program(rewards), None, Some(active_click(CLICK, "pn_a", NOW)), None);
            assert_eq!(d.attribution, AttributionOutcome::Attributed);
            assert!(d.credited.is_some() && d.commission.is_none());
        }
    }

    #[test]
    fn self_referral_is_created_rejected() {
        let s = program(lead_reward(250));
        let d = decide_lead_with(&s, Some("pn_a@partners.test"), Some(active_click(CLICK, "pn_a", NOW)), None);
        let c = d.commission.unwrap();
        assert_eq!(
            (c.status, c.reason, c.amount),
            (Status::Rejected, Some(RejectReason::Fraud(Rule::SelfReferral)), 250)
        );
        assert_eq!(d.attribution, AttributionOutcome::Attributed);
    }

    #[test]
    fn fraud_rules_hold_or_reject_new_commissions() {
        let s = program(lead_reward(250));
        // Same company domain: held; a free-mail domain shared: not held; disposable: held.
        let d = decide_lead_with(&s, Some("bob@partners.test"), Some(active_click(CLICK, "pn_a", NOW)), None);
        let c = d.commission.unwrap();
        assert_eq!((c.status, c.reason, c.hold_reasons), (Status::Pending, None, vec![Rule::EmailDomainMatch]));
        let d = decide_lead_with(&s, Some("bob@mailinator.com"), Some(active_click(CLICK, "pn_a", NOW)), None);
        assert_eq!(d.commission.unwrap().hold_reasons, vec![Rule::DisposableEmail]);
        // The click's signals: paid traffic and click spam hold, and travel with the attribution.
        let mut k = active_click(CLICK, "pn_a", NOW);
        k.signals = ClickSignals { paid_traffic: true, click_spam: true, banned_referrer: false };
        let d = decide_lead_with(&s, Some("bob@other.test"), Some(k.clone()), None);
        assert_eq!(d.commission.unwrap().hold_reasons, vec![Rule::PaidTraffic, Rule::ClickSpam]);
        assert_eq!(d.credited_signals, k.signals);
        // A rule set to reject rejects; set to off, it is ignored.
        let mut r = s.clone();
        r.fraud_rules =
            r.fraud_rules.with(Rule::PaidTraffic, fraud::Action::Reject).with(Rule::ClickSpam, fraud::Action::Off);
        let c = decide_lead_with(&r, Some("bob@other.test"), Some(k.clone()), None).commission.unwrap();
        assert_eq!(
            (c.status, c.reason, c.hold_reasons),
            (Status::Rejected, Some(RejectReason::Fraud(Rule::PaidTraffic)), vec![])
        );
        // A banned referrer set to reject does not attribute: the earlier click keeps the customer.
        let mut b = active_click(CLICK, "pn_a", NOW);
        b.signals.banned_referrer = true;
        let earlier = active_click("clk_earlier", "pn_b", NOW - 1000);
        let mut r = s.clone();
        r.fraud_rules = r.fraud_rules.with(Rule::BannedReferrer, fraud::Action::Reject);
        let d = decide_lead_with(&r, None, Some(b.clone()), Some(earlier));
        assert_eq!(d.credited.unwrap().partner_id, "pn_b");
        let d = decide_lead_with(&r, None, Some(b.clone()), None);
        assert_eq!((d.attribution, d.commission), (AttributionOutcome::ClickNotFound, None));
        // Held, not rejected, when the rule holds.
        r.fraud_rules = r.fraud_rules.with(Rule::BannedReferrer, fraud::Action::Hold);
        let d = decide_lead_with(&r, None, Some(b), None);
        assert_eq!(d.commission.unwrap().hold_reasons, vec![Rule::BannedReferrer]);
    }

    #[test]
    fn sales_are_judged_on_the_customer_and_its_click() {
        let s = program(Rewards { lead: None, sale: Some(Reward::new(RewardType::Flat, 100, None)) });
        let mut c = customer(Some(partner("pn_a", PartnerStatus::Active)), None);
        c.email = Some("pn_a@partners.test".into());
        let d = decide_sale_with(&s, 1000, Some(c.clone()), NOW);
        let plan = d.commission.unwrap();
        assert_eq!((plan.status, plan.reason), (Status::Rejected, Some(RejectReason::Fraud(Rule::SelfReferral))));
        c.email = Some("someone@else.test".into());
        c.click_signals.paid_traffic = true;
        let plan = decide_sale_with(&s, 1000, Some(c), NOW).commission.unwrap();
        assert_eq!((plan.status, plan.hold_reasons), (Status::Pending, vec![Rule::PaidTraffic]));
    }

    #[test]
    fn unattributed_leads_carry_the_reason() {
        let s = program(lead_reward(250));
        let cases = [
            (None, AttributionOutcome::ClickNotFound),
            (Some(active_click(CLICK, "pn_a", NOW - 91 * DAY_MS)), AttributionOutcome::ClickExpired),
            (Some(active_click(CLICK, "pn_a", NOW + CLICK_SKEW_MS + 1)), AttributionOutcome::ClickInFuture),
            (
                Some(LoadedClick { program_id: "prog_2".into(), ..active_click(CLICK, "pn_a", NOW) }),
                AttributionOutcome::ClickOtherProgram,
            ),
            (
                Some(click(CLICK, "pn_a", NOW, Some(partner("pn_a", PartnerStatus::Banned)))),
                AttributionOutcome::PartnerBanned,
            ),
            // A click whose partner row is gone is never credited.
            (Some(click(CLICK, "pn_a", NOW, None)), AttributionOutcome::PartnerBanned),
        ];
        for (presented, outcome) in cases {
            let d = decide_lead_with(&s, None, presented, None);
            assert_eq!(
                d,
                LeadDecision {
                    attribution: outcome,
                    credited: None,
                    credited_signals: ClickSignals::default(),
                    credited_country: None,
                    commission: None
                }
            );
        }
    }

    #[test]
    fn the_winning_clicks_partner_and_override_earn() {
        let mut s = program(lead_reward(100));
        s.attribution_model = Model::FirstClick;
        let vip = PartnerFacts { rewards: Some(lead_reward(900)), ..partner("pn_old", PartnerStatus::Active) };
        let old = click("clk_old", "pn_old", NOW - 10 * DAY_MS, Some(vip));
        let new = active_click(CLICK, "pn_new", NOW - DAY_MS);
        let d = decide_lead_with(&s, None, Some(new.clone()), Some(old.clone()));
        assert_eq!(d.credited.unwrap().click_id, "clk_old");
        let c = d.commission.unwrap();
        assert_eq!((c.partner_id.as_str(), c.amount), ("pn_old", 900));
        // Last click: the newer presented click takes the customer, at the program's reward.
        s.attribution_model = Model::LastClick;
        let d = decide_lead_with(&s, None, Some(new), Some(old));
        assert_eq!(d.commission.map(|c| (c.partner_id, c.amount)), Some(("pn_new".to_string(), 100)));
    }

    // --- sale -------------------------------------------------------------------------------

    #[test]
    fn pricing_in_and_out_of_the_payout_currency() {
        assert_eq!(price_sale(&sale(4900, "usd", None), usd()), Ok(PricedSale { base: 4900, payout_amount: None }));
        assert_eq!(
            price_sale(&sale(4900, "usd", Some(4900)), usd()),
            Ok(PricedSale { base: 4900, payout_amount: None })
        );
        let e = price_sale(&sale(4900, "usd", Some(4800)), usd()).unwrap_err();
        assert_eq!(
            e,
            SaleRefusal::Invalid(Invalid::new(
                "payout_amount",
                "invalid_amount",
                "payout_amount must equal amount when the sale is in the payout currency"
            ))
        );
        assert_eq!(e.code(), "invalid_amount");
        let e = price_sale(&sale(10_000, "eur", None), usd()).unwrap_err();
        assert_eq!(e.code(), "currency_mismatch");
        assert_eq!(e.message(), "the sale is in eur but the program pays in usd: send `payout_amount` in usd");
        assert_eq!(e.to_string(), e.message());
        assert_eq!(
            price_sale(&sale(10_000, "eur", Some(10_800)), usd()),
            Ok(PricedSale { base: 10_800, payout_amount: Some(10_800) })
        );
        assert_eq!(price_sale(&sale(1000, "jpy", Some(0)), usd()), Ok(PricedSale { base: 0, payout_amount: Some(0) }));
    }

    #[test]
    fn same_sale_is_customer_amount_and_currency() {
        let s = sale(4900, "usd", None);
        assert!(s.is_same_sale("user_1", Some(4900), Some("usd")));
        assert!(!s.is_same_sale("user_2", Some(4900), Some("usd")));
        assert!(!s.is_same_sale("user_1", Some(4901), Some("usd")));
        assert!(!s.is_same_sale("user_1", Some(4900), Some("eur")));
        assert!(!s.is_same_sale("user_1", None, None));
    }

    #[test]
    fn attributed_sale_earns_on_the_base() {
        let s = program(sale_reward(pct(2000, None)));
        let d = decide_sale_with(&s, 4999, Some(customer(Some(partner("pn_a", PartnerStatus::Active)), None)), NOW);
        assert_eq!(d.attribution, AttributionOutcome::Attributed);
        assert_eq!(
            (d.create_customer, d.partner_id.as_deref(), d.click_id.as_deref()),
            (false, Some("pn_a"), Some(CLICK))
        );
        let c = d.commission.unwrap();
        assert_eq!(
            (c.kind, c.sale_amount, c.amount, c.status, c.first_sale_only),
            (Kind::Sale, 4999, 1000, Status::Pending, false)
        );
        // The partner's override replaces the program's sale reward.
        let vip = PartnerFacts { rewards: Some(sale_reward(flat(700))), ..partner("pn_a", PartnerStatus::Active) };
        let d = decide_sale_with(&s, 4999, Some(customer(Some(vip), None)), NOW);
        assert_eq!(d.commission.map(|c| c.amount), Some(700));
    }

    #[test]
    fn unattributed_sales() {
        let s = program(sale_reward(pct(2000, None)));
        let d = decide_sale_with(&s, 1000, None, NOW);
        assert_eq!(
            d,
            SaleDecision {
                attribution: AttributionOutcome::NoAttribution,
                create_customer: true,
                partner_id: None,
                click_id: None,
                commission: None
            }
        );
        // A known customer without a partner still records its click (if any).
        let d = decide_sale_with(&s, 1000, Some(customer(None, None)), NOW);
        assert_eq!(
            (d.attribution, d.create_customer, d.click_id.as_deref()),
            (AttributionOutcome::NoAttribution, false, Some(CLICK))
        );
        // A banned partner is recorded on the event and earns nothing.
        let d = decide_sale_with(&s, 1000, Some(customer(Some(partner("pn_b", PartnerStatus::Banned)), None)), NOW);
        assert_eq!(
            (d.attribution, d.partner_id.as_deref(), d.commission),
            (AttributionOutcome::PartnerBanned, Some("pn_b"), None)
        );
    }

    #[test]
    fn no_or_zero_sale_reward_is_attributed_without_commission() {
        for rewards in [Rewards::default(), lead_reward(100), sale_reward(pct(0, None)), sale_reward(flat(0))] {
            let d = decide_sale_with(
                &program(rewards),
                1000,
                Some(customer(Some(partner("pn_a", PartnerStatus::Active)), None)),
                NOW,
            );
            assert_eq!((d.attribution, d.commission), (AttributionOutcome::Attributed, None));
        }
        // A 10 % reward of a sale of 4 rounds to 0.
        let d = decide_sale_with(
            &program(sale_reward(pct(1000, None))),
            4,
            Some(customer(Some(partner("pn_a", PartnerStatus::Active)), None)),
            NOW,
        );
        assert_eq!((d.attribution, d.commission), (AttributionOutcome::Attributed, None));
    }

    #[test]
    fn first_sale_only_and_recurring_window() {
        let active = || Some(partner("pn_a", PartnerStatus::Active));
        let first_only = program(sale_reward(pct(1000, Some(0))));
        let d = decide_sale_with(&first_only, 1000, Some(customer(active(), None)), NOW);
        assert_eq!(d.commission.map(|c| (c.amount, c.first_sale_only)), Some((100, true)));
        let d = decide_sale_with(&first_only, 1000, Some(customer(active(), Some(NOW - 1))), NOW);
        assert_eq!((d.attribution, d.commission), (AttributionOutcome::OutsideRecurringWindow, None));
        let twelve = program(sale_reward(pct(1000, Some(12))));
        let d = decide_sale_with(&twelve, 1000, Some(customer(active(), Some(NOW - 30 * DAY_MS))), NOW);
        assert_eq!(d.commission.map(|c| (c.amount, c.first_sale_only)), Some((100, false)));
        let d = decide_sale_with(&twelve, 1000, Some(customer(active(), Some(NOW - 400 * DAY_MS))), NOW);
        assert_eq!(d.attribution, AttributionOutcome::OutsideRecurringWindow);
    }

    // --- refund -----------------------------------------------------------------------------

    fn no_commission(sale: TrackedSale, refunded: i64) -> RefundFacts {
        RefundFacts { sale, target: RefundTarget::NoCommission { refunded } }
    }

    fn with_commission(sale: TrackedSale, c: SaleCommission, claimed: bool) -> RefundFacts {
        RefundFacts { sale, target: RefundTarget::Commission { commission: c, claimed_by_payout: claimed } }
    }

    #[test]
    fn refunds_of_a_sale_without_commission() {
        let f = no_commission(in_usd(10_000), 0);
        assert_eq!(decide_refund(None, &f), Ok(RefundDecision { amount: 10_000, refunded_before: 0, plan: None }));
        assert_eq!(decide_refund(Some(2500), &f).map(|d| d.amount), Ok(2500));
        let e = decide_refund(Some(10_001), &f).unwrap_err();
        assert_eq!(e, RefundRefusal::ExceedsRemaining { remaining: 10_000 });
        assert_eq!(
            (e.code(), e.message(), e.is_conflict()),
            ("refund_exceeds_refundable", "the refund exceeds what remains refundable (10000)".to_string(), false)
        );
        let f = no_commission(in_usd(10_000), 7500);
        assert_eq!(decide_refund(None, &f), Ok(RefundDecision { amount: 2500, refunded_before: 7500, plan: None }));
        let done = no_commission(in_usd(10_000), 10_000);
        for r in [None, Some(1)] {
            let e = decide_refund(r, &done).unwrap_err();
            assert_eq!((e, e.code(), e.is_conflict()), (RefundRefusal::NothingToRefund, "nothing_to_refund", true));
            assert_eq!(e.message(), "the sale has nothing left to refund");
        }
        assert_eq!(decide_refund(None, &no_commission(in_usd(0), 0)), Err(RefundRefusal::NothingToRefund));
    }

    #[test]
    fn converted_sales_are_refunded_pro_rata() {
        // €100.00 sold, $108.00 paid on: a €25.00 refund is $27.00.
        let eur = TrackedSale { amount: Some(10_000), payout_amount: Some(10_800) };
        assert_eq!(eur.base_amount(), 10_800);
        assert_eq!(eur.to_base(2500), 2700);
        assert_eq!(decide_refund(Some(2500), &no_commission(eur, 0)).map(|d| d.amount), Ok(2700));
        // On a commission: the plan sees payout units.
        let f = with_commission(eur, commission(Status::Pending, 2160, 10_800), false);
        assert_eq!(
            decide_refund(Some(2500), &f).map(|d| (d.amount, d.plan)),
            Ok((2700, Some(RefundPlan::Reduce { new_amount: 1620 })))
        );
        // A refund that converts to 0 is refused, with the message of its path.
        let tiny = TrackedSale { amount: Some(1_000_000), payout_amount: Some(1) };
        let e = decide_refund(Some(1), &no_commission(tiny, 0)).unwrap_err();
        assert_eq!(
            (e, e.code(), e.message()),
            (RefundRefusal::RoundsToNothing, "invalid_amount", "the refund rounds to nothing".to_string())
        );
        let e = decide_refund(Some(1), &with_commission(tiny, commission(Status::Pending, 1, 1), false)).unwrap_err();
        assert_eq!(
            (e, e.code(), e.message()),
            (
                RefundRefusal::Plan(RefundError::InvalidAmount),
                "invalid_amount",
                "a refund amount must be positive".to_string()
            )
        );
        // A sale of 0 in the sale currency: amounts are taken as they are.
        let zero = TrackedSale { amount: Some(0), payout_amount: Some(50) };
        assert_eq!(zero.to_base(7), 7);
    }

    #[test]
    fn refunds_of_a_commission() {
        let unpaid = with_commission(in_usd(10_000), commission(Status::Approved, 2000, 10_000), false);
        assert_eq!(
            decide_refund(Some(2500), &unpaid),
            Ok(RefundDecision {
                amount: 2500,
                refunded_before: 0,
                plan: Some(RefundPlan::Reduce { new_amount: 1500 })
            })
        );
        assert_eq!(decide_refund(None, &unpaid).map(|d| d.plan), Ok(Some(RefundPlan::Reject)));
        let e = decide_refund(Some(10_001), &unpaid).unwrap_err();
        assert_eq!(e, RefundRefusal::Plan(RefundError::ExceedsRefundable { refundable: 10_000 }));
        assert_eq!(e.message(), "the refund exceeds what remains refundable on the sale (10000 minor units)");
        let paid = with_commission(in_usd(10_000), commission(Status::Paid, 2000, 10_000), false);
        assert_eq!(decide_refund(Some(2500), &paid).map(|d| d.plan), Ok(Some(RefundPlan::Clawback { amount: -500 })));
        let refunded = SaleCommission { refunded: 10_000, ..commission(Status::Paid, 2000, 10_000) };
        let e = decide_refund(None, &with_commission(in_usd(10_000), refunded, false)).unwrap_err();
        assert_eq!((e, e.is_conflict()), (RefundRefusal::NothingToRefund, true));
        // `refunded_before` is the commission's, whatever the refunds table says.
        let partly = SaleCommission { refunded: 4000, ..commission(Status::Pending, 2000, 10_000) };
        assert_eq!(
            decide_refund(Some(1000), &with_commission(in_usd(10_000), partly, false)).map(|d| d.refunded_before),
            Ok(4000)
        );
    }

    #[test]
    fn a_claimed_commission_is_treated_as_paid() {
        for status in [Status::Pending, Status::Approved] {
            let f = with_commission(in_usd(10_000), commission(status, 2000, 10_000), true);
            assert_eq!(decide_refund(Some(2500), &f).map(|d| d.plan), Ok(Some(RefundPlan::Clawback { amount: -500 })));
            assert_eq!(decide_refund(None, &f).map(|d| d.plan), Ok(Some(RefundPlan::Clawback { amount: -2000 })));
        }
    }

    // --- properties -------------------------------------------------------------------------

    fn currency_strategy() -> impl Strategy<Value = Currency> {
        prop::sample::select(vec!["usd", "eur", "gbp", "jpy", "kwd", "chf", "krw", "bhd"])
            .prop_map(|c| Currency::parse(c).unwrap())
    }

    fn status_strategy() -> impl Strategy<Value = PartnerStatus> {
        prop::sample::select(vec![PartnerStatus::Active, PartnerStatus::Invited, PartnerStatus::Banned])
    }

    fn reward_strategy() -> impl Strategy<Value = Option<Reward>> {
        proptest::option::of(prop_oneof![
            (0i64..=100_000).prop_map(flat),
            (0i64..=10_000, proptest::option::of(0u32..=24)).prop_map(|(b, m)| pct(b, m)),
        ])
    }

    proptest! {
        #[test]
        fn refunds_never_exceed_the_sale(
            sale_amount in 0i64..=1_000_000,
            converted in proptest::option::of(0i64..=2_000_000),
            bps in 0i64..=10_000,
            attributed: bool,
            claimed: bool,
            refunds in proptest::collection::vec(proptest::option::of(1i64..=600_000), 1..8),
        ) {
            let sale = TrackedSale { amount: Some(sale_amount), payout_amount: converted };
            let base = sale.base_amount();
            let mut refunded = 0i64;
            let mut c = commission(Status::Pending, mul_div_half_even(base, bps, 10_000), base);
            for r in refunds {
                let f = if attributed {
                    with_commission(sale, c.clone(), claimed)
                } else {
                    no_commission(sale, refunded)
                };
                match decide_refund(r, &f) {
                    Ok(d) => {
                        prop_assert!(d.amount > 0);
                        prop_assert_eq!(d.refunded_before, refunded);
                        prop_assert_eq!(d.plan.is_some(), attributed);
                        if let Some(r) = r { prop_assert_eq!(d.amount, sale.to_base(r)); }
                        refunded += d.amount;
                        c.refunded = refunded;
                        match d.plan {
                            Some(RefundPlan::Reduce { new_amount }) => c.amount = new_amount,
                            Some(RefundPlan::Reject) => c.status = Status::Rejected,
                            Some(RefundPlan::Clawback { amount }) => c.clawed_back -= amount,
                            _ => {}
                        }
                    }
                    Err(e) => {
                        prop_assert_eq!(e.is_conflict(), refunded >= base);
                        if let Some(r) = r { prop_assert!(refunded >= base || sale.to_base(r) > base - refunded || sale.to_base(r) <= 0); }
                    }
                }
                prop_assert!(refunded <= base);
            }
        }

        #[test]
        fn a_claimed_commission_only_ever_claws_back(
            sale_amount in 1i64..=1_000_000,
            bps in 1i64..=10_000,
            status in prop::sample::select(vec![Status::Pending, Status::Approved, Status::Paid]),
            r in proptest::option::of(1i64..=1_000_000),
        ) {
            let amount = mul_div_half_even(sale_amount, bps, 10_000);
            let f = with_commission(in_usd(sale_amount), commission(status, amount, sale_amount), true);
            match decide_refund(r, &f) {
                Ok(d) => {
                    let claws_back = matches!(d.plan, Some(RefundPlan::Clawback { .. } | RefundPlan::NoChange));
                    prop_assert!(claws_back, "{:?}", d.plan);
                    // A full refund takes back all that was paid.
                    if d.amount == sale_amount && amount > 0 {
                        prop_assert_eq!(d.plan, Some(RefundPlan::Clawback { amount: -amount }));
                    }
                }
                Err(e) => prop_assert_eq!(e, RefundRefusal::Plan(RefundError::ExceedsRefundable { refundable: sale_amount })),
            }
        }

        #[test]
        fn another_currency_needs_a_payout_amount(
            sale_currency in currency_strategy(),
            payout in currency_strategy(),
            amount in 0i64..=MAX_AMOUNT,
            payout_amount in proptest::option::of(0i64..=MAX_AMOUNT),
        ) {
            let s = SaleRequest { currency: sale_currency, payout_amount, ..sale(amount, "usd", None) };
            match (price_sale(&s, payout), sale_currency == payout, payout_amount) {
                (Err(SaleRefusal::CurrencyMismatch { sale, payout: p }), false, None) => {
                    prop_assert_eq!((sale, p), (sale_currency, payout));
                }
                (Ok(priced), false, Some(p)) => prop_assert_eq!(priced, PricedSale { base: p, payout_amount: Some(p) }),
                (Ok(priced), true, p) if p.is_none_or(|p| p == amount) => {
                    prop_assert_eq!(priced, PricedSale { base: amount, payout_amount: None });
                }
                (Err(SaleRefusal::Invalid(i)), true, Some(p)) if p != amount => prop_assert_eq!(i.field, "payout_amount"),
                (other, same, p) => prop_assert!(false, "{:?} same={} payout_amount={:?}", other, same, p),
            }
        }

        #[test]
        fn a_banned_partner_earns_nothing(
            lead in 0i64..=10_000,
            sale_r in reward_strategy(),
            override_r in reward_strategy(),
            base in 0i64..=1_000_000,
            age_days in 0i64..=30,
            first_sale_ago in proptest::option::of(0i64..=400),
        ) {
            let s = program(Rewards { lead: Some(flat(lead)), sale: sale_r });
            let rewards = Some(Rewards { lead: Some(flat(lead + 1)), sale: override_r });
            let banned = PartnerFacts { rewards, ..partner("pn_b", PartnerStatus::Banned) };
            let c = click(CLICK, "pn_b", NOW - age_days * DAY_MS, Some(banned.clone()));
            let d = decide_lead_with(&s, None, Some(c.clone()), Some(c));
            prop_assert_eq!(d, LeadDecision { attribution: AttributionOutcome::PartnerBanned, credited: None, credited_signals: ClickSignals::default(), credited_country: None, commission: None });
            let first = first_sale_ago.map(|d| NOW - d * DAY_MS);
            let d = decide_sale_with(&s, base, Some(customer(Some(banned), first)), NOW);
            prop_assert_eq!(d.attribution, AttributionOutcome::PartnerBanned);
            prop_assert_eq!(d.commission, None);
        }

        #[test]
        fn sale_commissions_are_flagged_and_bounded(
            sale_r in reward_strategy(),
            status in status_strategy(),
            base in 0i64..=1_000_000,
            first_sale_ago in proptest::option::of(0i64..=800),
        ) {
            let s = program(Rewards { lead: None, sale: sale_r.clone() });
            let first = first_sale_ago.map(|d| NOW - d * DAY_MS);
            let d = decide_sale_with(&s, base, Some(customer(Some(partner("pn_a", status)), first)), NOW);
            match &d.commission {
                Some(c) => {
                    prop_assert_eq!(d.attribution, AttributionOutcome::Attributed);
                    prop_assert!(status != PartnerStatus::Banned);
                    prop_assert!(c.amount > 0 && c.sale_amount == base && c.status == Status::Pending);
                    let r = sale_r.as_ref().unwrap();
                    prop_assert_eq!(c.first_sale_only, r.duration_months == Some(0));
                    if r.kind == RewardType::Percentage { prop_assert!(c.amount <= base); }
                    if c.first_sale_only { prop_assert!(first.is_none_or(|f| f >= NOW)); }
                }
                // Attributed without a commission: the rules have no sale reward or it computes to 0.
                None if d.attribution == AttributionOutcome::Attributed => {
                    let rules_say = rules::sale_commission(&s.rewards, base, first, NOW);
                    let nothing = matches!(rules_say, rules::SaleDecision::NoReward | rules::SaleDecision::Commission(0));
                    prop_assert!(nothing, "{:?}", rules_say);
                }
                None => {}
            }
        }

        #[test]
        fn attribution_outcome_round_trips(i in 0usize..8) {
            let a = AttributionOutcome::ALL[i];
            prop_assert_eq!(AttributionOutcome::parse(a.as_str()), Some(a));
        }

        #[test]
        fn text_field_output_is_trimmed_printable_and_bounded(s in "\\PC{0,300}|[ \\t\\n\\x00-\\x1f]{0,5}[a-z]{0,10}") {
            match text_field("f", &s) {
                Ok(t) => {
                    prop_assert_eq!(t.as_str(), s.trim());
                    prop_assert!(!t.is_empty() && t.len() <= MAX_ID_LEN && !t.chars().any(char::is_control));
                }
                Err(e) => prop_assert_eq!(e.code, "invalid_field"),
            }
        }
    }
}
