use super::auth::Perm;
use super::error::ApiResult;
use super::{id_param, Call, Page};
use crate::store::clicks;
use refport_core::ids;
use worker::Response;

pub async fn list(c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    let page = Page::from_query(&c.query)?;
    let link_id = id_param(&c.query, "link_id", ids::LINK)?;
    let partner_id = id_param(&c.query, "partner_id", ids::PARTNER)?;
    let program_id = c.program_filter()?;
    let f = clicks::Filter {
        program_id: program_id.as_deref(),
        partner_id: partner_id.as_deref(),
        link_id: link_id.as_deref(),
    };
    let rows = clicks::list(&c.state.db, &f, &page.before(), page.limit).await?;
    page.respond(rows, |r| r.id.clone())
}
