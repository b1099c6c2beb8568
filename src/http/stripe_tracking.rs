//! Zero-code tracking: the merchant's own Stripe payments, received on the platform webhook
//! endpoint, become leads, sales and refunds through the same decisions and writes as the track
//! API (`track::lead_in`, `track::sale_in`, `track::refund_in`). What each event means is
//! `refport_core::stripe_tracking`'s; this module loads, asks Stripe what events do not carry,
//! and writes.
//!
//! Exactly once, whatever Stripe's order and repetitions: a lead is keyed by (program, customer,
//! `Stripe customer`), a checkout's sale by its payment intent, an invoice's by the invoice id,
//! a refund by the Stripe refund id. An `invoice.paid` that arrives before the checkout that
//! referred its customer changes nothing; the checkout then reads its first invoice from Stripe.

use super::error::{ApiError, ApiResult};
use super::track::{lead_in, refund_in, sale_in, Pricing};
use crate::state::AppState;
use crate::store::conversions::{self, Event, Recorded};
use crate::store::stripe_webhooks::{self, Outcome};
use crate::store::{clicks, coupons, programs};
use crate::stripe::{Refused, Stripe};
use refport_core::conversion::{self, AttributionOutcome, LeadInput};
use refport_core::coupon::CouponCode;
use refport_core::stripe_tracking::{
    self as st, Checkout, CheckoutMode, Invoice, Refund, RefundStatus, Skip, StripeSale, Tracked,
};
use serde_json::Value;

/// What one event did, and whether it queued outgoing webhooks.
pub struct Tracking {
    pub outcome: Outcome,
    pub deliveries: usize,
}

/// Turns event `kind` with its `object` into conversions. Errors are for Stripe to retry (the
/// database or Stripe did not answer); a refusal of what the event says is an `ignored` outcome.
pub async fn track(state: &AppState, now: i64, kind: &str, object: &Value) -> ApiResult<Tracking> {
    let mut t = Tracker { state, now, deliveries: 0 };
    let outcome = match st::parse(kind, object) {
        Err(skip) => ignored(skip.as_str(), Outcome { object_id: st::text(&object["id"]), ..Outcome::default() }),
        Ok(tracked) => match t.tracked(tracked).await {
            Ok(o) => o,
            Err(e) if is_refusal(&e) => {
                ignored(e.code(), Outcome { object_id: st::text(&object["id"]), ..Outcome::default() })
            }
            Err(e) => return Err(e),
        },
    };
    Ok(Tracking { outcome, deliveries: t.deliveries })
}

/// How long a refund that found no sale is looked for again by a new sale: Stripe retries a
/// failed delivery for up to three days.
const UNMATCHED_REFUND_WINDOW_MS: i64 = 3 * 24 * 3600 * 1000;

/// What paid a sale, to find its settlement when it is in another currency.
#[derive(Clone, Copy)]
enum Paid<'a> {
    /// This payment intent (a checkout's).
    By(Option<&'a str>),
    /// The invoice that is the sale's key (its payments name the payment intent).
    ByInvoice,
}

/// A refusal of the event's content (it would be refused again): recorded, not retried.
fn is_refusal(e: &ApiError) -> bool {
    match e {
        ApiError::Conflict { code, .. } => *code != "concurrent_update",
        ApiError::BadRequest { .. } | ApiError::Invalid(_) | ApiError::Unprocessable { .. } | ApiError::NotFound(_) => {
            true
        }
        _ => false,
    }
}

fn ignored(reason: &'static str, base: Outcome) -> Outcome {
    Outcome { outcome: "ignored", effect: None, reason: Some(reason), ..base }
}

/// A Stripe read that failed: retried by Stripe (the event is answered 503).
fn unavailable(what: &str, r: Refused) -> ApiError {
    worker::console_error!("stripe tracking: {what}: {r}");
    ApiError::Unavailable("Stripe did not answer; the event will be retried")
}

/// Who a referral brings, as the Stripe object names them.
struct Referred<'a> {
    external_id: &'a str,
    email: Option<&'a str>,
    name: Option<&'a str>,
    stripe_customer: Option<&'a str>,
}

struct Tracker<'a> {
    state: &'a AppState,
    now: i64,
    deliveries: usize,
}

/// What a recorded conversion says of the event: its partner, or why it has none.
fn credit(out: &mut Outcome, event: &Event) {
    if event.attribution.is_attributed() {
        out.partner_id = event.partner_id.clone();
    } else {
        // Why this conversion is credited to nobody (a lead of the same event may still be).
        out.reason = event.attribution.reason();
    }
    out.program_id = Some(event.program_id.clone());
}

fn settle(out: Outcome, effect: &'static str) -> Outcome {
    let outcome = if out.partner_id.is_some() { "attributed" } else { "unattributed" };
    Outcome { outcome, effect: Some(effect), ..out }
}

impl Tracker<'_> {
    async fn tracked(&mut self, tracked: Tracked) -> ApiResult<Outcome> {
        match tracked {
            Tracked::Checkout(c) => self.checkout(c).await,
            Tracked::Invoice(i) => {
                let base = Outcome {
                    object_id: Some(i.id.clone()),
                    stripe_customer_id: i.stripe_customer.clone(),
                    amount: Some(i.amount_paid),
                    currency: Some(i.currency.clone()),
                    ..Outcome::default()
                };
                self.invoice(&i, None, base).await
            }
            Tracked::Refund(r) => self.refunds(vec![r], None).await,
            Tracked::ChargeRefunded(c) => {
                let refunds = match c.refunds {
                    Some(list) => list,
                    None => {
                        let stripe = self.stripe()?;
                        let listed =
                            stripe.refunds_of(("charge", &c.charge)).await.map_err(|r| unavailable("refunds", r))?;
                        listed.iter().filter_map(|r| st::refund(r).ok()).collect()
                    }
                };
                self.refunds(refunds, Some(c.charge)).await
            }
            Tracked::Customer(cu) => {
                let base = Outcome {
                    object_id: Some(cu.id.clone()),
                    stripe_customer_id: Some(cu.id.clone()),
                    ..Outcome::default()
                };
                let click = match self.click(&cu.reference).await? {
                    Ok(k) => k,
                    Err(skip) => return Ok(ignored(skip, base)),
                };
                let mut out = base;
                let who = Referred {
                    external_id: &cu.external_id,
                    email: cu.email.as_deref(),
                    name: cu.name.as_deref(),
                    stripe_customer: Some(&cu.id),
                };
                if let Some(recorded) = self.lead(&click, &who, None, &mut out).await? {
                    self.unreferred_invoices(&recorded, Some(&cu.id), click.created_at).await?;
                }
                Ok(settle(out, "lead"))
            }
        }
    }

    fn stripe(&self) -> ApiResult<Stripe> {
        Stripe::from_state(self.state)
            .map_err(|_| ApiError::unprocessable("stripe_key_missing", "STRIPE_SECRET_KEY is not set"))
    }

    /// The click a referral names, or why it names none.
    async fn click(&self, reference: &str) -> ApiResult<Result<clicks::ClickForLead, &'static str>> {
        if !st::looks_like_click(reference) {
            return Ok(Err(Skip::NotARefportClick.as_str()));
        }
        let key = self.state.secrets.click_key();
        Ok(clicks::get_for_lead(&self.state.db, key.as_ref(), reference)
            .await?
            .ok_or(AttributionOutcome::ClickNotFound.as_str()))
    }

    /// The lead of a referred Stripe customer, which remembers the Stripe customer id, credited
    /// to `out`. A customer the program already has with a partner (a lead tracked through the
    /// API, say) gets no second lead: `None`, and `out` names its partner.
    async fn lead(
        &mut self,
        click: &clicks::ClickForLead,
        c: &Referred<'_>,
        coupon: Option<&str>,
        out: &mut Outcome,
    ) -> ApiResult<Option<Recorded>> {
        let (db, program_id) = (&self.state.db, click.program_id.as_str());
        let existing = conversions::customer(db, program_id, c.external_id).await?;
        let recorded = match existing.and_then(|cu| cu.partner_id) {
            Some(partner)
                if conversions::lead_event(db, program_id, c.external_id, st::LEAD_EVENT).await?.is_none() =>
            {
                out.partner_id = Some(partner);
                out.program_id = Some(program_id.to_string());
                None
            }
            _ => {
                let input = st::lead_input(&click.id, c.external_id, c.email, c.name);
                let lead = conversion::parse_lead(LeadInput { coupon_code: coupon.map(str::to_string), ..input })?;
                let recorded = lead_in(self.state, self.now, program_id, &lead, Some(click.clone())).await?;
                self.deliveries += recorded.deliveries;
                credit(out, &recorded.stored.event);
                Some(recorded)
            }
        };
        if let Some(cus) = c.stripe_customer {
            conversions::set_stripe_customer(db, program_id, c.external_id, cus).await?;
        }
        Ok(recorded)
    }

    /// Invoices of a newly referred Stripe customer that were paid, and received, after its click
    /// but before its referral (Stripe does not order events): each is read from Stripe and
    /// counted now, after the referral's own sale (the first sale decides recurring rewards),
    /// and its event's outcome revised.
    async fn unreferred_invoices(&mut self, lead: &Recorded, cus: Option<&str>, since: i64) -> ApiResult<()> {
        let (Some(cus), true) = (cus, lead.new) else {
            return Ok(());
        };
        let e = &lead.stored.event;
        let (program_id, external_id) = (e.program_id.as_str(), e.customer_external_id.as_str());
        let parked = stripe_webhooks::unreferred_invoices(&self.state.db, cus, since).await?;
        if parked.is_empty() {
            return Ok(());
        }
        let Ok(stripe) = self.stripe() else {
            return Ok(()); // without STRIPE_SECRET_KEY they stay as received
        };
        for (event_id, invoice_id) in parked {
            let raw = stripe.invoice(&invoice_id).await.map_err(|r| unavailable("invoice", r))?;
            let Ok(invoice) = st::invoice(&raw) else { continue };
            if !invoice.paid || invoice.stripe_customer.as_deref() != Some(cus) {
                continue;
            }
            let counted = self.invoice(&invoice, Some((program_id, external_id)), Outcome::default()).await?;
            stripe_webhooks::revise(&self.state.db, &event_id, &counted).await?;
        }
        Ok(())
    }

    async fn checkout(&mut self, c: Checkout) -> ApiResult<Outcome> {
        let base = Outcome {
            object_id: Some(c.session_id.clone()),
            stripe_customer_id: c.stripe_customer.clone(),
            amount: (c.mode == CheckoutMode::Payment).then_some(c.amount_total),
            currency: c.currency.clone(),
            ..Outcome::default()
        };
        let Some(mut external_id) = c.external_id.clone() else {
            return Ok(ignored(Skip::Malformed.as_str(), base));
        };
        // The promotion code applied, which may be a Refport coupon code.
        let coupon = self.promotion_code(&c).await?;
        // The referral, else a customer Refport already knows (a returning customer), else the
        // program of a coupon code.
        let click = match &c.reference {
            Some(r) => self.click(r).await?,
            None => Err(Skip::NoClickId.as_str()),
        };
        let mut out = base;
        let (mut lead, mut sold) = (None, false);
        let referred_id = external_id.clone();
        let who = Referred {
            external_id: &referred_id,
            email: c.email.as_deref(),
            name: c.name.as_deref(),
            stripe_customer: c.stripe_customer.as_deref(),
        };
        let program_id = match &click {
            Ok(k) => {
                lead = self.lead(k, &who, coupon.as_deref(), &mut out).await?;
                k.program_id.clone()
            }
            Err(skip) => match self.known_customer(c.stripe_customer.as_deref().unwrap_or(&external_id)).await? {
                Ok(known) => {
                    external_id = known.external_id;
                    known.program_id
                }
                Err(Skip::NotReferred) => match coupon.as_deref() {
                    Some(code) => match self.coupon_lead(code, &who, &mut out).await? {
                        Ok((program_id, recorded)) => {
                            lead = Some(recorded);
                            program_id
                        }
                        Err(reason) => return Ok(ignored(reason, out)),
                    },
                    None => return Ok(ignored(skip, out)),
                },
                Err(other) => return Ok(ignored(other.as_str(), out)),
            },
        };
        match c.mode {
            CheckoutMode::Setup => {}
            CheckoutMode::Payment if !c.paid => out.reason = out.reason.or(Some(Skip::Unpaid.as_str())),
            CheckoutMode::Payment if c.amount_total <= 0 => {}
            CheckoutMode::Payment => {
                let Some(currency) = c.currency.as_deref() else {
                    return Ok(ignored(Skip::Malformed.as_str(), out));
                };
                let key = c.payment_intent.as_deref().unwrap_or(&c.session_id);
                let mut ids = vec![("stripe_checkout_session", c.session_id.as_str())];
                if let Some(pi) = c.payment_intent.as_deref() {
                    ids.push(("stripe_payment_intent", pi));
                }
                let sale = StripeSale {
                    external_id: &external_id,
                    key,
                    amount: c.amount_total,
                    currency,
                    payout_amount: None,
                    event_name: st::CHECKOUT_SALE_EVENT,
                    stripe_ids: &ids,
                    coupon_code: coupon.as_deref(),
                };
                let recorded = self.sale(&program_id, sale, Paid::By(c.payment_intent.as_deref())).await?;
                credit(&mut out, &recorded.stored.event);
                sold = true;
            }
            CheckoutMode::Subscription => {
                // The first invoice may have been paid (and its `invoice.paid` received, before
                // this lead existed) already: read it from Stripe and record its sale now.
                if let (Some(invoice_id), Ok(stripe)) = (c.invoice.as_deref(), self.stripe()) {
                    let raw = stripe.invoice(invoice_id).await.map_err(|r| unavailable("invoice", r))?;
                    if let Ok(invoice) = st::invoice(&raw) {
                        if invoice.paid && invoice.amount_paid > 0 {
                            let first = self.invoice(&invoice, Some((&program_id, &external_id)), out.clone()).await?;
                            if first.effect == Some("sale") {
                                out.partner_id = first.partner_id.or(out.partner_id);
                                out.reason = first.reason;
                                out.amount = first.amount;
                                out.currency = first.currency;
                                sold = true;
                            }
                        }
                    }
                }
            }
        }
        out.program_id = out.program_id.or(Some(program_id));
        if let (Some(recorded), Ok(k)) = (&lead, &click) {
            self.unreferred_invoices(recorded, c.stripe_customer.as_deref(), k.created_at).await?;
        }
        // A lead named only when this event made it, or when there is nothing else to name.
        let new_lead = lead.as_ref().is_some_and(|r| r.new);
        let effect = match (new_lead, sold) {
            (true, true) => "lead_and_sale",
            (_, true) => "sale",
            // A returning customer's checkout that sold nothing (unpaid, free, setup).
            (_, false) if click.is_err() && lead.is_none() => {
                let reason = out.reason.unwrap_or(Skip::ZeroAmount.as_str());
                return Ok(ignored(reason, out));
            }
            _ => "lead",
        };
        Ok(settle(out, effect))
    }

    /// The customer-facing code of a checkout's promotion code: carried expanded, else read from
    /// Stripe (without STRIPE_SECRET_KEY: none).
    async fn promotion_code(&self, c: &Checkout) -> ApiResult<Option<String>> {
        let Some((id, code)) = &c.promotion_code else {
            return Ok(None);
        };
        if code.is_some() {
            return Ok(code.clone());
        }
        let Ok(stripe) = self.stripe() else {
            return Ok(None);
        };
        let promo = stripe.promotion_code(id).await.map_err(|r| unavailable("promotion code", r))?;
        Ok(st::text(&promo["code"]))
    }

    /// The lead of a customer referred by nothing but a coupon code (the checkout's promotion
    /// code): in the one program with a live coupon of that code, credited to its partner; or
    /// why there is none.
    async fn coupon_lead(
        &mut self,
        code: &str,
        c: &Referred<'_>,
        out: &mut Outcome,
    ) -> ApiResult<Result<(String, Recorded), &'static str>> {
        let db = &self.state.db;
        let programs = match CouponCode::try_parse(code) {
            Some(k) => coupons::programs_of_code(db, &k.key).await?,
            None => Vec::new(),
        };
        let program_id = match programs.as_slice() {
            [one] => one.program_id.clone(),
            [] => return Ok(Err(AttributionOutcome::CouponNotFound.as_str())),
            _ => return Ok(Err(Skip::AmbiguousProgram.as_str())),
        };
        let input = st::lead_input("", c.external_id, c.email, c.name);
        let lead = conversion::parse_lead(LeadInput { coupon_code: Some(code.to_string()), ..input })?;
        let recorded = lead_in(self.state, self.now, &program_id, &lead, None).await?;
        self.deliveries += recorded.deliveries;
        credit(out, &recorded.stored.event);
        if let Some(cus) = c.stripe_customer {
            conversions::set_stripe_customer(db, &program_id, c.external_id, cus).await?;
        }
        Ok(Ok((program_id, recorded)))
    }

    /// The one customer Stripe customer `stripe_id` is in Refport, or why none.
    async fn known_customer(&self, stripe_id: &str) -> ApiResult<Result<conversions::StripeCustomerRef, Skip>> {
        let mut found = conversions::customers_of_stripe(&self.state.db, stripe_id).await?;
        Ok(match found.len() {
            0 => Err(Skip::NotReferred),
            1 => Ok(found.remove(0)),
            _ => Err(Skip::AmbiguousProgram),
        })
    }

    /// A paid invoice's sale, for its customer (`customer`: the program and external id the
    /// caller knows it by; else looked up by its Stripe customer).
    async fn invoice(&mut self, i: &Invoice, customer: Option<(&str, &str)>, base: Outcome) -> ApiResult<Outcome> {
        if i.amount_paid <= 0 {
            return Ok(ignored(Skip::ZeroAmount.as_str(), base));
        }
        let (program_id, external_id) = match customer {
            Some((p, e)) => (p.to_string(), e.to_string()),
            None => match i.stripe_customer.as_deref() {
                None => return Ok(ignored(Skip::NotReferred.as_str(), base)),
                Some(cus) => match self.known_customer(cus).await? {
                    Ok(known) => (known.program_id, known.external_id),
                    Err(skip) => return Ok(ignored(skip.as_str(), base)),
                },
            },
        };
        let mut ids = vec![("stripe_invoice", i.id.as_str())];
        if let Some(sub) = i.subscription.as_deref() {
            ids.push(("stripe_subscription", sub));
        }
        let sale = StripeSale {
            external_id: &external_id,
            key: &i.id,
            amount: i.amount_paid,
            currency: &i.currency,
            payout_amount: None,
            event_name: st::INVOICE_SALE_EVENT,
            stripe_ids: &ids,
            coupon_code: None,
        };
        let recorded = self.sale(&program_id, sale, Paid::ByInvoice).await?;
        let mut out = Outcome { amount: Some(i.amount_paid), currency: Some(i.currency.clone()), ..base };
        credit(&mut out, &recorded.stored.event);
        Ok(settle(out, "sale"))
    }

    /// A sale: priced in the payout currency, or by the settlement of its payment intent's charge
    /// when paid in another currency, or recorded unpriced when it did not settle in it.
    async fn sale(&mut self, program_id: &str, sale: StripeSale<'_>, paid: Paid<'_>) -> ApiResult<Recorded> {
        let program = programs::get(&self.state.db, program_id).await?.ok_or(ApiError::NotFound("program"))?;
        let payout = program.settings.payout_currency;
        let settled = match self.stripe() {
            _ if sale.currency.eq_ignore_ascii_case(payout.code()) => None,
            Err(_) => Some(None),
            Ok(stripe) => Some(match self.payment_intent(&stripe, sale.key, paid).await? {
                None => None,
                Some(pi) => {
                    let bt = stripe.settlement_of(&pi).await.map_err(|r| unavailable("balance transaction", r))?;
                    st::settlement_in(&bt, payout.code())
                }
            }),
        };
        let recorded = self.record_sale(program_id, &sale, settled).await?;
        if recorded.new {
            self.refunds_before_sale(sale.key, paid).await?;
        }
        Ok(recorded)
    }

    /// The payment intent that paid a sale (an invoice names its payment intents only through
    /// its invoice payments).
    async fn payment_intent(&self, stripe: &Stripe, key: &str, paid: Paid<'_>) -> ApiResult<Option<String>> {
        Ok(match paid {
            Paid::By(pi) => pi.map(str::to_string),
            Paid::ByInvoice => stripe
                .invoice_payments(&[("invoice", key.to_string())])
                .await
                .map_err(|r| unavailable("invoice payments", r))?
                .iter()
                .filter(|p| p["status"].as_str() == Some("paid"))
                .find_map(|p| st::id_of(&p["payment"]["payment_intent"])),
        })
    }

    /// Refunds of a new sale's payment that arrived before the sale (Stripe does not order
    /// events, and retries a failed delivery for days): their events found no sale then; the
    /// payment's refunds are read from Stripe and applied now, and those events' outcomes revised.
    async fn refunds_before_sale(&mut self, key: &str, paid: Paid<'_>) -> ApiResult<()> {
        let db = &self.state.db;
        if !stripe_webhooks::any_unmatched_refund(db, self.now - UNMATCHED_REFUND_WINDOW_MS).await? {
            return Ok(());
        }
        let Ok(stripe) = self.stripe() else {
            return Ok(());
        };
        let Some(pi) = self.payment_intent(&stripe, key, paid).await? else {
            return Ok(());
        };
        let parked = stripe_webhooks::unmatched_refunds(db, &pi).await?;
        if parked.is_empty() {
            return Ok(());
        }
        let listed = stripe.refunds_of(("payment_intent", &pi)).await.map_err(|r| unavailable("refunds", r))?;
        let refunds = listed.iter().filter_map(|r| st::refund(r).ok()).collect();
        let applied = self.refunds(refunds, None).await?;
        for event_id in parked {
            stripe_webhooks::revise(&self.state.db, &event_id, &applied).await?;
        }
        Ok(())
    }

    /// `settled`: `None` in the payout currency; `Some(None)`: no settlement in it (unpriced).
    async fn record_sale(
        &mut self,
        program_id: &str,
        sale: &StripeSale<'_>,
        settled: Option<Option<i64>>,
    ) -> ApiResult<Recorded> {
        let (pricing, payout_amount) = match settled {
            None => (Pricing::AsSent, None),
            Some(Some(p)) => (Pricing::AsSent, Some(p)),
            Some(None) => (Pricing::Unsettled, None),
        };
        let input = st::sale_input(&StripeSale { payout_amount, ..*sale });
        let request = conversion::parse_sale(input)?;
        let recorded = sale_in(self.state, self.now, program_id, &request, pricing).await?;
        self.deliveries += recorded.deliveries;
        Ok(recorded)
    }

    /// Refunds, each applied once (its Stripe id is its idempotency key) when it has succeeded.
    async fn refunds(&mut self, refunds: Vec<Refund>, charge: Option<String>) -> ApiResult<Outcome> {
        let mut out = Outcome {
            object_id: charge.or_else(|| refunds.first().map(|r| r.id.clone())),
            currency: refunds.first().map(|r| r.currency.clone()),
            ..Outcome::default()
        };
        let (mut applied, mut total) = (0, 0);
        let mut last_skip: Option<&'static str> = None;
        for r in refunds.iter().take(100) {
            match self.refund(r).await? {
                Ok((sale, changed)) => {
                    credit(&mut out, &sale);
                    total += r.amount;
                    applied += usize::from(changed);
                }
                Err(skip) => last_skip = Some(skip),
            }
        }
        if applied > 0 {
            self.deliveries += applied;
        }
        out.amount = Some(total);
        if out.program_id.is_none() {
            out.payment_intent = refunds.iter().find_map(|r| r.payment_intent.clone());
            return Ok(ignored(last_skip.unwrap_or(Skip::SaleNotFound.as_str()), out));
        }
        Ok(settle(out, "refund"))
    }

    /// One refund: the sale it refunds, and whether this call applied it; or why it applies to
    /// nothing.
    async fn refund(&mut self, r: &Refund) -> ApiResult<Result<(Event, bool), &'static str>> {
        match r.status {
            RefundStatus::Succeeded => {}
            RefundStatus::Pending => return Ok(Err(Skip::RefundPending.as_str())),
            RefundStatus::Failed => return Ok(Err(Skip::RefundNotSucceeded.as_str())),
        }
        let Some(sale) = self.refunded_sale(r).await? else {
            return Ok(Err(Skip::SaleNotFound.as_str()));
        };
        if !sale.currency.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(&r.currency)) {
            return Ok(Err(Skip::CurrencyMismatch.as_str()));
        }
        match refund_in(&self.state.db, self.now, &sale, Some(r.amount), Some(&r.id)).await {
            Ok((_, changed)) => Ok(Ok((sale, changed))),
            Err(e) if is_refusal(&e) => Ok(Err(e.code())),
            Err(e) => Err(e),
        }
    }

    /// The sale a refund refunds: a checkout's (keyed by the payment intent), else the invoice's
    /// that the payment intent paid (asked of Stripe: invoices no longer name their payments).
    async fn refunded_sale(&self, r: &Refund) -> ApiResult<Option<Event>> {
        let Some(pi) = r.payment_intent.as_deref() else {
            return Ok(None);
        };
        if let Some(sale) = self.sale_by_key(pi).await? {
            return Ok(Some(sale));
        }
        let Ok(stripe) = self.stripe() else {
            return Ok(None);
        };
        let filter = [("payment[type]", "payment_intent".to_string()), ("payment[payment_intent]", pi.to_string())];
        let payments = stripe.invoice_payments(&filter).await.map_err(|e| unavailable("invoice payments", e))?;
        for invoice in payments.iter().filter_map(|p| st::id_of(&p["invoice"])) {
            if let Some(sale) = self.sale_by_key(&invoice).await? {
                return Ok(Some(sale));
            }
        }
        Ok(None)
    }

    async fn sale_by_key(&self, key: &str) -> ApiResult<Option<Event>> {
        let db = &self.state.db;
        match conversions::programs_of_invoice(db, key).await?.as_slice() {
            [one] => Ok(conversions::sale_event(db, &one.program_id, key).await?),
            _ => Ok(None),
        }
    }
}
