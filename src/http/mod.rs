//! The JSON API: routing, body and query parsing, pagination, responses. One module per resource.

pub mod api_keys;
pub mod auth;
pub mod clicks;
pub mod commissions;
pub mod coupons;
pub mod csv;
pub mod error;
pub mod groups;
pub mod invites;
pub mod links;
pub mod partners;
pub mod payouts;
pub mod portal;
pub mod programs;
pub mod stripe_onboarding;
pub mod stripe_tracking;
pub mod stripe_webhooks;
pub mod track;
pub mod webhook_endpoints;

use crate::state::AppState;
use auth::Principal;
use error::{ApiError, ApiResult};
use refport_core::wire::FromJson;
use serde::Serialize;
use std::collections::HashMap;
use worker::{Context, Env, Headers, Request, Response, ResponseBuilder};

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
pub async fn optional_body<T: FromJson + Default>(req: &mut Request) -> ApiResult<T> {
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
pub async fn body<T: FromJson>(req: &mut Request) -> ApiResult<T> {
    parse_json(&read_body(req).await?)
}

pub fn parse_json<T: FromJson>(bytes: &[u8]) -> ApiResult<T> {
    refport_core::wire::from_value(json_object(bytes)?)
        .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))
}

/// The body as a JSON object (not generic: one copy for every body type).
fn json_object(bytes: &[u8]) -> ApiResult<serde_json::Value> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::bad_request("invalid_json", "a JSON body is required"));
    }
    // Syntax errors first, so the code tells malformed JSON apart from a wrong shape.
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("malformed JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("invalid_request", "the body must be a JSON object"));
    }
    Ok(value)
}

/// Query parameters; any parameter outside `allowed` is refused, so typos never pass silently.
pub fn query_params(req: &Request, allowed: &[&str]) -> ApiResult<HashMap<String, String>> {
    let url = refport_core::weburl::HttpUrl::parse(&req.inner().url())
        .map_err(|_| ApiError::bad_request("invalid_request", "bad URL"))?;
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(url.query().unwrap_or("").as_bytes()) {
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

/// Who may call a route.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// No credentials (health, the OpenAPI document, invitations, Stripe's signed webhooks).
    None,
    /// An embed token (the partner portal).
    Portal,
    /// An API key.
    Key,
}

/// Every API endpoint; `ROUTES` says where each one lives and what it accepts.
#[derive(Clone, Copy)]
enum Endpoint {
    Health,
    OpenApi,
    StripeWebhook,
    StripeConnectWebhook,
    AcceptInvite,
    PortalMe,
    PortalStats,
    PortalCommissions,
    PortalPayouts,
    PortalOnboard,
    CreateProgram,
    ListPrograms,
    GetProgram,
    PatchProgram,
    CreatePartner,
    ListPartners,
    GetPartner,
    PatchPartner,
    PartnerStats,
    ApprovePayoutAccount,
    CreateLink,
    ListLinks,
    GetLink,
    PatchLink,
    DeleteLink,
    CreateCoupon,
    ListCoupons,
    DeleteCoupon,
    ListClicks,
    TrackLead,
    TrackSale,
    TrackRefund,
    ListPayouts,
    ApprovePayout,
    CancelPayout,
    OnboardPartner,
    ListCommissions,
    ApproveCommission,
    RejectCommission,
    CreateEmbedToken,
    CreateWebhook,
    ListWebhooks,
    DeleteWebhook,
    WebhookDeliveries,
    ResendWebhookDelivery,
    GetCommission,
    CreateApiKey,
    ListApiKeys,
    RevokeApiKey,
    Metrics,
    ProgramStats,
    StripeIntegration,
    CreateGroup,
    ListGroups,
    GetGroup,
    PatchGroup,
    DeleteGroup,
    CreateCommission,
    ExportCommissions,
    ExportPayouts,
    ExportPartners,
    ImportPartners,
}

/// One route: method, path under `/api/v1/` (`{id}` matches one segment), credentials, the
/// query parameters it accepts (any other is a 400), and the endpoint it runs.
struct Route {
    method: &'static str,
    path: &'static str,
    auth: Auth,
    query: &'static [&'static str],
    endpoint: Endpoint,
}

const PAGE: &[&str] = &["limit", "cursor"];
const LIST_MONEY: &[&str] = &["limit", "cursor", "program_id", "partner_id", "status"];
const LIST_COMMISSIONS: &[&str] = &["limit", "cursor", "program_id", "partner_id", "status", "held"];
// The CSV exports take their list's filters and a starting cursor (`Refport-Next-Cursor`).
const EXPORT_MONEY: &[&str] = &["cursor", "program_id", "partner_id", "status"];
const EXPORT_COMMISSIONS: &[&str] = &["cursor", "program_id", "partner_id", "status", "held"];

const fn r(
    method: &'static str,
    path: &'static str,
    auth: Auth,
    query: &'static [&'static str],
    endpoint: Endpoint,
) -> Route {
    Route { method, path, auth, query, endpoint }
}

/// The one route table: routing, 404/405 with `Allow`, credentials and allowed query parameters.
#[rustfmt::skip]
const ROUTES: &[Route] = {
    use Auth::{Key, None as Open, Portal as Token};
    use Endpoint::*;
    &[
        r("GET", "health", Open, &[], Health),
        r("GET", "openapi.json", Open, &[], OpenApi),
        r("POST", "webhooks/stripe", Open, &[], StripeWebhook),
        r("POST", "webhooks/stripe/connect", Open, &[], StripeConnectWebhook),
        r("POST", "invites/accept", Open, &[], AcceptInvite),
        r("GET", "portal/me", Token, &[], PortalMe),
        r("GET", "portal/stats", Token, &["days"], PortalStats),
        r("GET", "portal/commissions", Token, PAGE, PortalCommissions),
        r("GET", "portal/payouts", Token, PAGE, PortalPayouts),
        r("POST", "portal/onboard", Token, &[], PortalOnboard),
        r("POST", "programs", Key, &[], CreateProgram),
        r("GET", "programs", Key, PAGE, ListPrograms),
        r("GET", "programs/{id}", Key, &[], GetProgram),
        r("PATCH", "programs/{id}", Key, &[], PatchProgram),
        r("GET", "programs/{id}/stats", Key, &["from", "to", "group_by", "partner_id", "limit"], ProgramStats),
        r("POST", "programs/{id}/partners", Key, &[], CreatePartner),
        r("POST", "programs/{id}/groups", Key, &[], CreateGroup),
        r("GET", "programs/{id}/groups", Key, &[], ListGroups),
        r("GET", "groups/{id}", Key, &[], GetGroup),
        r("PATCH", "groups/{id}", Key, &[], PatchGroup),
        r("DELETE", "groups/{id}", Key, &[], DeleteGroup),
        r("GET", "programs/{id}/partners", Key, PAGE, ListPartners),
        r("GET", "partners/{id}", Key, &[], GetPartner),
        r("PATCH", "partners/{id}", Key, &[], PatchPartner),
        r("GET", "partners/{id}/stats", Key, &["group_by", "from", "to", "limit"], PartnerStats),
        r("POST", "partners/{id}/approve_payout_account", Key, &[], ApprovePayoutAccount),
        r("POST", "partners/{id}/links", Key, &[], CreateLink),
        r("GET", "partners/{id}/links", Key, PAGE, ListLinks),
        r("POST", "partners/{id}/stripe/onboard", Key, &[], OnboardPartner),
        r("GET", "links/{id}", Key, &[], GetLink),
        r("PATCH", "links/{id}", Key, &[], PatchLink),
        r("DELETE", "links/{id}", Key, &[], DeleteLink),
        r("POST", "partners/{id}/coupons", Key, &[], CreateCoupon),
        r("GET", "partners/{id}/coupons", Key, PAGE, ListCoupons),
        r("DELETE", "coupons/{id}", Key, &[], DeleteCoupon),
        r("GET", "clicks", Key, &["limit", "cursor", "link_id", "partner_id", "program_id"], ListClicks),
        r("POST", "track/lead", Key, &[], TrackLead),
        r("POST", "track/sale", Key, &[], TrackSale),
        r("POST", "track/refund", Key, &[], TrackRefund),
        r("GET", "commissions", Key, LIST_COMMISSIONS, ListCommissions),
        r("POST", "commissions", Key, &[], CreateCommission),
        r("GET", "commissions/{id}", Key, &[], GetCommission),
        r("POST", "commissions/{id}/approve", Key, &[], ApproveCommission),
        r("POST", "commissions/{id}/reject", Key, &[], RejectCommission),
        r("GET", "payouts", Key, LIST_MONEY, ListPayouts),
        r("POST", "payouts/{id}/approve", Key, &[], ApprovePayout),
        r("POST", "payouts/{id}/cancel", Key, &[], CancelPayout),
        r("POST", "embed-tokens", Key, &[], CreateEmbedToken),
        r("POST", "webhooks", Key, &[], CreateWebhook),
        r("GET", "webhooks", Key, PAGE, ListWebhooks),
        r("DELETE", "webhooks/{id}", Key, &[], DeleteWebhook),
        r("GET", "webhooks/{id}/deliveries", Key, PAGE, WebhookDeliveries),
        r("POST", "webhook-deliveries/{id}/resend", Key, &[], ResendWebhookDelivery),
        r("POST", "api-keys", Key, &[], CreateApiKey),
        r("GET", "api-keys", Key, PAGE, ListApiKeys),
        r("DELETE", "api-keys/{id}", Key, &[], RevokeApiKey),
        r("GET", "metrics", Key, &[], Metrics),
        r("GET", "integrations/stripe", Key, &[], StripeIntegration),
        r("GET", "commissions/export", Key, EXPORT_COMMISSIONS, ExportCommissions),
        r("GET", "payouts/export", Key, EXPORT_MONEY, ExportPayouts),
        r("GET", "partners/export", Key, &["cursor", "program_id", "status"], ExportPartners),
        r("POST", "programs/{id}/partners/import", Key, &["dry_run", "invite"], ImportPartners),
    ]
};

/// The path's `{id}` segments if `segs` matches `pattern`.
fn matches<'a>(pattern: &str, segs: &[&'a str]) -> Option<Vec<&'a str>> {
    let mut ids = Vec::new();
    let mut n = 0;
    for (i, p) in pattern.split('/').enumerate() {
        let s = segs.get(i)?;
        if p == "{id}" {
            ids.push(*s);
        } else if p != *s {
            return None;
        }
        n = i + 1;
    }
    (n == segs.len()).then_some(ids)
}

/// The routes whose path matches `segs`, the most specific only: a literal segment beats
/// `{id}` (`webhooks/stripe` is not `webhooks/{id}`).
fn candidates<'a>(segs: &[&'a str]) -> Vec<(&'static Route, Vec<&'a str>)> {
    let all: Vec<(&'static Route, Vec<&'a str>)> =
        ROUTES.iter().filter_map(|r| matches(r.path, segs).map(|ids| (r, ids))).collect();
    let best = all.iter().map(|(_, ids)| ids.len()).min().unwrap_or(0);
    all.into_iter().filter(|(_, ids)| ids.len() == best).collect()
}

/// The methods a path answers (the `Allow` header of a 405).
fn allow(routes: &[(&Route, Vec<&str>)]) -> Option<String> {
    let mut methods: Vec<&str> = Vec::new();
    for (route, _) in routes {
        if !methods.contains(&route.method) {
            methods.push(route.method);
        }
    }
    if methods.is_empty() {
        return None;
    }
    methods.sort_by_key(|m| ["GET", "POST", "PATCH", "DELETE"].iter().position(|x| x == m));
    Some(methods.join(", "))
}

/// The test hook (`Config::test_hooks`): the clicks consumer's batch write on the posted clicks.
async fn test_click_batch(req: &mut Request, env: &Env) -> ApiResult<Response> {
    let state = AppState::load(env)?;
    if !state.config.test_hooks {
        return Err(ApiError::NotFound("route"));
    }
    let who = auth::authenticate(req, &state).await?;
    if who.key_id.is_some() {
        return Err(ApiError::Forbidden("the test hook needs the admin key".into()));
    }
    refport_core::from_json! {
        struct Batch {
            clicks: Vec<crate::store::clicks::NewClick>,
        }
    }

    let b = body::<Batch>(req).await?;
    let w = crate::store::clicks::insert_batch(&state.db, state.secrets.click_key().as_ref(), &b.clicks).await?;
    ok(&serde_json::json!({"inserted": w.inserted, "rows_written": w.rows_written}))
}

/// `GET /api/v1/metrics`: this isolate's counters (`crate::metrics`), for an unbound key only
/// (they span every program).
fn metrics(c: &Call) -> ApiResult<Response> {
    c.who.require(auth::Perm::Read)?;
    if c.who.program_id.is_some() {
        return Err(ApiError::Forbidden("metrics need a key not bound to a program".into()));
    }
    let counters: serde_json::Map<String, serde_json::Value> =
        crate::metrics::snapshot().into_iter().map(|(k, v)| (k.to_string(), v.into())).collect();
    ok(&serde_json::json!({ "counters": counters }))
}

pub async fn handle(req: Request, env: Env, ctx: Context, now: i64) -> Response {
    match route(req, env, ctx, now).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route(mut req: Request, env: Env, ctx: Context, now: i64) -> ApiResult<Response> {
    let path = req.path();
    if path == "/api/v1/_test/click-batch" && req.inner().method() == "POST" {
        return test_click_batch(&mut req, &env).await;
    }
    if !path.starts_with("/api/v1/") {
        return Err(ApiError::NotFound("route"));
    }
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(3).collect(); // after /api/v1/
                                                                                   // 404 and 405 are decided by path and method alone, before any authentication. workers-rs
                                                                                   // maps methods it does not know (QUERY, TRACE...) to GET: match on the raw one.
    let raw = req.inner().method();
    let found = candidates(&segs);
    let Some((route, ids)) = found.iter().find(|(r, _)| r.method == raw).map(|(r, ids)| (*r, ids.clone())) else {
        return Err(match allow(&found) {
            Some(methods) => ApiError::MethodNotAllowed(methods),
            None => ApiError::NotFound("route"),
        });
    };
    let id = ids.first().copied().unwrap_or_default();
    use Endpoint::*;
    match route.endpoint {
        Health => return ok(&serde_json::json!({"ok": true})),
        // The OpenAPI document is a static asset (kept out of the wasm); the Worker answers the
        // path so that other methods get a proper 405.
        OpenApi => return Ok(env.assets("ASSETS")?.fetch_request(req).await?),
        _ => {}
    }
    let state = AppState::load(&env)?;
    match route.auth {
        Auth::None => {
            return match route.endpoint {
                StripeWebhook => stripe_webhooks::platform(&mut req, &state, &ctx, now).await,
                StripeConnectWebhook => stripe_webhooks::connect(&mut req, &state, &ctx, now).await,
                AcceptInvite => invites::accept(&mut req, state, &ctx, now).await,
                _ => Err(ApiError::NotFound("route")),
            }
        }
        Auth::Portal => {
            let query = query_params(&req, route.query)?;
            let p = portal::authenticate(&req, state, now, query).await?;
            return match route.endpoint {
                PortalMe => portal::me(&p).await,
                PortalStats => portal::stats(&p).await,
                PortalCommissions => portal::commissions(&p).await,
                PortalPayouts => portal::payouts(&p).await,
                PortalOnboard => stripe_onboarding::onboard_partner(&mut req, &p.state, &p.partner, p.now).await,
                _ => Err(ApiError::NotFound("route")),
            };
        }
        Auth::Key => {}
    }
    let who = auth::authenticate(&req, &state).await?;
    let query = query_params(&req, route.query)?;
    let c = Call { state, now, who, query, ctx };
    match route.endpoint {
        CreateProgram => programs::create(&mut req, &c).await,
        ListPrograms => programs::list(&c).await,
        GetProgram => programs::get(&c, id).await,
        PatchProgram => programs::patch(&mut req, &c, id).await,
        ProgramStats => programs::stats(&c, id).await,
        CreatePartner => partners::create(&mut req, &c, id).await,
        ListPartners => partners::list(&c, id).await,
        GetPartner => partners::get(&c, id).await,
        PatchPartner => partners::patch(&mut req, &c, id).await,
        PartnerStats => partners::stats(&c, id).await,
        ApprovePayoutAccount => partners::approve_payout_account(&c, id).await,
        CreateLink => links::create(&mut req, &c, id).await,
        ListLinks => links::list(&c, id).await,
        GetLink => links::get(&c, id).await,
        PatchLink => links::patch(&mut req, &c, id).await,
        DeleteLink => links::delete(&c, id).await,
        CreateCoupon => coupons::create(&mut req, &c, id).await,
        ListCoupons => coupons::list(&c, id).await,
        DeleteCoupon => coupons::delete(&c, id).await,
        ListClicks => clicks::list(&c).await,
        TrackLead => track::lead(&mut req, &c).await,
        TrackSale => track::sale(&mut req, &c).await,
        TrackRefund => track::refund(&mut req, &c).await,
        ListPayouts => payouts::list(&c).await,
        ApprovePayout => payouts::approve(&c, id).await,
        CancelPayout => payouts::cancel(&c, id).await,
        OnboardPartner => stripe_onboarding::onboard(&mut req, &c, id).await,
        ListCommissions => commissions::list(&c).await,
        ApproveCommission => commissions::approve(&c, id).await,
        RejectCommission => commissions::reject(&mut req, &c, id).await,
        CreateEmbedToken => portal::create_token(&mut req, &c).await,
        CreateWebhook => webhook_endpoints::create(&mut req, &c).await,
        ListWebhooks => webhook_endpoints::list(&c).await,
        DeleteWebhook => webhook_endpoints::delete(&c, id).await,
        WebhookDeliveries => webhook_endpoints::deliveries(&c, id).await,
        ResendWebhookDelivery => webhook_endpoints::resend(&c, id).await,
        GetCommission => commissions::get(&c, id).await,
        CreateApiKey => api_keys::create(&mut req, &c).await,
        ListApiKeys => api_keys::list(&c).await,
        RevokeApiKey => api_keys::revoke(&c, id).await,
        Metrics => metrics(&c),
        StripeIntegration => stripe_webhooks::integration(&req, &c).await,
        CreateGroup => groups::create(&mut req, &c, id).await,
        ListGroups => groups::list(&c, id).await,
        GetGroup => groups::get(&c, id).await,
        PatchGroup => groups::patch(&mut req, &c, id).await,
        DeleteGroup => groups::delete(&c, id).await,
        CreateCommission => commissions::create(&mut req, &c).await,
        ExportCommissions => csv::commissions(&c).await,
        ExportPayouts => csv::payouts(&c).await,
        ExportPartners => csv::partners(&c).await,
        ImportPartners => csv::import(&mut req, &c, id).await,
        Health | OpenApi | StripeWebhook | StripeConnectWebhook | AcceptInvite | PortalMe | PortalStats
        | PortalCommissions | PortalPayouts | PortalOnboard => Err(ApiError::NotFound("route")),
    }
}
