//! Zero-code tracking from the merchant's own Stripe: what a Stripe event on the platform
//! endpoint means for Refport, read from the event's object (shapes of Stripe's API reference and
//! its published fixtures, `stripe/openapi` `openapi/fixtures3.json`), with no I/O.
//!
//! - `checkout.session.completed` / `checkout.session.async_payment_succeeded`: the session's
//!   `client_reference_id` (or `metadata.refport_id`) is a click id: a lead for its customer and,
//!   paid in `payment` mode, a sale keyed by its payment intent. In `subscription` mode the sales
//!   are the invoices'.
//! - `invoice.paid`: a sale keyed by the invoice id, for a customer Refport knows.
//! - `refund.created` / `refund.updated` / `charge.refund.updated`: the refund; `charge.refunded`:
//!   the refunds of the charge (listed at Stripe when the charge does not carry them, as it does
//!   not since API version 2022-11-15). Each refund id applies once, when it has `succeeded`.
//! - `customer.created` / `customer.updated` with `metadata.refport_id`: a lead.
//!
//! The customer's external id in Refport is `metadata.refport_customer_external_id` when the
//! merchant sets one, else the Stripe customer id, else (a guest checkout) its email.

use crate::conversion::{LeadInput, SaleInput};
use serde_json::{Map, Value};

/// The lead event name of every Stripe-tracked lead: one lead per Stripe customer, whichever of
/// its checkout or customer events arrives first.
pub const LEAD_EVENT: &str = "Stripe customer";
/// The event name of sales from Checkout (one-time payments).
pub const CHECKOUT_SALE_EVENT: &str = "Stripe checkout";
/// The event name of sales from paid invoices (subscriptions).
pub const INVOICE_SALE_EVENT: &str = "Stripe invoice";

/// The events the platform endpoint turns into conversions, in the order the dashboard lists
/// them for the merchant to select in Stripe.
pub const CONVERSION_EVENTS: [&str; 9] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "invoice.paid",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "charge.refund.updated",
    "customer.created",
    "customer.updated",
];

/// Why an event changed nothing (the stored `reason`, shown on the Integrations page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// `client_reference_id` / `metadata.refport_id` is set but is no Refport click id.
    NotARefportClick,
    /// No referral on the checkout, and the customer is unknown.
    NoClickId,
    /// The customer was never referred (no lead in Refport).
    NotReferred,
    /// A checkout that is not paid yet (an asynchronous payment method): the sale follows.
    Unpaid,
    /// Nothing was paid.
    ZeroAmount,
    /// A refund of a payment Refport did not track.
    SaleNotFound,
    /// The refund is still pending at Stripe: it applies when it succeeds.
    RefundPending,
    /// The refund failed or was canceled.
    RefundNotSucceeded,
    /// The customer is known in several programs.
    AmbiguousProgram,
    /// An event Refport does not use.
    EventNotHandled,
    /// The object lacks what Refport needs (an id, an amount, a currency).
    Malformed,
    /// The refund's currency is not the sale's.
    CurrencyMismatch,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NotARefportClick => "not_a_refport_click",
            Skip::NoClickId => "no_click_id",
            Skip::NotReferred => "not_referred",
            Skip::Unpaid => "unpaid",
            Skip::ZeroAmount => "zero_amount",
            Skip::SaleNotFound => "sale_not_found",
            Skip::RefundPending => "refund_pending",
            Skip::RefundNotSucceeded => "refund_not_succeeded",
            Skip::AmbiguousProgram => "ambiguous_program",
            Skip::EventNotHandled => "event_not_handled",
            Skip::Malformed => "malformed_object",
            Skip::CurrencyMismatch => "currency_mismatch",
        }
    }
}

/// A completed Checkout Session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkout {
    pub session_id: String,
    /// The referral as sent (`client_reference_id`, else `metadata.refport_id`): a click id
    /// candidate the shell verifies.
    pub reference: Option<String>,
    pub stripe_customer: Option<String>,
    /// The customer's external id in Refport (see the module docs); `None`: no customer at all.
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub mode: CheckoutMode,
    /// `payment_status` is `paid` (or `no_payment_required`).
    pub paid: bool,
    pub amount_total: i64,
    pub currency: Option<String>,
    pub payment_intent: Option<String>,
    /// Subscription mode: the first invoice.
    pub invoice: Option<String>,
    /// The promotion code applied (`discounts[].promotion_code`): its id, and its customer-facing
    /// code when the session carries it expanded (else the shell reads it from Stripe).
    pub promotion_code: Option<(String, Option<String>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckoutMode {
    Payment,
    Subscription,
    Setup,
}

/// A paid invoice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invoice {
    pub id: String,
    pub stripe_customer: Option<String>,
    pub amount_paid: i64,
    pub currency: String,
    pub billing_reason: Option<String>,
    pub subscription: Option<String>,
    /// `paid` (an `invoice.paid` event is; an invoice read from the API may not be).
    pub paid: bool,
}

/// A refund.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub status: RefundStatus,
    pub payment_intent: Option<String>,
    pub charge: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundStatus {
    Succeeded,
    Pending,
    Failed,
}

/// A charge's refunds as `charge.refunded` carries them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeRefunds {
    pub charge: String,
    pub payment_intent: Option<String>,
    /// `None`: the charge does not carry its refunds (the shell lists them at Stripe).
    pub refunds: Option<Vec<Refund>>,
}

/// A Stripe customer with a referral in its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Customer {
    pub id: String,
    pub reference: String,
    pub external_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// What an event asks of Refport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tracked {
    Checkout(Checkout),
    Invoice(Invoice),
    Refund(Refund),
    ChargeRefunded(ChargeRefunds),
    Customer(Customer),
}

/// A non-blank string field, trimmed.
pub fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// An expandable field: the id, or the expanded object's id.
pub fn id_of(v: &Value) -> Option<String> {
    text(v).or_else(|| text(&v["id"]))
}

fn meta(object: &Value, key: &str) -> Option<String> {
    text(&object["metadata"][key])
}

/// The conversion event a Stripe event is, or why it is none.
pub fn parse(kind: &str, object: &Value) -> Result<Tracked, Skip> {
    match kind {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            checkout(object).map(Tracked::Checkout)
        }
        "invoice.paid" => invoice(object).map(Tracked::Invoice),
        "refund.created" | "refund.updated" | "charge.refund.updated" => refund(object).map(Tracked::Refund),
        "charge.refunded" => charge_refunds(object).map(Tracked::ChargeRefunded),
        "customer.created" | "customer.updated" => customer(object).map(Tracked::Customer),
        _ => Err(Skip::EventNotHandled),
    }
}

/// A Checkout Session object.
pub fn checkout(o: &Value) -> Result<Checkout, Skip> {
    let session_id = text(&o["id"]).filter(|s| s.starts_with("cs_")).ok_or(Skip::Malformed)?;
    let mode = match o["mode"].as_str() {
        Some("payment") => CheckoutMode::Payment,
        Some("subscription") => CheckoutMode::Subscription,
        Some("setup") => CheckoutMode::Setup,
        _ => return Err(Skip::Malformed),
    };
    let stripe_customer = id_of(&o["customer"]);
    let email = text(&o["customer_details"]["email"]).or_else(|| text(&o["customer_email"]));
    let external_id = meta(o, "refport_customer_external_id")
        .or_else(|| stripe_customer.clone())
        .or_else(|| email.as_deref().map(crate::commission::lowercase));
    Ok(Checkout {
        session_id,
        reference: text(&o["client_reference_id"]).or_else(|| meta(o, "refport_id")),
        stripe_customer,
        external_id,
        email,
        name: text(&o["customer_details"]["name"]),
        mode,
        paid: matches!(o["payment_status"].as_str(), Some("paid" | "no_payment_required")),
        amount_total: o["amount_total"].as_i64().unwrap_or(0),
        currency: text(&o["currency"]),
        payment_intent: id_of(&o["payment_intent"]),
        invoice: id_of(&o["invoice"]),
        promotion_code: promotion_code(o),
    })
}

/// The first promotion code of a session's `discounts` (an id, or the expanded object).
fn promotion_code(o: &Value) -> Option<(String, Option<String>)> {
    let discounts = o["discounts"].as_array()?;
    discounts.iter().map(|d| &d["promotion_code"]).find_map(|p| Some((id_of(p)?, text(&p["code"]))))
}

/// An Invoice object (an `invoice.paid` event's, or one read from the API).
pub fn invoice(o: &Value) -> Result<Invoice, Skip> {
    let id = text(&o["id"]).filter(|s| s.starts_with("in_")).ok_or(Skip::Malformed)?;
    let currency = text(&o["currency"]).ok_or(Skip::Malformed)?;
    // The subscription: `parent.subscription_details.subscription` since API 2025-03-31, a
    // top-level `subscription` before.
    let subscription =
        id_of(&o["parent"]["subscription_details"]["subscription"]).or_else(|| id_of(&o["subscription"]));
    Ok(Invoice {
        id,
        stripe_customer: id_of(&o["customer"]),
        amount_paid: o["amount_paid"].as_i64().ok_or(Skip::Malformed)?,
        currency,
        billing_reason: text(&o["billing_reason"]),
        subscription,
        paid: o["status"].as_str() == Some("paid"),
    })
}

/// A Refund object.
pub fn refund(o: &Value) -> Result<Refund, Skip> {
    let id = text(&o["id"]).filter(|s| s.starts_with("re_") || s.starts_with("pyr_")).ok_or(Skip::Malformed)?;
    let amount = o["amount"].as_i64().filter(|a| *a >= 0).ok_or(Skip::Malformed)?;
    let status = match o["status"].as_str() {
        Some("succeeded") => RefundStatus::Succeeded,
        Some("pending" | "requires_action") => RefundStatus::Pending,
        Some(_) => RefundStatus::Failed,
        None => return Err(Skip::Malformed),
    };
    Ok(Refund {
        id,
        amount,
        currency: text(&o["currency"]).ok_or(Skip::Malformed)?,
        status,
        payment_intent: id_of(&o["payment_intent"]),
        charge: id_of(&o["charge"]),
    })
}

/// A Charge object of `charge.refunded`, with its refunds when it carries them.
pub fn charge_refunds(o: &Value) -> Result<ChargeRefunds, Skip> {
    let charge = text(&o["id"]).filter(|s| s.starts_with("ch_") || s.starts_with("py_")).ok_or(Skip::Malformed)?;
    let refunds = match o["refunds"]["data"].as_array() {
        // A list with more pages is not all of them: the shell lists them itself.
        Some(list) if o["refunds"]["has_more"] != Value::Bool(true) => {
            Some(list.iter().map(refund).collect::<Result<Vec<_>, _>>()?)
        }
        _ => None,
    };
    Ok(ChargeRefunds { charge, payment_intent: id_of(&o["payment_intent"]), refunds })
}

/// A Customer object: a lead when its metadata carries a referral.
pub fn customer(o: &Value) -> Result<Customer, Skip> {
    let id = text(&o["id"]).filter(|s| s.starts_with("cus_")).ok_or(Skip::Malformed)?;
    let reference = meta(o, "refport_id").ok_or(Skip::NoClickId)?;
    Ok(Customer {
        external_id: meta(o, "refport_customer_external_id").unwrap_or_else(|| id.clone()),
        id,
        reference,
        email: text(&o["email"]),
        name: text(&o["name"]),
    })
}

/// Whether a referral text has the shape of a Refport click id (`clk_` and base62); whether it
/// is one is the signature's (or the click row's) to say.
pub fn looks_like_click(reference: &str) -> bool {
    reference
        .strip_prefix("clk_")
        .is_some_and(|r| !r.is_empty() && r.len() <= 106 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The lead a referral makes, as a track-API body (validated by `conversion::parse_lead`).
pub fn lead_input(click_id: &str, external_id: &str, email: Option<&str>, name: Option<&str>) -> LeadInput {
    LeadInput {
        click_id: click_id.to_string(),
        customer_external_id: external_id.to_string(),
        customer_email: email.map(str::to_string),
        customer_name: name.map(str::to_string),
        event_name: Some(LEAD_EVENT.into()),
        program_id: None,
        coupon_code: None,
    }
}

/// A sale as a track-API body (validated by `conversion::parse_sale`): `key` is its idempotency
/// key (the payment intent of a one-time checkout, the invoice id of an invoice), `payout_amount`
/// the settlement amount when the payment is in another currency than the payout currency.
pub struct StripeSale<'a> {
    pub external_id: &'a str,
    pub key: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub payout_amount: Option<i64>,
    pub event_name: &'a str,
    /// Stripe ids kept with the sale (`metadata`), e.g. `stripe_checkout_session`.
    pub stripe_ids: &'a [(&'a str, &'a str)],
    /// The promotion code the buyer applied: a Refport coupon code attributes the sale.
    pub coupon_code: Option<&'a str>,
}

pub fn sale_input(s: &StripeSale<'_>) -> SaleInput {
    let mut metadata = Map::new();
    for (k, v) in s.stripe_ids {
        metadata.insert((*k).to_string(), Value::String((*v).to_string()));
    }
    SaleInput {
        customer_external_id: s.external_id.to_string(),
        amount: s.amount,
        currency: s.currency.to_string(),
        invoice_id: s.key.to_string(),
        event_name: Some(s.event_name.to_string()),
        metadata: Some(metadata),
        payout_amount: s.payout_amount,
        program_id: None,
        product_id: None,
        coupon_code: s.coupon_code.map(str::to_string),
    }
}

/// The settlement of a payment in another currency: the charge's balance transaction
/// (`amount` and `currency` of the money that reached the merchant's balance). It prices the
/// commission only when it settled in the payout currency.
pub fn settlement_in(balance_transaction: &Value, payout_currency: &str) -> Option<i64> {
    let currency = balance_transaction["currency"].as_str()?;
    let amount = balance_transaction["amount"].as_i64()?;
    (currency.eq_ignore_ascii_case(payout_currency) && amount >= 0).then_some(amount)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The `checkout.session` of Stripe's fixtures (`stripe/openapi` fixtures3.json), trimmed to
    /// the fields read here, completed and paid.
    fn session() -> Value {
        json!({
            "id": "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY",
            "object": "checkout.session", "mode": "payment", "payment_status": "paid",
            "status": "complete", "amount_total": 4900, "currency": "eur",
            "client_reference_id": "clk_2Vx9", "customer": null,
            "customer_details": {"email": "Ada@Example.com", "name": "Ada"},
            "customer_email": null, "metadata": {}, "payment_intent": "pi_1PgafyB7WZ01zgkWSjxsAJo3",
            "invoice": null, "subscription": null
        })
    }

    #[test]
    fn a_guest_checkout_is_keyed_by_its_email_and_payment_intent() {
        let c = checkout(&session()).unwrap();
        assert_eq!(c.reference.as_deref(), Some("clk_2Vx9"));
        assert_eq!(c.external_id.as_deref(), Some("ada@example.com"));
        assert_eq!(c.payment_intent.as_deref(), Some("pi_1PgafyB7WZ01zgkWSjxsAJo3"));
        assert!(c.paid && c.mode == CheckoutMode::Payment && c.amount_total == 4900);
    }

    #[test]
    fn metadata_names_the_referral_and_the_external_id() {
        let mut s = session();
        s["client_reference_id"] = Value::Null;
        s["customer"] = json!({"id": "cus_123", "object": "customer"});
        s["metadata"] = json!({"refport_id": "clk_meta", "refport_customer_external_id": "user_9"});
        let c = checkout(&s).unwrap();
        assert_eq!(c.reference.as_deref(), Some("clk_meta"));
        assert_eq!(c.stripe_customer.as_deref(), Some("cus_123"));
        assert_eq!(c.external_id.as_deref(), Some("user_9"));
        s["metadata"] = json!({});
        assert_eq!(checkout(&s).unwrap().external_id.as_deref(), Some("cus_123"));
    }

    #[test]
    fn unpaid_and_malformed_sessions() {
        let mut s = session();
        s["payment_status"] = json!("unpaid");
        assert!(!checkout(&s).unwrap().paid);
        s["mode"] = json!("nope");
        assert_eq!(checkout(&s), Err(Skip::Malformed));
        assert_eq!(checkout(&json!({"id": "x"})), Err(Skip::Malformed));
    }

    #[test]
    fn promotion_codes_as_ids_or_expanded() {
        let mut s = session();
        assert_eq!(checkout(&s).unwrap().promotion_code, None);
        s["discounts"] =
            json!([{"coupon": "co_1", "promotion_code": null}, {"coupon": null, "promotion_code": "promo_1"}]);
        assert_eq!(checkout(&s).unwrap().promotion_code, Some(("promo_1".into(), None)));
        s["discounts"] = json!([{"coupon": null, "promotion_code": {"id": "promo_2", "object": "promotion_code", "code": "JANE20"}}]);
        assert_eq!(checkout(&s).unwrap().promotion_code, Some(("promo_2".into(), Some("JANE20".into()))));
        s["discounts"] = json!(null);
        assert_eq!(checkout(&s).unwrap().promotion_code, None);
    }

    #[test]
    fn invoices_of_both_api_generations() {
        let new = json!({"id": "in_1", "customer": "cus_1", "amount_paid": 1500, "currency": "usd", "status": "paid",
            "billing_reason": "subscription_cycle",
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_1"}}});
        let i = invoice(&new).unwrap();
        assert_eq!((i.subscription.as_deref(), i.amount_paid, i.paid), (Some("sub_1"), 1500, true));
        let old =
            json!({"id": "in_2", "customer": "cus_1", "amount_paid": 0, "currency": "usd", "subscription": "sub_2"});
        let i = invoice(&old).unwrap();
        assert_eq!((i.subscription.as_deref(), i.paid), (Some("sub_2"), false));
        assert_eq!(invoice(&json!({"id": "in_3", "currency": "usd"})), Err(Skip::Malformed));
    }

    #[test]
    fn refunds_and_their_statuses() {
        let r = json!({"id": "re_1", "object": "refund", "amount": 100, "currency": "usd", "status": "succeeded",
            "charge": "ch_1", "payment_intent": null});
        let parsed = refund(&r).unwrap();
        assert_eq!(
            (parsed.status, parsed.charge.as_deref(), parsed.payment_intent),
            (RefundStatus::Succeeded, Some("ch_1"), None)
        );
        for (s, want) in [
            ("pending", RefundStatus::Pending),
            ("requires_action", RefundStatus::Pending),
            ("failed", RefundStatus::Failed),
            ("canceled", RefundStatus::Failed),
        ] {
            let mut r = r.clone();
            r["status"] = json!(s);
            assert_eq!(refund(&r).unwrap().status, want);
        }
        let charge = json!({"id": "ch_1", "payment_intent": "pi_1", "refunds": {"object": "list", "data": [r], "has_more": false}});
        assert_eq!(charge_refunds(&charge).unwrap().refunds.unwrap().len(), 1);
        // Not carried (API 2022-11-15 and later), or only a first page: listed at Stripe.
        assert_eq!(charge_refunds(&json!({"id": "ch_1"})).unwrap().refunds, None);
        let more = json!({"id": "ch_1", "refunds": {"data": [], "has_more": true}});
        assert_eq!(charge_refunds(&more).unwrap().refunds, None);
    }

    #[test]
    fn customers_need_a_referral() {
        let c = json!({"id": "cus_1", "email": "a@b.test", "metadata": {"refport_id": "clk_x"}});
        let parsed = customer(&c).unwrap();
        assert_eq!((parsed.external_id.as_str(), parsed.reference.as_str()), ("cus_1", "clk_x"));
        assert_eq!(customer(&json!({"id": "cus_1", "metadata": {}})), Err(Skip::NoClickId));
        assert_eq!(parse("payout.paid", &json!({})), Err(Skip::EventNotHandled));
    }

    #[test]
    fn click_shapes() {
        assert!(looks_like_click("clk_AbC123"));
        for bad in ["clk_", "order-42", "clk_a-b", "CLK_abc"] {
            assert!(!looks_like_click(bad), "{bad}");
        }
    }

    #[test]
    fn settlement_only_in_the_payout_currency() {
        let bt = json!({"id": "txn_1", "amount": 5290, "currency": "usd", "exchange_rate": 1.08});
        assert_eq!(settlement_in(&bt, "usd"), Some(5290));
        assert_eq!(settlement_in(&bt, "eur"), None);
        assert_eq!(settlement_in(&json!({}), "usd"), None);
    }
}
