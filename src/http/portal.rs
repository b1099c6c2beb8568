//! The partner portal: "portal" in code and API (`http/portal.rs`, `web/portal`, `/api/v1/portal/*`),
//! embedded by merchants as the iframe page `/embed/referrals` (`src/pages.rs`) with an embed
//! token minted here (`POST /api/v1/embed-tokens`). A token is verified by signature and expiry
//! alone (no storage read); every portal query is scoped to the token's one partner in its one
//! program.

use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{body, created, ok, programs, Call, Page};
use crate::state::{new_id, random, AppState};
use crate::store::{self, links, partners};
use refport_core::error::Invalid;
use refport_core::ids::{self, random_chars, BASE62};
use refport_core::link::{short_url, GENERATED_KEY_LEN};
use refport_core::partner::{parse_email, PartnerStatus};
use refport_core::program::describe_terms;
use refport_core::time::{rfc3339, DAY_MS};
use refport_core::token::{embed_expiry, sign_embed, verify_embed, EmbedClaims, MAX_TTL_MS};
use serde_json::json;
use std::collections::HashMap;
use worker::{Request, Response};

refport_core::from_json! {
    deny_unknown_fields
    struct NewPartner {
        email: String,
        name: String,
    }
}

refport_core::from_json! {
    deny_unknown_fields
    struct TokenIn {
        program_id: String,
        partner_id: Option<String>,
        partner: Option<NewPartner>,
        /// Token lifetime in seconds (default 3600, at most 7200).
        ttl_seconds: Option<i64>,
    }
}

pub fn embed_secret(state: &AppState) -> ApiResult<Vec<u8>> {
    state
        .secrets
        .embed_token
        .as_ref()
        .map(|s| s.bytes().to_vec())
        .ok_or_else(|| ApiError::Internal("EMBED_TOKEN_SECRET is not set".into()))
}

pub fn mint(
    state: &AppState,
    program_id: &str,
    partner_id: &str,
    now: i64,
    ttl_ms: Option<i64>,
) -> ApiResult<(String, i64)> {
    let expires_at = embed_expiry(now, ttl_ms)?;
    let claims = EmbedClaims { program_id: program_id.into(), partner_id: partner_id.into(), expires_at };
    Ok((sign_embed(&embed_secret(state)?, &claims), expires_at))
}

/// `POST /api/v1/embed-tokens` (secret key): for an existing partner, or self-enrolment of a
/// new one (created with a default link), in one call.
pub async fn create_token(req: &mut Request, c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let input = body::<TokenIn>(req).await?;
    let program = programs::load(c, &input.program_id).await?;
    if input.ttl_seconds.is_some_and(|s| !(1..=MAX_TTL_MS / 1000).contains(&s)) {
        return Err(Invalid::new(
            "ttl_seconds",
            "invalid_ttl",
            format!("ttl_seconds must be 1 to {}", MAX_TTL_MS / 1000),
        )
        .into());
    }
    let ttl_ms = input.ttl_seconds.map(|s| s * 1000);
    let partner = match (input.partner_id, input.partner) {
        (Some(id), None) => {
            let p = partners::get(&c.state.db, &id)
                .await?
                .filter(|p| p.program_id == program.id)
                .ok_or(ApiError::NotFound("partner"))?;
            p
        }
        (None, Some(np)) => enrol(c, &program, &np.email, &np.name).await?,
        _ => {
            return Err(Invalid::new(
                "partner_id",
                "invalid_request",
                "send exactly one of partner_id or partner {email, name}",
            )
            .into())
        }
    };
    if partner.status == PartnerStatus::Banned {
        return Err(ApiError::conflict("partner_banned", "a banned partner has no portal"));
    }
    let (token, expires_at) = mint(&c.state, &program.id, &partner.id, c.now, ttl_ms)?;
    created(
        &json!({"token": token, "expires_at": rfc3339(expires_at), "partner_id": partner.id, "program_id": program.id}),
    )
}

/// Finds the partner by email or enrols it (active) with a default link; idempotent by email.
async fn enrol(c: &Call, program: &store::programs::Program, email: &str, name: &str) -> ApiResult<partners::Partner> {
    let email = parse_email("partner.email", email)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Invalid::new("partner.name", "invalid_name", "name must be 1 to 200 characters").into());
    }
    let (p, new) =
        partners::enrol(&c.state.db, &new_id(ids::PARTNER, c.now)?, &program.id, &email, name, c.now).await?;
    if new {
        crate::webhook_delivery::deliver_soon(&c.ctx, &c.state);
    }
    ensure_default_link(&c.state, program, &p, c.now).await?;
    Ok(p)
}

/// Gives a partner without links one on the program's first domain, to the first allowed host.
pub async fn ensure_default_link(
    state: &AppState,
    program: &store::programs::Program,
    p: &partners::Partner,
    now: i64,
) -> ApiResult<()> {
    let existing = links::list_for_partner(&state.db, &p.id, "~", 1).await?;
    if !existing.is_empty() {
        return Ok(());
    }
    let (Some(domain), Some(host)) = (program.settings.domains.first(), program.settings.allowed_hosts.first()) else {
        return Ok(());
    };
    for _ in 0..5 {
        let link = links::Link {
            id: new_id(ids::LINK, now)?,
            program_id: program.id.clone(),
            partner_id: p.id.clone(),
            domain: domain.clone(),
            key: random_chars(BASE62, &random::<GENERATED_KEY_LEN>()?),
            url: format!("https://{host}/"),
            created_at: now,
            updated_at: now,
        };
        if let links::Inserted::Ok = links::insert(&state.db, &link).await? {
            store::link_cache::refresh(&state.db, &state.links, &link.domain, &link.key).await?;
            return Ok(());
        }
    }
    Err(ApiError::Internal("could not draw a free link key".into()))
}

/// The portal's caller: the token's partner, checked to belong to the token's program.
pub struct Portal {
    pub state: AppState,
    pub now: i64,
    pub program: store::programs::Program,
    pub partner: partners::Partner,
    pub query: HashMap<String, String>,
}

pub async fn authenticate(
    req: &Request,
    state: AppState,
    now: i64,
    query: HashMap<String, String>,
) -> ApiResult<Portal> {
    let header = req.headers().get("authorization").ok().flatten().unwrap_or_default();
    let token = header
        .split_once(' ')
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string())
        .ok_or(ApiError::Unauthorized("send the embed token as `Authorization: Bearer ...`"))?;
    let claims = verify_embed(&embed_secret(&state)?, &token, now).map_err(|e| match e {
        refport_core::token::TokenError::Expired => ApiError::Unauthorized("the embed token has expired"),
        _ => ApiError::Unauthorized("invalid embed token"),
    })?;
    let partner =
        partners::get(&state.db, &claims.partner_id).await?.ok_or(ApiError::Unauthorized("invalid embed token"))?;
    if !claims.is_for_program(&partner.program_id) || partner.status == PartnerStatus::Banned {
        return Err(ApiError::Unauthorized("invalid embed token"));
    }
    let program = store::programs::get(&state.db, &claims.program_id)
        .await?
        .ok_or(ApiError::Unauthorized("invalid embed token"))?;
    Ok(Portal { state, now, program, partner, query })
}

pub async fn me(p: &Portal) -> ApiResult<Response> {
    let s = &p.program.settings;
    let links = links::list_for_partner(&p.state.db, &p.partner.id, "~", 50).await?;
    let links: Vec<_> = links
        .iter()
        .map(|l| json!({"id": l.id, "domain": l.domain, "key": l.key, "url": l.url, "short_url": short_url(&l.domain, &l.key)}))
        .collect();
    let t = store::stats::partner_totals(&p.state.db, &p.program.id, &p.partner.id).await?;
    let earnings = t.in_currency(s.payout_currency.code()).earnings;
    let pn = &p.partner;
    let rewards = refport_core::rules::effective(&s.rewards, pn.group_rewards.as_ref(), pn.rewards.as_ref());
    let min_payout = refport_core::group::effective_min_payout(s.min_payout, pn.group_min_payout, pn.min_payout);
    let hold_days = refport_core::group::effective_hold_days(s.hold_days, pn.group_hold_days);
    ok(&json!({
        "program": {
            "id": p.program.id, "name": s.name, "description": s.description, "logo_url": s.logo_url,
            "brand_color": s.brand_color, "payout_currency": s.payout_currency, "min_payout": min_payout,
            "terms": describe_terms(s, &rewards, hold_days, min_payout),
        },
        "partner": {
            "id": p.partner.id, "name": p.partner.name, "email": p.partner.email, "status": p.partner.status,
            "payouts_enabled": p.partner.payouts_enabled, "stripe_connected": p.partner.stripe_account_id.is_some(),
            "country": p.partner.country, "payouts_disabled_reason": p.partner.payouts_disabled_reason,
        },
        "links": links,
        "totals": {
            "clicks": t.clicks, "leads": t.leads, "sales": t.sales,
            "earnings": earnings,
        },
    }))
}

/// `GET /api/v1/portal/stats?days=30|90`: per UTC day clicks, leads, sales and earnings.
pub async fn stats(p: &Portal) -> ApiResult<Response> {
    let days: i64 = match p.query.get("days").map(String::as_str) {
        None | Some("30") => 30,
        Some("90") => 90,
        Some(_) => return Err(ApiError::bad_request("invalid_query", "days must be 30 or 90")),
    };
    let today = p.now.div_euclid(DAY_MS);
    let currency = p.program.settings.payout_currency.code();
    let daily =
        store::stats::partner_daily(&p.state.db, &p.program.id, &p.partner.id, today - days + 1, currency).await?;
    let lookup = |v: &[store::stats::DayCount], d: i64| v.iter().find(|x| x.day == d).map(|x| x.n).unwrap_or(0);
    let data: Vec<_> = (today - days + 1..=today)
        .map(|d| {
            json!({
                "date": &rfc3339(d * DAY_MS)[..10],
                "clicks": lookup(&daily.clicks, d), "leads": lookup(&daily.leads, d),
                "sales": lookup(&daily.sales, d), "earnings": lookup(&daily.earnings, d),
            })
        })
        .collect();
    let sub_ids = store::stats::partner_sub_ids(&p.state.db, &p.program.id, &p.partner.id, today - days + 1).await?;
    ok(&json!({"days": days, "currency": p.program.settings.payout_currency, "data": data, "sub_ids": sub_ids}))
}

pub async fn commissions(p: &Portal) -> ApiResult<Response> {
    let page = Page::from_query(&p.query)?;
    let f =
        store::commissions::Filter { program_id: Some(&p.program.id), partner_id: Some(&p.partner.id), status: None };
    let rows = store::commissions::list(&p.state.db, &f, &page.before(), page.limit).await?;
    page.respond(rows, |r| r.id.clone())
}

pub async fn payouts(p: &Portal) -> ApiResult<Response> {
    let page = Page::from_query(&p.query)?;
    let f = store::payouts::Filter { program_id: Some(&p.program.id), partner_id: Some(&p.partner.id), status: None };
    let rows = store::payouts::list(&p.state.db, &f, &page.before(), page.limit).await?;
    page.respond(rows, |r| r.id.clone())
}
