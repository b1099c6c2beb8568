//! Commission API: list with filters, approve, reject. Every status change goes through the
//! core's transition table and lands only if the row is still in the state it was read in.

use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{body, id_param, ok, path_id, Call, Page};
use crate::store::commissions::{self, Filter};
use refport_core::commission::{transition, Status};
use refport_core::error::Invalid;
use refport_core::ids;
use worker::{Request, Response};

/// The list's filters (`program_id` narrowed to the key's, `partner_id`, `status`, `held`),
/// shared with the CSV export.
pub struct Query {
    pub program_id: Option<String>,
    pub partner_id: Option<String>,
    pub status: Option<&'static str>,
    pub held: Option<bool>,
}

impl Query {
    pub fn parse(c: &Call) -> ApiResult<Query> {
        let status = match c.query.get("status") {
            None => None,
            Some(s) => Some(
                Status::parse(s)
                    .ok_or_else(|| {
                        ApiError::bad_request("invalid_query", "status must be pending, approved, paid or rejected")
                    })?
                    .as_str(),
            ),
        };
        let held = match c.query.get("held").map(String::as_str) {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => return Err(ApiError::bad_request("invalid_query", "held must be true or false")),
        };
        Ok(Query {
            program_id: c.program_filter()?,
            partner_id: id_param(&c.query, "partner_id", ids::PARTNER)?,
            status,
            held,
        })
    }

    pub fn filter(&self) -> Filter<'_> {
        Filter { program_id: self.program_id.as_deref(), partner_id: self.partner_id.as_deref(), status: self.status }
    }
}

pub async fn list(c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    let page = Page::from_query(&c.query)?;
    let q = Query::parse(c)?;
    let f = q.filter();
    let rows = match q.held {
        None => commissions::list(&c.state.db, &f, &page.before(), page.limit).await?,
        Some(h) => commissions::list_held(&c.state.db, &f, h, &page.before(), page.limit).await?,
    };
    page.respond(rows, |r| r.id.clone())
}

/// `GET /api/v1/commissions/{id}`: the same JSON object, from the same SQL expression, as the
/// `data` of its `commission.*` webhooks.
pub async fn get(c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    let id = path_id(id, ids::COMMISSION, "commission")?;
    let cm = commissions::get_json(&c.state.db, &id).await?.ok_or(ApiError::NotFound("commission"))?;
    c.who.check_program(&cm.program_id, "commission")?;
    Ok(super::respond(
        200,
        super::headers(&[("content-type", "application/json; charset=utf-8"), ("cache-control", "no-store")]),
        cm.json,
    ))
}

async fn load(c: &Call, id: &str) -> ApiResult<commissions::Commission> {
    let id = path_id(id, ids::COMMISSION, "commission")?;
    let cm = commissions::get(&c.state.db, &id).await?.ok_or(ApiError::NotFound("commission"))?;
    c.who.check_program(&cm.program_id, "commission")?;
    Ok(cm)
}

async fn move_to(c: &Call, id: &str, to: Status, reason: Option<&str>) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let cm = load(c, id).await?;
    let from = cm.status;
    transition(from, to).map_err(|e| ApiError::conflict(e.code(), e.message()))?;
    if cm.payout_id.is_some() {
        return Err(ApiError::conflict("in_payout", "the commission is part of a payout in flight"));
    }
    if !commissions::transition(&c.state.db, &cm.id, from, to, reason, c.now).await? {
        return Err(ApiError::conflict("concurrent_update", "the commission changed meanwhile; read it again"));
    }
    crate::webhook_delivery::deliver_soon(&c.ctx, &c.state);
    let cm = commissions::get(&c.state.db, &cm.id).await?.ok_or(ApiError::NotFound("commission"))?;
    ok(&cm)
}

pub async fn approve(c: &Call, id: &str) -> ApiResult<Response> {
    move_to(c, id, Status::Approved, None).await
}

refport_core::from_json! {
    deny_unknown_fields
    struct RejectIn {
        reason: String,
    }
}

pub async fn reject(req: &mut Request, c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let input = body::<RejectIn>(req).await?;
    let reason = input.reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(Invalid::new("reason", "invalid_reason", "reason must be 1 to 200 characters").into());
    }
    move_to(c, id, Status::Rejected, Some(reason)).await
}

/// `POST /api/v1/commissions`: a manual commission (`kind: "bonus"`) for a partner, paid with
/// its next payout like any other. `Idempotency-Key` makes a retry answer the first one (200)
/// instead of creating a second (201).
pub async fn create(req: &mut Request, c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let idem = super::track::idempotency_key(req)?;
    let input = super::body::<refport_core::commission::BonusInput>(req).await?;
    let partner = match super::partners::load(c, &input.partner_id).await {
        Err(ApiError::NotFound(_)) | Err(ApiError::BadRequest { .. }) => {
            return Err(Invalid::new("partner_id", "invalid_partner", "no partner with this id").into())
        }
        other => other?,
    };
    if partner.status == refport_core::partner::PartnerStatus::Banned {
        return Err(ApiError::conflict("partner_banned", "the partner is banned: it earns no commission"));
    }
    let program = super::programs::load(c, &partner.program_id).await?;
    let bonus = input.validate(program.settings.payout_currency)?;
    let id = crate::state::new_id(ids::COMMISSION, c.now)?;
    let new = commissions::NewBonus {
        id: &id,
        program_id: &program.id,
        bonus: &bonus,
        idempotency_key: idem.as_deref(),
        now: c.now,
    };
    let (stored, created) = commissions::insert_bonus(&c.state.db, &new).await?;
    if created {
        crate::webhook_delivery::deliver_soon(&c.ctx, &c.state);
        super::created(&stored)
    } else {
        ok(&stored)
    }
}
