use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{body, created, ok, path_id, programs, Call, Page};
use crate::state::new_id;
use crate::store::{partners, stats};
use refport_core::ids;
use refport_core::partner::{PartnerInput, PartnerPatch};
use worker::{Request, Response};

pub async fn load(c: &Call, id: &str) -> ApiResult<partners::Partner> {
    let id = path_id(id, ids::PARTNER, "partner")?;
    let p = partners::get(&c.state.db, &id).await?.ok_or(ApiError::NotFound("partner"))?;
    c.who.check_program(&p.program_id, "partner")?;
    Ok(p)
}

pub async fn create(req: &mut Request, c: &Call, program_id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let program = programs::load(c, program_id).await?;
    let f = body::<PartnerInput>(req).await?.validate()?;
    super::groups::check_member(c, &program.id, f.group_id.as_deref()).await?;
    let p = partners::Partner {
        id: new_id(ids::PARTNER, c.now)?,
        program_id: program.id.clone(),
        email: f.email,
        name: f.name,
        status: f.status,
        rewards: f.rewards,
        stripe_account_id: None,
        payouts_enabled: false,
        country: f.country,
        payouts_disabled_reason: None,
        payout_hold_reasons: Vec::new(),
        payout_account_approved_at: None,
        group_id: f.group_id,
        min_payout: f.min_payout,
        group_rewards: None,
        group_min_payout: None,
        group_hold_days: None,
        created_at: c.now,
        updated_at: c.now,
    };
    partners::insert(&c.state.db, &p).await?;
    crate::webhook_delivery::deliver_soon(&c.ctx, &c.state);
    if p.status == refport_core::partner::PartnerStatus::Invited {
        let origin = refport_core::weburl::HttpUrl::parse(&req.inner().url()).map(|u| u.origin()).unwrap_or_default();
        let invitation = super::invites::invite(&c.state, &origin, &program, &p, c.now).await?;
        let mut body = serde_json::to_value(&p)?;
        body["invitation"] = invitation;
        return created(&body);
    }
    created(&p)
}

pub async fn list(c: &Call, program_id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    let program = programs::load(c, program_id).await?;
    let page = Page::from_query(&c.query)?;
    let rows = partners::list(&c.state.db, &program.id, &page.before(), page.limit).await?;
    page.respond(rows, |p| p.id.clone())
}

pub async fn get(c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    ok(&load(c, id).await?)
}

pub async fn patch(req: &mut Request, c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let old = load(c, id).await?;
    let f = old.fields().apply(body::<PartnerPatch>(req).await?)?;
    if f.group_id != old.group_id {
        super::groups::check_member(c, &old.program_id, f.group_id.as_deref()).await?;
    }
    let ban = f.status != old.status && f.status == refport_core::partner::PartnerStatus::Banned;
    // One batch: the change, its `partner.updated` (and for a ban: `partner.banned`, the open
    // commissions rejected with their `commission.updated`).
    partners::update(&c.state.db, &old.id, &f, ban, c.now).await?;
    crate::webhook_delivery::deliver_soon(&c.ctx, &c.state);
    if f.status != old.status {
        // A ban stops attribution on every link at once (the cache carries it).
        programs::refresh_links(c, &old.program_id, Some(&old.id)).await?;
    }
    let p = partners::Partner {
        email: f.email,
        name: f.name,
        status: f.status,
        rewards: f.rewards,
        country: f.country,
        group_id: f.group_id,
        min_payout: f.min_payout,
        updated_at: c.now,
        ..old
    };
    ok(&p)
}

/// `POST /api/v1/partners/{id}/approve_payout_account`: the merchant has checked that the
/// partner may be paid to an account it shares with another partner (`duplicate_payout_account`);
/// its payouts are no longer held by that rule. Idempotent: the first approval's time stays.
pub async fn approve_payout_account(c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let p = load(c, id).await?;
    if p.payout_account_approved_at.is_none() {
        partners::approve_payout_account(&c.state.db, &p.id, c.now).await?;
    }
    ok(&load(c, &p.id).await?)
}

pub async fn stats(c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    // `from` and `to` only bound the `group_by` rows, but a malformed one is refused either way.
    let q = |k: &str| c.query.get(k).map(String::as_str);
    refport_core::stats::parse_range(q("from"), q("to"), c.now)
        .map_err(|e| ApiError::bad_request("invalid_query", e.message))?;
    let p = load(c, id).await?;
    let db = &c.state.db;
    let program = programs::load(c, &p.program_id).await?;
    let t = stats::partner_totals(db, &p.program_id, &p.id).await?;
    let currency = program.settings.payout_currency.code().to_string();
    let main = t.in_currency(&currency);
    let mut out = serde_json::json!({
        "partner_id": p.id,
        "clicks": t.clicks,
        "leads": t.leads,
        "sales": t.sales,
        "sale_amount": main.sale_amount,
        "currency": currency,
        "earnings": main.earnings,
        "amounts": t.amounts,
    });
    // `group_by=sub1|sub2|sub3` (with `from`, `to`, `limit`): the partner's stats by sub-ID too.
    if let Some(g) = c.query.get("group_by") {
        let by = match stats::GroupBy::parse(g) {
            Some(by @ stats::GroupBy::Sub(_)) => by,
            _ => return Err(ApiError::bad_request("invalid_query", "group_by must be sub1, sub2 or sub3")),
        };
        let grouped = programs::grouped(c, &p.program_id, Some(&p.id), by).await?;
        if let (Some(o), serde_json::Value::Object(g)) = (out.as_object_mut(), grouped) {
            o.extend(g);
        }
    }
    ok(&out)
}
