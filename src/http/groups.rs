//! Partner groups: `POST/GET /programs/{id}/groups`, `GET/PATCH/DELETE /groups/{id}`.

use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{body, created, ok, path_id, programs, Call};
use crate::state::new_id;
use crate::store::groups::{self, Group};
use refport_core::group::{GroupInput, GroupPatch};
use refport_core::ids;
use worker::{Request, Response};

/// The group, if the caller's key may see its program.
pub async fn load(c: &Call, id: &str) -> ApiResult<Group> {
    let id = path_id(id, ids::GROUP, "group")?;
    let g = groups::get(&c.state.db, &id).await?.ok_or(ApiError::NotFound("group"))?;
    c.who.check_program(&g.program_id, "group")?;
    Ok(g)
}

/// A partner's `group_id` must name a group of the partner's program (422 otherwise: a
/// group of another program is never revealed).
pub async fn check_member(c: &Call, program_id: &str, group_id: Option<&str>) -> ApiResult<()> {
    let Some(id) = group_id else { return Ok(()) };
    match groups::get(&c.state.db, id).await? {
        Some(g) if g.program_id == program_id => Ok(()),
        _ => {
            Err(refport_core::error::Invalid::new("group_id", "invalid_group", "no group with this id in the program")
                .into())
        }
    }
}

pub async fn create(req: &mut Request, c: &Call, program_id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let program = programs::load(c, program_id).await?;
    let f = body::<GroupInput>(req).await?.validate()?;
    let id = new_id(ids::GROUP, c.now)?;
    groups::insert(&c.state.db, &id, &program.id, &f, c.now).await?;
    created(&load(c, &id).await?)
}

pub async fn list(c: &Call, program_id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    let program = programs::load(c, program_id).await?;
    ok(&serde_json::json!({"data": groups::list(&c.state.db, &program.id).await?}))
}

pub async fn get(c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    ok(&load(c, id).await?)
}

pub async fn patch(req: &mut Request, c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let old = load(c, id).await?;
    let f = old.fields().apply(body::<GroupPatch>(req).await?)?;
    groups::update(&c.state.db, &old.id, &f, c.now).await?;
    ok(&load(c, &old.id).await?)
}

/// A group with partners is a 409 (`group_in_use`).
pub async fn delete(c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let g = load(c, id).await?;
    groups::delete(&c.state.db, &g.id).await?;
    ok(&serde_json::json!({"id": g.id, "deleted": true}))
}
