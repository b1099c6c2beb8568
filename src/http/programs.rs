use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{body, created, ok, path_id, Call, Page};
use crate::state::new_id;
use crate::store::{link_cache, programs};
use refport_core::ids;
use refport_core::program::{ProgramInput, ProgramPatch};
use worker::{Request, Response};

pub async fn load(c: &Call, id: &str) -> ApiResult<programs::Program> {
    let id = path_id(id, ids::PROGRAM, "program")?;
    c.who.check_program(&id, "program")?;
    programs::get(&c.state.db, &id).await?.ok_or(ApiError::NotFound("program"))
}

pub async fn create(req: &mut Request, c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    if c.who.program_id.is_some() {
        return Err(ApiError::Forbidden("a key bound to a program cannot create programs".into()));
    }
    let settings = body::<ProgramInput>(req).await?.validate()?;
    let p = programs::Program { id: new_id(ids::PROGRAM, c.now)?, settings, created_at: c.now, updated_at: c.now };
    programs::insert(&c.state.db, &p).await?;
    created(&p)
}

pub async fn list(c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    let page = Page::from_query(&c.query)?;
    let rows = programs::list(&c.state.db, c.who.program_id.as_deref(), &page.before(), page.limit).await?;
    page.respond(rows, |p| p.id.clone())
}

pub async fn get(c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    ok(&load(c, id).await?)
}

pub async fn patch(req: &mut Request, c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let old = load(c, id).await?;
    let patch = body::<ProgramPatch>(req).await?;
    let settings = old.settings.apply(patch)?;
    let new = programs::Program { settings, updated_at: c.now, ..old.clone() };
    programs::update(&c.state.db, &old, &new).await?;
    // The cached links carry the window and cookie domain: refresh them if those changed.
    if old.settings.attribution_window_days != new.settings.attribution_window_days
        || old.settings.cookie_domain != new.settings.cookie_domain
    {
        refresh_links(c, &new.id, None).await?;
    }
    ok(&new)
}

/// Rewrites the KV entries of a program's (or one partner's) live links from D1: the first
/// page now, the rest by the cron (`cache_refresh_jobs`), so any number of links is covered.
pub async fn refresh_links(c: &Call, program_id: &str, partner_id: Option<&str>) -> ApiResult<()> {
    Ok(link_cache::refresh_all(&c.state.db, &c.state.links, program_id, partner_id, c.now).await?)
}
