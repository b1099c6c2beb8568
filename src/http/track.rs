//! The conversion API (SPEC 3): lead, sale and refund events from merchant backends.
//!
//! Each handler: parse (4xx on any flaw, nothing written) -> load -> the core decides
//! (attribution, amount, status) -> one atomic batch of conditional inserts keyed by the
//! idempotency tuple -> read back the row that won -> answer it. A retry or a racing twin lands
//! on the same row and gets the same body.

use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{body, ok, Call};
use crate::state::new_id;
use crate::store::commissions::{self, Commission, NewCommission};
use crate::store::conversions::{self, CustomerUpsert, Event, NewEvent};
use crate::store::refunds::{self, Outcome, Planned};
use crate::store::{batch, clicks, outbox, partners, programs};
use refport_core::attribution::{attribute, Attribution, ClickFacts};
use refport_core::commission::{is_self_referral, plan_refund, Kind, RejectReason, SaleCommission, Status};
use refport_core::error::Invalid;
use refport_core::ids;
use refport_core::money::{parse_amount, Currency};
use refport_core::rules::{self, SaleDecision};
use refport_core::time::rfc3339;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::{Request, Response};

const MAX_ID_LEN: usize = 255;
const MAX_METADATA: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeadIn {
    click_id: String,
    customer_external_id: String,
    customer_email: Option<String>,
    customer_name: Option<String>,
    event_name: Option<String>,
    program_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SaleIn {
    customer_external_id: String,
    amount: i64,
    currency: String,
    invoice_id: String,
    event_name: Option<String>,
    metadata: Option<serde_json::Map<String, Value>>,
    payout_amount: Option<i64>,
    program_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundIn {
    invoice_id: String,
    amount: Option<i64>,
    program_id: Option<String>,
}

fn text_field(field: &str, v: &str) -> Result<String, Invalid> {
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

fn optional_text(field: &str, v: Option<String>) -> Result<Option<String>, Invalid> {
    v.filter(|s| !s.trim().is_empty()).map(|s| text_field(field, &s)).transpose()
}

/// The program of an event: named in the body, bound to the key, or found from `hint`
/// (the click / customer / invoice); a body that names a program the key can't see is a 404.
async fn resolve_program(c: &Call, named: Option<String>, hint: Vec<String>) -> ApiResult<programs::Program> {
    let id = match (named, &c.who.program_id) {
        (Some(n), _) => {
            if !ids::is_valid(ids::PROGRAM, &n) {
                return Err(ApiError::NotFound("program"));
            }
            n
        }
        (None, Some(bound)) => bound.clone(),
        (None, None) => match hint.as_slice() {
            [one] => one.clone(),
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
    programs::get(&c.state.db, &id).await?.ok_or(ApiError::NotFound("program"))
}

fn event_json(e: &Event, commission: Option<&Commission>) -> Value {
    let attributed = e.attribution == "attributed";
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
            "created_at": rfc3339(e.created_at),
        },
        "attributed": attributed,
        "reason": if attributed { Value::Null } else { Value::String(e.attribution.clone()) },
        "commission": commission,
    });
    if e.kind == "sale" {
        v["event"]["invoice_id"] = json!(e.invoice_id);
        v["event"]["amount"] = json!(e.amount);
        v["event"]["currency"] = json!(e.currency);
        v["event"]["payout_amount"] = json!(e.payout_amount);
        v["event"]["metadata"] =
            e.metadata.as_deref().and_then(|m| serde_json::from_str(m).ok()).unwrap_or(Value::Null);
    }
    v
}

pub async fn lead(req: &mut Request, c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Track)?;
    let input = body::<LeadIn>(req).await?;
    let external_id = text_field("customer_external_id", &input.customer_external_id)?;
    let event_name = optional_text("event_name", input.event_name)?.unwrap_or_else(|| "Sign up".into());
    let email = match input.customer_email.filter(|s| !s.trim().is_empty()) {
        Some(e) => Some(refport_core::partner::parse_email("customer_email", &e)?),
        None => None,
    };
    let name = optional_text("customer_name", input.customer_name)?;
    if input.click_id.len() > MAX_ID_LEN {
        return Err(Invalid::new("click_id", "invalid_field", "click_id is too long").into());
    }
    let db = &c.state.db;

    // A click id that is malformed or unknown is not an error: the lead is kept, unattributed.
    let click = if ids::is_valid(ids::CLICK, &input.click_id) {
        clicks::get_for_lead(db, &input.click_id).await?
    } else {
        None
    };
    let program = resolve_program(c, input.program_id, click.iter().map(|k| k.program_id.clone()).collect()).await?;
    let s = &program.settings;

    if let Some(e) = conversions::lead_event(db, &program.id, &external_id, &event_name).await? {
        return respond_event(c, e).await; // a retry: answer what the first request stored
    }

    let existing = conversions::customer(db, &program.id, &external_id).await?;
    let existing_facts = match &existing {
        Some(cu) => match (&cu.click_id, &cu.partner_id, &cu.link_id, cu.clicked_at) {
            (Some(k), Some(p), Some(l), Some(at)) => {
                let banned =
                    partners::get(db, p).await?.map(|p| p.status == refport_core::partner::PartnerStatus::Banned);
                Some(ClickFacts {
                    click_id: k.clone(),
                    program_id: program.id.clone(),
                    partner_id: p.clone(),
                    link_id: l.clone(),
                    at,
                    partner_banned: banned.unwrap_or(true),
                })
            }
            _ => None,
        },
        None => None,
    };
    let presented = click.map(|k| ClickFacts {
        partner_banned: k.partner_status == refport_core::partner::PartnerStatus::Banned,
        click_id: k.id,
        program_id: k.program_id,
        partner_id: k.partner_id,
        link_id: k.link_id,
        at: k.created_at,
    });
    let decision =
        attribute(&program.id, s.attribution_model, s.attribution_window_days, c.now, presented, existing_facts);

    let event_id = new_id(ids::EVENT, c.now)?;
    let customer_id = new_id(ids::CUSTOMER, c.now)?;
    let commission_id = new_id(ids::COMMISSION, c.now)?;
    let (attribution_code, credited) = match &decision {
        Attribution::Attributed(f) => ("attributed".to_string(), Some(f.clone())),
        Attribution::Unattributed(r) => (r.as_str().to_string(), None),
    };
    let mut stmts = vec![conversions::upsert_customer(
        db,
        &CustomerUpsert {
            new_id: &customer_id,
            program_id: &program.id,
            external_id: &external_id,
            email: email.as_deref(),
            name: name.as_deref(),
            attribution: credited
                .as_ref()
                .map(|f| (f.partner_id.as_str(), f.link_id.as_str(), f.click_id.as_str(), f.at)),
            now: c.now,
        },
    )?];
    stmts.push(conversions::insert_event(
        db,
        &NewEvent {
            id: &event_id,
            program_id: &program.id,
            external_id: &external_id,
            kind: "lead",
            event_name: &event_name,
            invoice_id: None,
            amount: None,
            currency: None,
            payout_amount: None,
            partner_id: credited.as_ref().map(|f| f.partner_id.as_str()),
            click_id: credited.as_ref().map(|f| f.click_id.as_str()),
            attribution: &attribution_code,
            metadata: None,
            now: c.now,
        },
    )?);
    if let Some(f) = &credited {
        let partner = partners::get(db, &f.partner_id).await?.ok_or(ApiError::Internal("partner vanished".into()))?;
        let rewards = rules::effective(&s.rewards, partner.rewards.as_ref());
        if let Some(amount) = rules::lead_commission(&rewards).filter(|a| *a > 0) {
            let self_ref = is_self_referral(email.as_deref(), &partner.email);
            stmts.extend(commissions::insert_if_event_won(
                db,
                &NewCommission {
                    id: &commission_id,
                    program_id: &program.id,
                    partner_id: &partner.id,
                    customer_ref: (&program.id, &external_id),
                    event_id: &event_id,
                    kind: Kind::Lead,
                    invoice_id: None,
                    sale_amount: 0,
                    amount,
                    currency: s.payout_currency.code(),
                    status: if self_ref { Status::Rejected } else { Status::Pending },
                    reason: self_ref.then_some(RejectReason::SelfReferral.as_str()),
                    now: c.now,
                },
            )?);
        }
    }
    stmts.push(outbox::lead(db, &event_id, c.now)?);
    stmts.push(outbox::commission(db, "commission.created", &commission_id, c.now)?);
    stmts.extend(outbox::fan_out(db, c.now)?);
    batch(db, stmts).await?;
    crate::webhook_delivery::deliver_soon(&c.ctx, &c.state);
    let e = conversions::lead_event(db, &program.id, &external_id, &event_name)
        .await?
        .ok_or(ApiError::Internal("lead event missing after insert".into()))?;
    respond_event(c, e).await
}

async fn respond_event(c: &Call, e: Event) -> ApiResult<Response> {
    let cm = commissions::for_event(&c.state.db, &e.id).await?;
    ok(&event_json(&e, cm.as_ref()))
}

pub async fn sale(req: &mut Request, c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Track)?;
    let input = body::<SaleIn>(req).await?;
    let external_id = text_field("customer_external_id", &input.customer_external_id)?;
    let invoice_id = text_field("invoice_id", &input.invoice_id)?;
    let event_name = optional_text("event_name", input.event_name)?.unwrap_or_else(|| "Purchase".into());
    let amount = parse_amount(input.amount).ok_or_else(|| {
        Invalid::new("amount", "invalid_amount", "amount must be a non-negative integer in minor units")
    })?;
    let currency = Currency::parse(&input.currency).ok_or_else(|| {
        Invalid::new(
            "currency",
            "invalid_currency",
            format!("`{}` is not a supported ISO 4217 currency", input.currency),
        )
    })?;
    let payout_amount = input
        .payout_amount
        .map(|p| {
            parse_amount(p).ok_or_else(|| {
                Invalid::new(
                    "payout_amount",
                    "invalid_amount",
                    "payout_amount must be a non-negative integer in minor units",
                )
            })
        })
        .transpose()?;
    let metadata = match input.metadata {
        None => None,
        Some(m) => {
            let s = serde_json::to_string(&m)?;
            if s.len() > MAX_METADATA {
                return Err(Invalid::new(
                    "metadata",
                    "invalid_metadata",
                    format!("metadata must be at most {MAX_METADATA} bytes of JSON"),
                )
                .into());
            }
            Some(s)
        }
    };
    let db = &c.state.db;
    let hint = conversions::programs_of_customer(db, &external_id).await?.into_iter().map(|p| p.program_id).collect();
    let program = resolve_program(c, input.program_id, hint).await?;
    let s = &program.settings;

    // No silent FX: a sale in another currency needs the merchant's own conversion.
    let base = if currency == s.payout_currency {
        match payout_amount {
            Some(p) if p != amount => {
                return Err(Invalid::new(
                    "payout_amount",
                    "invalid_amount",
                    "payout_amount must equal amount when the sale is in the payout currency",
                )
                .into())
            }
            _ => amount,
        }
    } else {
        payout_amount.ok_or_else(|| {
            ApiError::unprocessable(
                "currency_mismatch",
                format!(
                    "the sale is in {} but the program pays in {}: send `payout_amount` in {}",
                    currency.code(),
                    s.payout_currency.code(),
                    s.payout_currency.code()
                ),
            )
        })?
    };

    if let Some(e) = conversions::sale_event(db, &program.id, &invoice_id).await? {
        return replay_sale(c, e, &external_id, amount, currency.code()).await;
    }

    let customer = conversions::customer(db, &program.id, &external_id).await?;
    let event_id = new_id(ids::EVENT, c.now)?;
    let mut stmts = Vec::new();
    if customer.is_none() {
        stmts.push(conversions::upsert_customer(
            db,
            &CustomerUpsert {
                new_id: &new_id(ids::CUSTOMER, c.now)?,
                program_id: &program.id,
                external_id: &external_id,
                email: None,
                name: None,
                attribution: None,
                now: c.now,
            },
        )?);
    }
    let partner = match customer.as_ref().and_then(|cu| cu.partner_id.clone()) {
        Some(pid) => partners::get(db, &pid).await?,
        None => None,
    };
    let (attribution, commission) = match &partner {
        None => ("no_attribution".to_string(), None),
        Some(p) if p.status == refport_core::partner::PartnerStatus::Banned => ("partner_banned".to_string(), None),
        Some(p) => {
            let rewards = rules::effective(&s.rewards, p.rewards.as_ref());
            let first_sale_at = customer.as_ref().and_then(|cu| cu.first_sale_at);
            match rules::sale_commission(&rewards, base, first_sale_at, c.now) {
                SaleDecision::Commission(a) if a > 0 => {
                    let first_only = rewards.sale.as_ref().is_some_and(|r| r.duration_months == Some(0));
                    ("attributed".to_string(), Some((p, a, first_only)))
                }
                SaleDecision::Commission(_) | SaleDecision::NoReward => ("attributed".to_string(), None),
                SaleDecision::OutsideRecurringWindow => ("outside_recurring_window".to_string(), None),
            }
        }
    };
    stmts.push(conversions::insert_event(
        db,
        &NewEvent {
            id: &event_id,
            program_id: &program.id,
            external_id: &external_id,
            kind: "sale",
            event_name: &event_name,
            invoice_id: Some(&invoice_id),
            amount: Some(amount),
            currency: Some(currency.code()),
            payout_amount: (currency != s.payout_currency).then_some(base),
            partner_id: partner.as_ref().map(|p| p.id.as_str()),
            click_id: customer.as_ref().and_then(|cu| cu.click_id.as_deref()),
            attribution: &attribution,
            metadata,
            now: c.now,
        },
    )?);
    stmts.push(conversions::mark_first_sale(db, &program.id, &external_id, &event_id, c.now)?);
    let commission_id = new_id(ids::COMMISSION, c.now)?;
    if let Some((p, a, first_only)) = commission {
        stmts.extend(commissions::insert_if_event_won(
            db,
            &NewCommission {
                id: &commission_id,
                program_id: &program.id,
                partner_id: &p.id,
                customer_ref: (&program.id, &external_id),
                event_id: &event_id,
                kind: Kind::Sale,
                invoice_id: Some(&invoice_id),
                sale_amount: base,
                amount: a,
                currency: s.payout_currency.code(),
                status: Status::Pending,
                reason: None,
                now: c.now,
            },
        )?);
        if first_only {
            // First sale only, enforced inside the batch: concurrent "first" sales of one
            // customer cannot all earn; the others are recorded outside the recurring window.
            stmts.extend(commissions::keep_only_first_sale(db, &commission_id, &event_id)?);
        }
    }
    stmts.push(outbox::commission(db, "commission.created", &commission_id, c.now)?);
    stmts.extend(outbox::fan_out(db, c.now)?);
    batch(db, stmts).await?;
    crate::webhook_delivery::deliver_soon(&c.ctx, &c.state);
    let e = conversions::sale_event(db, &program.id, &invoice_id)
        .await?
        .ok_or(ApiError::Internal("sale event missing after insert".into()))?;
    replay_sale(c, e, &external_id, amount, currency.code()).await
}

/// Answers the stored sale; the same invoice id with a different customer, amount or currency
/// is a client error, never a second commission.
async fn replay_sale(c: &Call, e: Event, external_id: &str, amount: i64, currency: &str) -> ApiResult<Response> {
    if e.customer_external_id != external_id || e.amount != Some(amount) || e.currency.as_deref() != Some(currency) {
        return Err(ApiError::conflict(
            "invoice_conflict",
            "this invoice_id was already tracked with a different customer, amount or currency",
        ));
    }
    respond_event(c, e).await
}

pub async fn refund(req: &mut Request, c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Track)?;
    let idem = req.headers().get("idempotency-key")?.filter(|k| !k.is_empty());
    if idem.as_ref().is_some_and(|k| k.len() > MAX_ID_LEN) {
        return Err(ApiError::bad_request("invalid_request", "Idempotency-Key is too long"));
    }
    let input = body::<RefundIn>(req).await?;
    let invoice_id = text_field("invoice_id", &input.invoice_id)?;
    let requested = match input.amount {
        None => None,
        Some(a) if a > 0 && parse_amount(a).is_some() => Some(a),
        Some(_) => {
            return Err(
                Invalid::new("amount", "invalid_amount", "amount must be a positive integer in minor units").into()
            )
        }
    };
    let db = &c.state.db;
    let hint = conversions::programs_of_invoice(db, &invoice_id).await?.into_iter().map(|p| p.program_id).collect();
    let program = resolve_program(c, input.program_id, hint).await?;
    let sale = conversions::sale_event(db, &program.id, &invoice_id).await?.ok_or_else(|| {
        ApiError::unprocessable("invoice_not_found", format!("no sale was tracked with invoice_id `{invoice_id}`"))
    })?;
    if let Some(k) = &idem {
        if let Some(r) = refunds::by_idempotency_key(db, &program.id, k).await? {
            return respond_refund(c, r).await;
        }
    }
    let sale_amount = sale.payout_amount.or(sale.amount).unwrap_or(0);
    // Refund amounts are in the sale's currency; with a payout_amount the refund is applied pro rata.
    let to_base = |a: i64| -> i64 {
        match (sale.payout_amount, sale.amount) {
            (Some(p), Some(s)) if s > 0 => refport_core::money::mul_div_half_even(a, p, s),
            _ => a,
        }
    };
    for _attempt in 0..8 {
        let cm = commissions::for_event(db, &sale.id).await?;
        let refund_id = new_id(ids::REFUND, c.now)?;
        let clawback_id = new_id(ids::COMMISSION, c.now)?;
        let planned = match &cm {
            // Unattributed sale: no commission to change; the refund is recorded, bounded by the sale.
            None => {
                let refunded = refunds::total_for_invoice(db, &program.id, &invoice_id).await?;
                let remaining = sale_amount - refunded;
                match requested.map(to_base) {
                    _ if remaining <= 0 => {
                        Err(ApiError::conflict("nothing_to_refund", "the sale has nothing left to refund"))
                    }
                    Some(a) if a > remaining => Err(ApiError::unprocessable(
                        "refund_exceeds_refundable",
                        format!("the refund exceeds what remains refundable ({remaining})"),
                    )),
                    Some(a) if a <= 0 => Err(ApiError::unprocessable("invalid_amount", "the refund rounds to nothing")),
                    a => Ok((a.unwrap_or(remaining), None, None, refunded)),
                }
            }
            Some(cm) => {
                let state = SaleCommission {
                    // A commission claimed by a payout in flight is treated as paid: the transfer
                    // amount is fixed, so a refund now becomes a clawback on the next payout.
                    status: if cm.payout_id.is_some() { Status::Paid } else { cm.status },
                    original_amount: cm.original_amount,
                    amount: cm.amount,
                    sale_amount: cm.sale_amount,
                    refunded: cm.refunded_amount,
                    clawed_back: cm.clawed_back,
                };
                plan_refund(&state, requested.map(to_base))
                    .map_err(|e| match e {
                        refport_core::commission::RefundError::NothingToRefund => {
                            ApiError::conflict(e.code(), e.message())
                        }
                        _ => ApiError::unprocessable(e.code(), e.message()),
                    })
                    .map(|(a, plan)| {
                        (
                            a,
                            Some((cm.id.as_str(), cm.status.as_str(), cm.amount, cm.refunded_amount, cm.clawed_back)),
                            Some(plan),
                            cm.refunded_amount,
                        )
                    })
            }
        };
        let (applied, commission, plan, refunded_before) = match planned {
            Ok(p) => p,
            Err(e) => {
                // A retry of a refund that has landed meanwhile answers that refund, not an error.
                if let Some(k) = &idem {
                    if let Some(r) = refunds::by_idempotency_key(db, &program.id, k).await? {
                        return respond_refund(c, r).await;
                    }
                }
                return Err(e);
            }
        };
        let planned = Planned {
            id: &refund_id,
            program_id: &program.id,
            invoice_id: &invoice_id,
            idempotency_key: idem.as_deref(),
            amount: applied,
            commission,
            refunded_before,
            plan,
            clawback_id: &clawback_id,
            now: c.now,
        };
        match refunds::apply(db, &planned).await? {
            Outcome::Applied => {
                crate::webhook_delivery::deliver_soon(&c.ctx, &c.state);
                let r = refunds::get(db, &refund_id).await?.ok_or(ApiError::Internal("refund missing".into()))?;
                return respond_refund(c, r).await;
            }
            Outcome::DuplicateKey => {
                let k = idem.as_deref().unwrap_or_default();
                let r = refunds::by_idempotency_key(db, &program.id, k)
                    .await?
                    .ok_or(ApiError::Internal("refund missing".into()))?;
                return respond_refund(c, r).await;
            }
            Outcome::Raced => continue,
        }
    }
    Err(ApiError::conflict("concurrent_update", "the commission kept changing; retry the refund"))
}

async fn respond_refund(c: &Call, r: refunds::Refund) -> ApiResult<Response> {
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
