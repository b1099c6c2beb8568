//! The conversion API (SPEC 3): lead, sale and refund events from merchant backends.
//!
//! Each handler: parse (4xx on any flaw, nothing written) -> load -> the core decides
//! (`refport_core::conversion`: attribution, amount, status, refund plan) -> one atomic batch of
//! conditional inserts keyed by the idempotency tuple -> read back the row that won -> answer
//! it. A retry or a racing twin lands on the same row and gets the same body.

use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{body, ok, Call};
use crate::state::{new_id, AppState};
use crate::store::clicks::ClickForLead;
use crate::store::commissions::{self, Commission};
use crate::store::conversions::{
    self, Customer, Event, LeadWrite, NewIds, ProgramRef, Recorded, SaleWrite, StoredEvent,
};
use crate::store::coupons::Coupon;
use crate::store::partners::Partner;
use crate::store::refunds::{self, Outcome, Planned, Refund};
use crate::store::StoreResult;
use crate::store::{clicks, programs};
use refport_core::commission::SaleCommission;
use refport_core::conversion::{
    self, CustomerFacts, EventKind, LeadFacts, LeadInput, LeadRequest, LoadedClick, PartnerFacts, PricedSale,
    RefundFacts, RefundInput, RefundRefusal, RefundTarget, SaleFacts, SaleInput, SaleRefusal, SaleRequest, TrackedSale,
    MAX_ID_LEN,
};
use refport_core::coupon::{self, CouponCode, LoadedCoupon};
use refport_core::fraud::ClickSignals;
use refport_core::ids;
use refport_core::time::rfc3339;
use serde_json::{json, Value};
use std::future::Future;
use worker::{D1Database, Request, Response};

// The core's refusals, as API errors.
impl From<SaleRefusal> for ApiError {
    fn from(e: SaleRefusal) -> Self {
        match e {
            SaleRefusal::Invalid(i) => ApiError::Invalid(i),
            e => ApiError::unprocessable(e.code(), e.message()),
        }
    }
}

impl From<RefundRefusal> for ApiError {
    fn from(e: RefundRefusal) -> Self {
        if e.is_conflict() {
            ApiError::conflict(e.code(), e.message())
        } else {
            ApiError::unprocessable(e.code(), e.message())
        }
    }
}

/// The id of an event's program: named in the body or bound to the key, else the one program
/// the event's click, customer or invoice (else its coupon code) is known in (`hint`, only read
/// then), else the
/// deployment's only program. A body that names a program the key can't see is a 404.
async fn program_id<F>(c: &Call, named: Option<String>, hint: impl FnOnce() -> F) -> ApiResult<String>
where
    F: Future<Output = StoreResult<Vec<ProgramRef>>>,
{
    let id = match (named, &c.who.program_id) {
        (Some(n), _) => {
            if !ids::is_valid(ids::PROGRAM, &n) {
                return Err(ApiError::NotFound("program"));
            }
            n
        }
        (None, Some(bound)) => bound.clone(),
        (None, None) => match hint().await?.as_slice() {
            [one] => one.program_id.clone(),
            [] => {
                // A single-program deployment needs no program_id.
                let all = programs::list(&c.state.db, None, "~", 1).await?;
                match all.as_slice() {
                    [only] => only.id.clone(),
                    _ => {
                        return Err(ApiError::unprocessable(
                            "program_required",
                            "the program could not be determined from the event: send `program_id`",
                        ))
                    }
                }
            }
            _ => {
                return Err(ApiError::conflict(
                    "ambiguous_program",
                    "this id is known in several programs: send `program_id`",
                ))
            }
        },
    };
    c.who.check_program(&id, "program")?;
    Ok(id)
}

fn event_json(e: &Event, commission: Option<&Commission>) -> Value {
    let mut v = json!({
        "event": {
            "id": e.id,
            "kind": e.kind,
            "event_name": e.event_name,
            "program_id": e.program_id,
            "customer_id": e.customer_id,
            "customer_external_id": e.customer_external_id,
            "partner_id": e.partner_id,
            "click_id": e.click_id,
            "coupon_code": e.coupon_code,
            "coupon_id": e.coupon_id,
            "created_at": rfc3339(e.created_at),
        },
        "attributed": e.attribution.is_attributed(),
        "reason": e.attribution.reason(),
        "commission": commission,
    });
    if e.kind == EventKind::Sale {
        v["event"]["invoice_id"] = json!(e.invoice_id);
        v["event"]["amount"] = json!(e.amount);
        v["event"]["currency"] = json!(e.currency);
        v["event"]["payout_amount"] = json!(e.payout_amount);
        v["event"]["metadata"] =
            e.metadata.as_deref().and_then(|m| serde_json::from_slice(m.as_bytes()).ok()).unwrap_or(Value::Null);
    }
    v
}

fn respond_event(stored: &StoredEvent) -> ApiResult<Response> {
    ok(&event_json(&stored.event, stored.commission.as_ref()))
}

fn new_ids(now: i64) -> ApiResult<NewIds> {
    Ok(NewIds {
        customer: new_id(ids::CUSTOMER, now)?,
        event: new_id(ids::EVENT, now)?,
        commission: new_id(ids::COMMISSION, now)?,
    })
}

/// Delivers the webhooks a write queued right after the response; with none queued (no endpoint
/// wants these events) there is nothing to look for. Retries are the cron's.
fn deliver_if_queued(c: &Call, deliveries: usize) {
    if deliveries > 0 {
        crate::webhook_delivery::deliver_soon(&c.ctx, &c.state);
    }
}

fn partner_facts(p: Partner) -> PartnerFacts {
    PartnerFacts { id: p.id, email: p.email, status: p.status, rewards: p.rewards, group_rewards: p.group_rewards }
}

/// The programs with a live coupon of the code, when the program is found from nothing else.
async fn programs_of_code(db: &D1Database, code: Option<&str>) -> StoreResult<Vec<ProgramRef>> {
    match coupon_key(code) {
        Some(key) => crate::store::coupons::programs_of_code(db, &key).await,
        None => Ok(Vec::new()),
    }
}

/// The lookup key of a conversion's coupon code; a malformed code looks nothing up (it is
/// recorded, unknown).
fn coupon_key(sent: Option<&str>) -> Option<String> {
    sent.and_then(CouponCode::try_parse).map(|c| c.key)
}

fn loaded_coupon((c, partner): (Coupon, Option<Partner>)) -> LoadedCoupon {
    LoadedCoupon { id: c.id, program_id: c.program_id, partner_id: c.partner_id, partner: partner.map(partner_facts) }
}

/// The click the customer is attributed to now (from an earlier lead), with its partner. A
/// coupon code's attribution is one with no click and no link (empty ids).
fn existing_click(program_id: &str, customer: Option<Customer>, partner: Option<Partner>) -> Option<LoadedClick> {
    let cu = customer?;
    let (Some(partner_id), Some(at)) = (cu.partner_id, cu.clicked_at) else {
        return None;
    };
    let (click_id, link_id) = (cu.click_id.unwrap_or_default(), cu.link_id.unwrap_or_default());
    let partner = partner.map(partner_facts);
    let signals = ClickSignals::from_stored(cu.click_signals.as_deref());
    let country = cu.country;
    Some(LoadedClick {
        click_id,
        program_id: program_id.to_string(),
        link_id,
        partner_id,
        at,
        partner,
        signals,
        country,
    })
}

/// Round trips of a new lead: the key, the link its click id names (or, for an old unsigned
/// id, the click's row), the reads (one batch), the write (one batch, reading the stored lead
/// back). A retry stops after the reads.
pub async fn lead(req: &mut Request, c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Track)?;
    let lead = conversion::parse_lead(body::<LeadInput>(req).await?)?;
    let db = &c.state.db;
    // A click id that is malformed or unknown is not an error: the lead is kept, unattributed.
    let click = match &lead.click_id {
        Some(id) => clicks::get_for_lead(db, c.state.secrets.click_key().as_ref(), id).await?,
        None => None,
    };
    let click_program: Vec<ProgramRef> =
        click.iter().map(|k| ProgramRef { program_id: k.program_id.clone() }).collect();
    let code = lead.coupon_code.as_deref();
    let program_id = program_id(c, lead.program_id.clone(), || async {
        match click_program.is_empty() {
            true => programs_of_code(db, code).await,
            false => Ok(click_program),
        }
    })
    .await?;
    let recorded = lead_in(&c.state, c.now, &program_id, &lead, click).await?;
    deliver_if_queued(c, recorded.deliveries);
    respond_event(&recorded.stored)
}

/// A lead in program `program_id` presenting `click` (looked up by the caller): the reads (one
/// batch), the core's decision, the write (one batch). A retry answers what was stored.
pub(crate) async fn lead_in(
    state: &AppState,
    now: i64,
    program_id: &str,
    lead: &LeadRequest,
    click: Option<ClickForLead>,
) -> ApiResult<Recorded> {
    let db = &state.db;
    let (external_id, event_name) = (&lead.customer_external_id, &lead.event_name);
    let presented_partner = click.as_ref().map(|k| k.partner_id.as_str());
    let recent: &[String] = click.as_ref().map_or(&[], |k| k.recent_hours.as_slice());
    let code = coupon_key(lead.coupon_code.as_deref());
    let (load, presented_partner, visits) =
        conversions::load_lead(db, program_id, external_id, event_name, presented_partner, recent, code.as_deref())
            .await?;
    let program = load.program.ok_or(ApiError::NotFound("program"))?;
    if let Some(stored) = load.stored {
        return Ok(Recorded { stored, deliveries: 0, new: false }); // a retry: what the first request stored
    }
    let presented = click.map(|k| LoadedClick {
        partner: presented_partner.map(partner_facts),
        click_id: k.id,
        program_id: k.program_id,
        link_id: k.link_id,
        partner_id: k.partner_id,
        at: k.created_at,
        country: k.country,
        // What a v2 click id carries (its flags) and what the visitor did in the 24 hours up to
        // it (the visits stored under its ids of those hours).
        signals: match k.visit {
            Some(v) => ClickSignals {
                paid_traffic: v.flags.ad_click,
                banned_referrer: v.flags.banned_referrer,
                click_spam: visits > i64::from(program.settings.click_spam_threshold),
            },
            None => ClickSignals::default(),
        },
    });
    let existing = existing_click(&program.id, load.customer, load.partner);
    let email = crate::email_lists::facts(lead.customer_email.as_deref());
    let facts = LeadFacts { program_id: &program.id, program: &program.settings, presented, existing, email, now };
    let coupon = load.coupon.map(loaded_coupon);
    let decision = coupon::decide_lead(lead, &facts, coupon.as_ref());
    let ids = new_ids(now)?;
    let coupon_id = coupon.as_ref().map(|c| c.id.as_str());
    let write = LeadWrite { program_id: &program.id, lead, decision: &decision, ids: &ids, now, coupon_id };
    Ok(conversions::record_lead(db, &write).await?)
}

/// Round trips of a new sale: the key, the reads (one batch), the write (one batch, reading
/// the stored sale back); a retry stops after the reads. Without `program_id` and with a key
/// bound to no program, finding the customer's program adds one.
pub async fn sale(req: &mut Request, c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Track)?;
    let sale = conversion::parse_sale(body::<SaleInput>(req).await?)?;
    let db = &c.state.db;
    let ext = sale.customer_external_id.as_str();
    let code = sale.coupon_code.as_deref();
    let program_id = program_id(c, sale.program_id.clone(), || async {
        let known = conversions::programs_of_customer(db, ext).await?;
        match known.is_empty() {
            true => programs_of_code(db, code).await,
            false => Ok(known),
        }
    })
    .await?;
    let recorded = sale_in(&c.state, c.now, &program_id, &sale, Pricing::AsSent).await?;
    deliver_if_queued(c, recorded.deliveries);
    replay_sale(recorded.stored, &sale)
}

/// How a sale's commission base is found.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pricing {
    /// From its amount, or its `payout_amount` when in another currency (else refused).
    AsSent,
    /// There is none: paid in a currency that did not settle in the payout currency (Stripe).
    Unsettled,
}

/// A sale in program `program_id`: the reads (one batch), the core's decision, the write (one
/// batch). A sale already stored under its invoice id is answered as stored, even if the
/// program's payout currency has changed since (pricing in today's currency would refuse it).
pub(crate) async fn sale_in(
    state: &AppState,
    now: i64,
    program_id: &str,
    sale: &SaleRequest,
    pricing: Pricing,
) -> ApiResult<Recorded> {
    let db = &state.db;
    let code = coupon_key(sale.coupon_code.as_deref());
    let (load, earned) =
        conversions::load_sale(db, program_id, &sale.invoice_id, &sale.customer_external_id, code.as_deref()).await?;
    let program = load.program.ok_or(ApiError::NotFound("program"))?;
    if let Some(stored) = load.stored {
        return Ok(Recorded { stored, deliveries: 0, new: false });
    }
    let priced = match pricing {
        Pricing::AsSent => conversion::price_sale(sale, program.settings.payout_currency)?,
        Pricing::Unsettled => PricedSale { base: 0, payout_amount: None },
    };
    let partner = load.partner.map(partner_facts);
    let email = crate::email_lists::facts(load.customer.as_ref().and_then(|cu| cu.email.as_deref()));
    let customer = load.customer.map(|cu| CustomerFacts {
        click_id: cu.click_id,
        first_sale_at: cu.first_sale_at,
        partner,
        click_signals: ClickSignals::from_stored(cu.click_signals.as_deref()),
        email: cu.email,
        country: cu.country,
        earned,
    });
    let facts = SaleFacts { program: &program.settings, customer, email, now };
    let coupon = load.coupon.map(loaded_coupon);
    let (decision, by_coupon) = match pricing {
        Pricing::AsSent => coupon::decide_sale(sale, &priced, &facts, sale.coupon_code.is_some(), coupon.as_ref()),
        Pricing::Unsettled => (conversion::unpriced_sale(&facts), Default::default()),
    };
    let ids = new_ids(now)?;
    let write = SaleWrite {
        program_id: &program.id,
        sale,
        priced: &priced,
        decision: &decision,
        ids: &ids,
        now,
        coupon_id: coupon.as_ref().map(|c| c.id.as_str()),
        attribute_to: by_coupon.attribute_to.as_deref(),
    };
    Ok(conversions::record_sale(db, &write).await?)
}

/// Answers the stored sale; the same invoice id with a different customer, amount or currency
/// is a client error, never a second commission.
fn replay_sale(stored: StoredEvent, sale: &SaleRequest) -> ApiResult<Response> {
    let e = &stored.event;
    if !sale.is_same_sale(&e.customer_external_id, e.amount, e.currency.as_deref()) {
        return Err(ApiError::conflict(
            "invoice_conflict",
            "this invoice_id was already tracked with a different customer, amount or currency",
        ));
    }
    respond_event(&stored)
}

pub(crate) fn idempotency_key(req: &Request) -> ApiResult<Option<String>> {
    let idem = req.headers().get("idempotency-key")?.filter(|k| !k.is_empty());
    if idem.as_ref().is_some_and(|k| k.len() > MAX_ID_LEN) {
        return Err(ApiError::bad_request("invalid_request", "Idempotency-Key is too long"));
    }
    Ok(idem)
}

/// The refund that landed with this Idempotency-Key, if any.
async fn refund_with_key(db: &D1Database, program_id: &str, key: Option<&str>) -> ApiResult<Option<Refund>> {
    match key {
        Some(k) => Ok(refunds::by_idempotency_key(db, program_id, k).await?),
        None => Ok(None),
    }
}

/// What a refund of the sale is planned against: its commission as stored, or (unattributed
/// sale) what was refunded of it so far.
async fn refund_target(
    db: &D1Database,
    program_id: &str,
    invoice_id: &str,
    cm: Option<&Commission>,
) -> ApiResult<RefundTarget> {
    Ok(match cm {
        None => RefundTarget::NoCommission { refunded: refunds::total_for_invoice(db, program_id, invoice_id).await? },
        Some(cm) => RefundTarget::Commission {
            commission: SaleCommission {
                status: cm.status,
                original_amount: cm.original_amount,
                amount: cm.amount,
                sale_amount: cm.sale_amount,
                refunded: cm.refunded_amount,
                clawed_back: cm.clawed_back,
            },
            claimed_by_payout: cm.payout_id.is_some(),
        },
    })
}

pub async fn refund(req: &mut Request, c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Track)?;
    let idem = idempotency_key(req)?;
    let refund = conversion::parse_refund(body::<RefundInput>(req).await?)?;
    let (db, key, invoice_id) = (&c.state.db, idem.as_deref(), refund.invoice_id.as_str());
    let program_id =
        program_id(c, refund.program_id.clone(), || conversions::programs_of_invoice(db, invoice_id)).await?;
    let program = programs::get(db, &program_id).await?.ok_or(ApiError::NotFound("program"))?;
    let sale = conversions::sale_event(db, &program.id, invoice_id).await?.ok_or_else(|| {
        ApiError::unprocessable("invoice_not_found", format!("no sale was tracked with invoice_id `{invoice_id}`"))
    })?;
    let (landed, applied) = refund_in(db, c.now, &sale, refund.amount, key).await?;
    if applied {
        crate::webhook_delivery::deliver_soon(&c.ctx, &c.state);
    }
    respond_refund(c, landed).await
}

/// A refund of `amount` (`None`: all that remains) of stored sale `sale`, once per `key` when
/// one is given: planned by the core against the commission as it is, applied in one batch, and
/// re-planned if the commission changed meanwhile. Answers the refund that landed under the key
/// and whether this call applied it (then webhooks are queued).
pub(crate) async fn refund_in(
    db: &D1Database,
    now: i64,
    sale: &Event,
    amount: Option<i64>,
    key: Option<&str>,
) -> ApiResult<(Refund, bool)> {
    let (program_id, invoice_id) = (sale.program_id.as_str(), sale.invoice_id.as_deref().unwrap_or_default());
    if let Some(r) = refund_with_key(db, program_id, key).await? {
        return Ok((r, false));
    }
    let tracked = TrackedSale { amount: sale.amount, payout_amount: sale.payout_amount };
    for _attempt in 0..8 {
        let cm = commissions::for_event(db, &sale.id).await?;
        let (refund_id, clawback_id) = (new_id(ids::REFUND, now)?, new_id(ids::COMMISSION, now)?);
        let facts =
            RefundFacts { sale: tracked, target: refund_target(db, program_id, invoice_id, cm.as_ref()).await? };
        let decision = match conversion::decide_refund(amount, &facts) {
            Ok(d) => d,
            // A retry of a refund that has landed meanwhile answers that refund, not an error.
            Err(e) => match refund_with_key(db, program_id, key).await? {
                Some(r) => return Ok((r, false)),
                None => return Err(e.into()),
            },
        };
        let planned = Planned {
            id: &refund_id,
            program_id,
            invoice_id,
            idempotency_key: key,
            commission: cm.as_ref(),
            decision: &decision,
            clawback_id: &clawback_id,
            now,
        };
        let (landed, applied) = match refunds::apply(db, &planned).await? {
            Outcome::Applied => (refunds::get(db, &refund_id).await?, true),
            Outcome::DuplicateKey => {
                (refunds::by_idempotency_key(db, program_id, key.unwrap_or_default()).await?, false)
            }
            Outcome::Raced => continue,
        };
        return Ok((landed.ok_or(ApiError::Internal("refund missing".into()))?, applied));
    }
    Err(ApiError::conflict("concurrent_update", "the commission kept changing; retry the refund"))
}

async fn respond_refund(c: &Call, r: Refund) -> ApiResult<Response> {
    let db = &c.state.db;
    let commission = match &r.commission_id {
        Some(id) => commissions::get(db, id).await?,
        None => None,
    };
    let clawback = match &r.clawback_id {
        Some(id) => commissions::get(db, id).await?,
        None => None,
    };
    ok(&json!({"refund": r, "commission": commission, "clawback": clawback}))
}
