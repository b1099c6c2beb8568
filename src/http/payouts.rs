use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{id_param, Call, Page};
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
        Some(s) => Some(
            PayoutStatus::parse(s)
                .ok_or_else(|| ApiError::bad_request("invalid_query", "status must be processing, paid or failed"))?,
        ),
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
