use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{body, created, ok, path_id, Call, Page};
use crate::state::new_id;
use crate::store::stats::{self, GroupBy};
use crate::store::{link_cache, programs};
use refport_core::ids;
use refport_core::program::{ProgramInput, ProgramPatch};
use refport_core::stats::format_day;
use serde_json::json;
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
    // The cached links carry the window, the cookie domain and the banned referrers (while
    // that rule is on): refresh them if those changed.
    let banned = |s: &refport_core::program::ProgramSettings| {
        let on = s.fraud_rules.action(refport_core::fraud::Rule::BannedReferrer) != refport_core::fraud::Action::Off;
        if on {
            s.banned_referrers.clone()
        } else {
            Vec::new()
        }
    };
    if old.settings.attribution_window_days != new.settings.attribution_window_days
        || old.settings.cookie_domain != new.settings.cookie_domain
        || banned(&old.settings) != banned(&new.settings)
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

/// Groups a partner or link breakdown answers at most (the busiest first).
const MAX_GROUPS: usize = 1000;
const DEFAULT_GROUPS: usize = 100;

/// `GET /api/v1/programs/{id}/stats?from=&to=&group_by=day|partner|link|sub1|sub2|sub3&partner_id=&limit=`:
/// clicks, leads, sales and money (per currency) over UTC days, from the daily rollups only.
/// `day` answers every day of the range (zeros included); the others answer the `limit`
/// busiest groups by clicks (then sales).
pub async fn stats(c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    let program = load(c, id).await?;
    let by = match c.query.get("group_by") {
        None => GroupBy::Day,
        Some(s) => GroupBy::parse(s).ok_or_else(|| {
            ApiError::bad_request("invalid_query", "group_by must be day, partner, link, sub1, sub2 or sub3")
        })?,
    };
    let partner = match c.query.get("partner_id").map(String::as_str) {
        Some(p) if ids::is_valid(ids::PARTNER, p) => Some(p),
        Some(_) => return Err(ApiError::bad_request("invalid_query", "partner_id is not a partner id")),
        None => None,
    };
    let mut out = grouped(c, &program.id, partner, by).await?;
    out["program_id"] = json!(program.id);
    out["partner_id"] = json!(partner);
    ok(&out)
}

/// Stats grouped `by` over the query's `from`, `to` and `limit`: `{from, to, group_by, totals,
/// data, has_more}` (a program's, or one partner's).
pub async fn grouped(c: &Call, program_id: &str, partner: Option<&str>, by: GroupBy) -> ApiResult<serde_json::Value> {
    let q = |k: &str| c.query.get(k).map(String::as_str);
    let (from, to) = refport_core::stats::parse_range(q("from"), q("to"), c.now)
        .map_err(|e| ApiError::bad_request("invalid_query", e.message))?;
    let limit = match q("limit") {
        None => DEFAULT_GROUPS,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_GROUPS).contains(n))
            .ok_or_else(|| ApiError::bad_request("invalid_query", format!("limit must be 1 to {MAX_GROUPS}")))?,
    };
    let mut groups = stats::program_groups(&c.state.db, program_id, partner, from, to, by).await?;
    let mut totals = stats::Totals::default();
    for g in &groups {
        totals.merge(&g.totals);
    }
    let counts =
        |t: &stats::Totals| json!({"clicks": t.clicks, "leads": t.leads, "sales": t.sales, "amounts": t.amounts});
    let row = |key: (&str, serde_json::Value), t: &stats::Totals| {
        let mut v = counts(t);
        v[key.0] = key.1;
        v
    };
    let mut has_more = false;
    let data: Vec<serde_json::Value> = match by {
        GroupBy::Day => {
            let empty = stats::Totals::default();
            (from..=to)
                .map(|d| {
                    let t = groups.iter().find(|g| g.key.as_i64() == Some(d)).map(|g| &g.totals).unwrap_or(&empty);
                    row(("date", json!(format_day(d))), t)
                })
                .collect()
        }
        _ => {
            groups.sort_by(|a, b| {
                (b.totals.clicks, b.totals.sales)
                    .cmp(&(a.totals.clicks, a.totals.sales))
                    .then_with(|| a.key.as_str().unwrap_or_default().cmp(b.key.as_str().unwrap_or_default()))
            });
            has_more = groups.len() > limit;
            let name = match by {
                GroupBy::Partner => "partner_id",
                GroupBy::Link => "link_id",
                _ => by.name(),
            };
            groups
                .iter()
                .take(limit)
                .map(|g| {
                    // '' in the rollups: conversions that came without a link, clicks without that sub-ID.
                    let key = match g.key.as_str() {
                        Some("") | None => serde_json::Value::Null,
                        Some(k) => json!(k),
                    };
                    row((name, key), &g.totals)
                })
                .collect()
        }
    };
    Ok(json!({
        "from": format_day(from),
        "to": format_day(to),
        "group_by": by.name(),
        "totals": counts(&totals),
        "data": data,
        "has_more": has_more,
    }))
}
