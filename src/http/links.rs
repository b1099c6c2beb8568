use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{body, created, ok, partners, path_id, Call, Page};
use crate::state::{new_id, random};
use crate::store::{link_cache, links, programs};
use refport_core::error::Invalid;
use refport_core::ids::{self, random_chars, BASE62};
use refport_core::link::{parse_destination, parse_key, short_url, GENERATED_KEY_LEN};
use refport_core::partner::PartnerStatus;
use serde::Serialize;
use worker::{Request, Response};

refport_core::from_json! {
    deny_unknown_fields
    struct CreateLink {
        domain: Option<String>,
        key: Option<String>,
        url: String,
    }
}

refport_core::from_json! {
    deny_unknown_fields
    struct PatchLink {
        key: Option<String>,
        url: Option<String>,
    }
}

#[derive(Serialize)]
struct LinkOut<'a> {
    #[serde(flatten)]
    link: &'a links::Link,
    short_url: String,
}

fn out(l: &links::Link) -> LinkOut<'_> {
    LinkOut { link: l, short_url: short_url(&l.domain, &l.key) }
}

async fn load(c: &Call, id: &str) -> ApiResult<links::Link> {
    let id = path_id(id, ids::LINK, "link")?;
    let l = links::get(&c.state.db, &id).await?.ok_or(ApiError::NotFound("link"))?;
    c.who.check_program(&l.program_id, "link")?;
    Ok(l)
}

async fn program_of(c: &Call, id: &str) -> ApiResult<programs::Program> {
    programs::get(&c.state.db, id).await?.ok_or(ApiError::Internal(format!("program {id} missing")))
}

pub async fn create(req: &mut Request, c: &Call, partner_id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let partner = partners::load(c, partner_id).await?;
    let input = body::<CreateLink>(req).await?;
    if partner.status == PartnerStatus::Banned {
        return Err(ApiError::conflict("partner_banned", "a banned partner cannot get new links"));
    }
    let program = program_of(c, &partner.program_id).await?;
    let domain = match input.domain {
        None => program.settings.domains.first().cloned().unwrap_or_default(),
        Some(d) => {
            let d = d.trim().to_ascii_lowercase();
            if !program.settings.domains.contains(&d) {
                return Err(Invalid::new(
                    "domain",
                    "domain_not_in_program",
                    format!("`{d}` is not one of the program's domains"),
                )
                .into());
            }
            d
        }
    };
    let url = parse_destination(&input.url, &program.settings.allowed_hosts)?;
    let chosen = input.key.as_deref().map(parse_key).transpose()?;
    let mut link = links::Link {
        id: new_id(ids::LINK, c.now)?,
        program_id: program.id.clone(),
        partner_id: partner.id.clone(),
        domain,
        key: String::new(),
        url: url.to_string(),
        created_at: c.now,
        updated_at: c.now,
    };
    // A generated key that collides (62^7 space) is drawn again; a chosen one is a conflict.
    let mut attempts = 0;
    loop {
        link.key = match &chosen {
            Some(k) => k.clone(),
            None => random_chars(BASE62, &random::<GENERATED_KEY_LEN>()?),
        };
        match links::insert(&c.state.db, &link).await? {
            links::Inserted::Ok => break,
            links::Inserted::KeyTaken if chosen.is_none() && attempts < 5 => attempts += 1,
            links::Inserted::KeyTaken => {
                return Err(ApiError::conflict(
                    "key_taken",
                    format!("`{}` is already used on {}", link.key, link.domain),
                ))
            }
        }
    }
    link_cache::refresh(&c.state.db, &c.state.links, &link.domain, &link.key).await?;
    created(&out(&link))
}

pub async fn list(c: &Call, partner_id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    let partner = partners::load(c, partner_id).await?;
    let page = Page::from_query(&c.query)?;
    let rows = links::list_for_partner(&c.state.db, &partner.id, &page.before(), page.limit).await?;
    let rows: Vec<LinkOut> = rows.iter().map(out).collect();
    page.respond(rows, |l| l.link.id.clone())
}

pub async fn get(c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    ok(&out(&load(c, id).await?))
}

pub async fn patch(req: &mut Request, c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let old = load(c, id).await?;
    let input = body::<PatchLink>(req).await?;
    let program = program_of(c, &old.program_id).await?;
    let mut new = old.clone();
    if let Some(u) = input.url {
        new.url = parse_destination(&u, &program.settings.allowed_hosts)?.to_string();
    }
    if let Some(k) = input.key {
        new.key = parse_key(&k)?;
    }
    new.updated_at = c.now;
    links::update(&c.state.db, &new).await?;
    let kv = &c.state.links;
    if new.key != old.key {
        link_cache::refresh(&c.state.db, kv, &old.domain, &old.key).await?;
    }
    link_cache::refresh(&c.state.db, kv, &new.domain, &new.key).await?;
    ok(&out(&new))
}

pub async fn delete(c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let l = load(c, id).await?;
    links::soft_delete(&c.state.db, &l.id, c.now).await?;
    link_cache::refresh(&c.state.db, &c.state.links, &l.domain, &l.key).await?;
    ok(&serde_json::json!({"id": l.id, "deleted": true}))
}
