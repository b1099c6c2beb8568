//! The JSON API: routing, body and query parsing, pagination, responses. One module per resource.

pub mod api_keys;
pub mod auth;
pub mod clicks;
pub mod commissions;
pub mod embed;
pub mod error;
pub mod invites;
pub mod links;
pub mod partners;
pub mod payouts;
pub mod programs;
pub mod stripe_connect;
pub mod track;
pub mod webhooks;

use crate::state::AppState;
use auth::Principal;
use error::{ApiError, ApiResult};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use worker::{Context, Env, Headers, Method, Request, Response, ResponseBuilder};

/// Largest request body accepted by the API.
pub const MAX_BODY: usize = 64 * 1024;

/// Everything a handler needs: the bindings, the clock reading, the caller, the query.
pub struct Call {
    pub state: AppState,
    pub now: i64,
    pub who: Principal,
    pub query: HashMap<String, String>,
    pub ctx: Context,
}

/// A response with a fixed body (infallible, unlike `Response::ok`).
pub fn respond(status: u16, headers: Headers, body: impl Into<Vec<u8>>) -> Response {
    ResponseBuilder::new().with_status(status).with_headers(headers).fixed(body.into())
}

/// `headers` from static pairs (names and values here are always valid header text).
pub fn headers(pairs: &[(&str, &str)]) -> Headers {
    let h = Headers::new();
    for (k, v) in pairs {
        let _ = h.set(k, v);
    }
    h
}

impl Call {
    /// The `program_id` list filter, narrowed to the key's program: a key bound to a program
    /// lists only that program, and naming another one is a 404.
    pub fn program_filter(&self) -> ApiResult<Option<String>> {
        let asked = id_param(&self.query, "program_id", refport_core::ids::PROGRAM)?;
        match (&self.who.program_id, asked) {
            (Some(bound), Some(p)) if *bound != p => Err(ApiError::NotFound("program")),
            (Some(bound), _) => Ok(Some(bound.clone())),
            (None, asked) => Ok(asked),
        }
    }
}

/// An optional JSON body: empty means `T::default()`.
pub async fn optional_body<T: DeserializeOwned + Default>(req: &mut Request) -> ApiResult<T> {
    let bytes = read_body(req).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(&bytes)
}

async fn read_body(req: &mut Request) -> ApiResult<Vec<u8>> {
    if let Ok(Some(len)) = req.headers().get("content-length") {
        if len.parse::<usize>().map(|l| l > MAX_BODY).unwrap_or(false) {
            return Err(ApiError::PayloadTooLarge);
        }
    }
    let bytes =
        req.bytes().await.map_err(|_| ApiError::bad_request("invalid_body", "could not read the request body"))?;
    if bytes.len() > MAX_BODY {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(bytes)
}

pub fn json_response<T: Serialize>(status: u16, body: &T) -> Response {
    let text = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    respond(
        status,
        headers(&[("content-type", "application/json; charset=utf-8"), ("cache-control", "no-store")]),
        text,
    )
}

pub fn ok<T: Serialize>(body: &T) -> ApiResult<Response> {
    Ok(json_response(200, body))
}

pub fn created<T: Serialize>(body: &T) -> ApiResult<Response> {
    Ok(json_response(201, body))
}

/// Reads and parses a JSON body: size-limited, malformed JSON -> 400 `invalid_json`, a shape
/// mismatch (missing or unknown field, wrong type) -> 400 `invalid_request` with serde's message.
pub async fn body<T: DeserializeOwned>(req: &mut Request) -> ApiResult<T> {
    parse_json(&read_body(req).await?)
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::bad_request("invalid_json", "a JSON body is required"));
    }
    // Syntax errors first, so the code tells malformed JSON apart from a wrong shape.
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("malformed JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("invalid_request", "the body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))
}

/// Query parameters; any parameter outside `allowed` is refused, so typos never pass silently.
pub fn query_params(req: &Request, allowed: &[&str]) -> ApiResult<HashMap<String, String>> {
    let url = req.url().map_err(|_| ApiError::bad_request("invalid_request", "bad URL"))?;
    let mut out = HashMap::new();
    for (k, v) in url.query_pairs() {
        if !allowed.contains(&k.as_ref()) {
            return Err(ApiError::bad_request("invalid_query", format!("unknown query parameter `{k}`")));
        }
        out.insert(k.into_owned(), v.into_owned());
    }
    Ok(out)
}

/// Cursor pagination: `?limit=1..100` (default 20) and `?cursor=<id of the last item seen>`.
pub struct Page {
    pub limit: u32,
    pub cursor: Option<String>,
}

impl Page {
    pub fn from_query(q: &HashMap<String, String>) -> ApiResult<Page> {
        let limit = match q.get("limit") {
            None => 20,
            Some(s) => s
                .parse::<u32>()
                .ok()
                .filter(|l| (1..=100).contains(l))
                .ok_or_else(|| ApiError::bad_request("invalid_query", "limit must be an integer from 1 to 100"))?,
        };
        let cursor = match q.get("cursor") {
            None => None,
            Some(c) if c.len() <= 100 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => Some(c.clone()),
            Some(_) => return Err(ApiError::bad_request("invalid_query", "malformed cursor")),
        };
        Ok(Page { limit, cursor })
    }

    /// The SQL `WHERE` bound for `ORDER BY id DESC` paging: ids sort by creation time.
    pub fn before(&self) -> String {
        self.cursor.clone().unwrap_or_else(|| "~".into())
    }

    /// Rows were fetched with `LIMIT limit + 1`: answers `{data, next_cursor}`.
    pub fn respond<T: Serialize>(&self, mut rows: Vec<T>, id_of: impl Fn(&T) -> String) -> ApiResult<Response> {
        let more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let next = if more { rows.last().map(id_of) } else { None };
        ok(&serde_json::json!({"data": rows, "next_cursor": next}))
    }
}

/// An optional id filter from the query string, checked against its prefix.
pub fn id_param(q: &HashMap<String, String>, name: &str, prefix: &str) -> ApiResult<Option<String>> {
    match q.get(name) {
        None => Ok(None),
        Some(v) if refport_core::ids::is_valid(prefix, v) => Ok(Some(v.clone())),
        Some(_) => Err(ApiError::bad_request("invalid_query", format!("`{name}` must be a {prefix}_ id"))),
    }
}

/// A path id, checked against its prefix: a malformed id is simply not found.
pub fn path_id(s: &str, prefix: &str, what: &'static str) -> ApiResult<String> {
    if refport_core::ids::is_valid(prefix, s) {
        Ok(s.to_string())
    } else {
        Err(ApiError::NotFound(what))
    }
}

/// The methods each API path answers (the `Allow` of a 405); `None`: no such path.
fn allowed_methods(segs: &[&str]) -> Option<&'static str> {
    Some(match segs {
        ["health"] | ["openapi.json"] => "GET",
        ["webhooks", "stripe"] | ["invites", "accept"] | ["track", "lead" | "sale" | "refund"] => "POST",
        ["portal", "me" | "stats" | "commissions" | "payouts"] => "GET",
        ["portal", "onboard"] | ["embed-tokens"] | ["partners", _, "stripe", "onboard"] => "POST",
        ["commissions", _, "approve" | "reject"] => "POST",
        ["programs"] | ["programs", _, "partners"] | ["partners", _, "links"] | ["api-keys"] | ["webhooks"] => {
            "GET, POST"
        }
        ["programs", _] | ["partners", _] => "GET, PATCH",
        ["links", _] => "GET, PATCH, DELETE",
        ["api-keys", _] | ["webhooks", _] => "DELETE",
        ["clicks"] | ["commissions"] | ["payouts"] | ["partners", _, "stats"] | ["webhooks", _, "deliveries"] => "GET",
        _ => return None,
    })
}

pub async fn handle(req: Request, env: Env, ctx: Context, now: i64) -> Response {
    match route(req, env, ctx, now).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route(mut req: Request, env: Env, ctx: Context, now: i64) -> ApiResult<Response> {
    let path = req.path();
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(3).collect(); // after /api/v1/
    let method = req.method();
    if !path.starts_with("/api/v1/") {
        return Err(ApiError::NotFound("route"));
    }
    // 404 and 405 are decided by path and method alone, before any authentication.
    let allow = allowed_methods(&segs).ok_or(ApiError::NotFound("route"))?;
    // workers-rs maps methods it does not know (QUERY, TRACE...) to GET: check the raw one.
    let raw = req.inner().method();
    if !allow.split(", ").any(|m| m == raw) {
        return Err(ApiError::MethodNotAllowed(allow));
    }
    match (&method, segs.as_slice()) {
        (Method::Get, ["health"]) => return ok(&serde_json::json!({"ok": true})),
        // The OpenAPI document is a static asset (kept out of the wasm); the Worker answers the
        // path so that other methods get a proper 405.
        (Method::Get, ["openapi.json"]) => return Ok(env.assets("ASSETS")?.fetch_request(req).await?),
        _ => {}
    }
    let state = AppState::load(&env)?;
    match (&method, segs.as_slice()) {
        (Method::Post, ["webhooks", "stripe"]) => return stripe_connect::webhook(&mut req, &state, now).await,
        (Method::Post, ["invites", "accept"]) => return invites::accept(&mut req, state, now).await,
        (_, ["portal", rest @ ..]) => {
            let rest: Vec<&str> = rest.to_vec();
            return embed::route(&mut req, state, now, &rest).await;
        }
        _ => {}
    }
    let who = auth::authenticate(&req, &state).await?;
    let allowed: &[&str] = match segs.as_slice() {
        ["clicks"] => &["limit", "cursor", "link_id", "partner_id", "program_id"],
        ["commissions"] | ["payouts"] => &["limit", "cursor", "program_id", "partner_id", "status"],
        [_] | [_, _, _] => &["limit", "cursor"],
        _ => &[],
    };
    let query = query_params(&req, allowed)?;
    let c = Call { state, now, who, query, ctx };
    use Method::*;
    match (method, segs.as_slice()) {
        (Post, ["programs"]) => programs::create(&mut req, &c).await,
        (Get, ["programs"]) => programs::list(&c).await,
        (Get, ["programs", id]) => programs::get(&c, id).await,
        (Patch, ["programs", id]) => programs::patch(&mut req, &c, id).await,
        (Post, ["programs", id, "partners"]) => partners::create(&mut req, &c, id).await,
        (Get, ["programs", id, "partners"]) => partners::list(&c, id).await,
        (Get, ["partners", id]) => partners::get(&c, id).await,
        (Patch, ["partners", id]) => partners::patch(&mut req, &c, id).await,
        (Get, ["partners", id, "stats"]) => partners::stats(&c, id).await,
        (Post, ["partners", id, "links"]) => links::create(&mut req, &c, id).await,
        (Get, ["partners", id, "links"]) => links::list(&c, id).await,
        (Get, ["links", id]) => links::get(&c, id).await,
        (Patch, ["links", id]) => links::patch(&mut req, &c, id).await,
        (Delete, ["links", id]) => links::delete(&c, id).await,
        (Get, ["clicks"]) => clicks::list(&c).await,
        (Post, ["track", "lead"]) => track::lead(&mut req, &c).await,
        (Post, ["track", "sale"]) => track::sale(&mut req, &c).await,
        (Post, ["track", "refund"]) => track::refund(&mut req, &c).await,
        (Get, ["payouts"]) => payouts::list(&c).await,
        (Post, ["partners", id, "stripe", "onboard"]) => stripe_connect::onboard(&mut req, &c, id).await,
        (Get, ["commissions"]) => commissions::list(&c).await,
        (Post, ["commissions", id, "approve"]) => commissions::approve(&c, id).await,
        (Post, ["commissions", id, "reject"]) => commissions::reject(&mut req, &c, id).await,
        (Post, ["embed-tokens"]) => embed::create_token(&mut req, &c).await,
        (Post, ["webhooks"]) => webhooks::create(&mut req, &c).await,
        (Get, ["webhooks"]) => webhooks::list(&c).await,
        (Delete, ["webhooks", id]) => webhooks::delete(&c, id).await,
        (Get, ["webhooks", id, "deliveries"]) => webhooks::deliveries(&c, id).await,
        (Post, ["api-keys"]) => api_keys::create(&mut req, &c).await,
        (Get, ["api-keys"]) => api_keys::list(&c).await,
        (Delete, ["api-keys", id]) => api_keys::revoke(&c, id).await,
        // Unreachable: allowed_methods() answered 404/405 before authentication.
        _ => Err(ApiError::NotFound("route")),
    }
}
