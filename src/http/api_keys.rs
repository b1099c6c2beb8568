use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{body, created, ok, path_id, programs, Call, Page};
use crate::state::{new_id, random};
use crate::store::api_keys::{self, ApiKey};
use refport_core::crypto::{sha256_hex, API_KEY_PREFIX};
use refport_core::error::Invalid;
use refport_core::ids::{self, random_chars, BASE62};
use worker::{Request, Response};

refport_core::from_json! {
    deny_unknown_fields
    struct CreateKey {
        name: String,
        program_id: Option<String>,
        permissions: Vec<String>,
    }
}

pub async fn create(req: &mut Request, c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let input = body::<CreateKey>(req).await?;
    let name = input.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Invalid::new("name", "invalid_name", "name must be 1 to 100 characters").into());
    }
    if input.permissions.is_empty() {
        return Err(
            Invalid::new("permissions", "invalid_permissions", "give at least one of read, write, track").into()
        );
    }
    let mut perms: Vec<String> = Vec::new();
    for p in &input.permissions {
        let perm = Perm::parse(p).ok_or_else(|| {
            Invalid::new("permissions", "invalid_permissions", format!("`{p}` is not one of read, write, track"))
        })?;
        // A key can only hand out what it holds itself.
        c.who.require(perm)?;
        if !perms.iter().any(|q| q == perm.as_str()) {
            perms.push(perm.as_str().to_string());
        }
    }
    let program_id = match (&input.program_id, &c.who.program_id) {
        (Some(p), _) => Some(programs::load(c, p).await?.id),
        (None, Some(bound)) => Some(bound.clone()),
        (None, None) => None,
    };
    let secret = format!("{API_KEY_PREFIX}{}", random_chars(BASE62, &random::<32>()?));
    let key = ApiKey {
        id: new_id(ids::API_KEY, c.now)?,
        name,
        key_hint: format!("{API_KEY_PREFIX}...{}", &secret[secret.len() - 4..]),
        program_id,
        permissions: perms,
        created_at: c.now,
        revoked_at: None,
    };
    api_keys::insert(&c.state.db, &key, &sha256_hex(secret.as_bytes())).await?;
    let mut body = serde_json::to_value(&key)?;
    body["key"] = serde_json::Value::String(secret);
    created(&body)
}

pub async fn list(c: &Call) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let page = Page::from_query(&c.query)?;
    let rows = api_keys::list(&c.state.db, c.who.program_id.as_deref(), &page.before(), page.limit).await?;
    page.respond(rows, |k| k.id.clone())
}

pub async fn revoke(c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let id = path_id(id, ids::API_KEY, "api key")?;
    let k = api_keys::get(&c.state.db, &id).await?.ok_or(ApiError::NotFound("api key"))?;
    if c.who.program_id.is_some() && k.program_id != c.who.program_id {
        return Err(ApiError::NotFound("api key"));
    }
    api_keys::revoke(&c.state.db, &k.id, c.now).await?;
    ok(&serde_json::json!({"id": k.id, "revoked": true}))
}
