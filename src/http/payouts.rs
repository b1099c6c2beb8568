use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{id_param, ok, path_id, Call, Page};
use crate::payout_queue::PayoutMessage;
use crate::store::payouts::{self, Filter};
use refport_core::ids;
use refport_core::payout::PayoutStatus;
use worker::Response;

/// The list's filters (`program_id` narrowed to the key's, `partner_id`, `status`), shared
/// with the CSV export.
pub fn query(c: &Call) -> ApiResult<(Option<String>, Option<String>, Option<&'static str>)> {
    let partner_id = id_param(&c.query, "partner_id", ids::PARTNER)?;
    let program_id = c.program_filter()?;
    let status = match c.query.get("status") {
        None => None,
        Some(s) => Some(PayoutStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                "status must be processing, paid, failed, awaiting_approval or canceled",
            )
        })?),
    };
    Ok((program_id, partner_id, status.map(PayoutStatus::as_str)))
}

pub async fn list(c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    let page = Page::from_query(&c.query)?;
    let (program_id, partner_id, status) = query(c)?;
    let f = Filter { program_id: program_id.as_deref(), partner_id: partner_id.as_deref(), status };
    let rows = payouts::list(&c.state.db, &f, &page.before(), page.limit).await?;
    page.respond(rows, |r| r.id.clone())
}

/// The payout `id` if the key sees its program (404 otherwise, like a payout that does not exist).
async fn load(c: &Call, id: &str) -> ApiResult<payouts::Payout> {
    let id = path_id(id, ids::PAYOUT, "payout")?;
    let p = payouts::get(&c.state.db, &id).await?.ok_or(ApiError::NotFound("payout"))?;
    c.who.check_program(&p.program_id, "payout")?;
    Ok(p)
}

/// `POST /api/v1/payouts/{id}/approve` (payout review mode): a payout `awaiting_approval` becomes
/// `processing` (one conditional UPDATE: a second approval, or one racing a cancel, gets 409)
/// and is sent through the normal payout path, exactly once.
pub async fn approve(c: &Call, id: &str) -> ApiResult<Response> {
    review(c, id, true).await
}

/// `POST /api/v1/payouts/{id}/cancel`: a payout `awaiting_approval` becomes `canceled` and its
/// commissions return to the approved pool, in one atomic batch.
pub async fn cancel(c: &Call, id: &str) -> ApiResult<Response> {
    review(c, id, false).await
}

async fn review(c: &Call, id: &str, approve: bool) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let p = load(c, id).await?;
    let conflict = |message: String| ApiError::conflict("not_awaiting_approval", message);
    p.status
        .review(approve)
        .ok_or_else(|| conflict(format!("the payout is {}, not awaiting approval", p.status.as_str())))?;
    let db = &c.state.db;
    // Lost to a concurrent approval or cancel: the conditional write changed nothing.
    let raced = || conflict("the payout is no longer awaiting approval".into());
    if approve {
        let claim = payouts::approve(db, &p.id, c.now).await?.ok_or_else(raced)?;
        let m = PayoutMessage { payout_id: claim.id, attempt: claim.transfer_attempt, lease: claim.updated_at };
        crate::payout_queue::dispatch(&c.state, m).await;
    } else if !payouts::cancel(db, &p.id, c.now).await? {
        return Err(raced());
    }
    ok(&payouts::get(db, &p.id).await?.ok_or(ApiError::NotFound("payout"))?)
}
