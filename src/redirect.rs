//! The hot path: `GET https://{branded-domain}/{key}` -> 302 to the destination with
//! `refport_id` appended and the attribution cookie set. KV answers; D1 only on a cache miss.
//! The click is written after the response, through `ctx.wait_until`.

use crate::http::{headers, respond};
use crate::state::{now_ms, random, AppState};
use crate::store::clicks::{self, NewClick};
use crate::store::link_cache::{self, CachedLink, Lookup};
use refport_core::click::{attribution_cookie, country, is_bot, referrer_host};
use refport_core::crypto::hmac_sha256_hex;
use refport_core::ids;
use refport_core::link::redirect_location;
use worker::{Context, Env, Headers, Method, Request, Response};

const NOT_FOUND_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Link not found</title>\
<body style=\"font:16px system-ui;margin:4rem auto;max-width:32rem;color:#1f2937\">\
<h1>Link not found</h1><p>This referral link does not exist or was removed.</p>";

pub async fn handle(req: Request, env: Env, ctx: Context) -> Response {
    match serve(req, env, ctx).await {
        Ok(r) => r,
        Err(e) => {
            worker::console_error!("redirect: {e}");
            plain(503, "Service temporarily unavailable")
        }
    }
}

fn plain(status: u16, text: &str) -> Response {
    respond(status, headers(&[("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store")]), text)
}

fn not_found() -> Response {
    respond(
        404,
        headers(&[("content-type", "text/html; charset=utf-8"), ("cache-control", "no-store")]),
        NOT_FOUND_PAGE,
    )
}

fn store_error(e: crate::store::StoreError) -> worker::Error {
    worker::Error::RustError(e.to_string())
}

fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= refport_core::link::MAX_KEY_LEN
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn serve(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    // The raw method: workers-rs reads methods it does not know (QUERY, TRACE...) as GET.
    let raw = req.inner().method();
    if raw != "GET" && raw != "HEAD" {
        return Ok(plain(405, "Method not allowed"));
    }
    let method = req.method();
    let path = req.path();
    let key = &path[1..];
    let headers = req.headers();
    let host = headers.get("host")?.unwrap_or_default();
    let host = host.split(':').next().unwrap_or("").to_ascii_lowercase();
    if !is_key(key) || host.is_empty() {
        return Ok(not_found());
    }
    let state = AppState::load(&env)?;
    let link: CachedLink = match link_cache::get(&state.links, &host, key).await.map_err(store_error)? {
        Lookup::Hit(l) => l,
        Lookup::Unknown => return Ok(not_found()),
        Lookup::Miss => {
            let found = link_cache::load(&state.db, &host, key).await.map_err(store_error)?;
            let (h, k, v) = (host.clone(), key.to_string(), found.clone());
            state.in_background(&ctx, move |s| async move {
                if let Err(e) = link_cache::put(&s.links, &h, &k, v.as_ref()).await {
                    worker::console_error!("kv refill: {e}");
                }
            });
            match found {
                Some(l) => l,
                None => return Ok(not_found()),
            }
        }
    };

    let ua = headers.get("user-agent")?;
    let out = Headers::new();
    out.set("cache-control", "private, no-store")?;
    out.set("referrer-policy", "no-referrer-when-downgrade")?;
    if is_bot(method == Method::Get, ua.as_deref()) || !link.attributable {
        // Redirected, not counted, no cookie.
        out.set("location", &link.url)?;
        return Ok(Response::empty()?.with_status(302).with_headers(out));
    }

    let now = now_ms();
    // Fails closed: no click id (and no cookie) from a failed random source.
    let click_id = ids::new_id(ids::CLICK, now, random::<10>()?);
    out.set("location", &redirect_location(&link.url, &click_id))?;
    out.set("set-cookie", &attribution_cookie(&click_id, link.window_days, link.cookie_domain.as_deref()))?;

    let ip = headers.get("cf-connecting-ip")?;
    let cf_country = req.cf().and_then(|cf| cf.country()).or(headers.get("cf-ipcountry")?);
    let referer = headers.get("referer")?;
    let salt = state.secrets.ip_hash_salt.clone();
    state.in_background(&ctx, move |s| async move {
        let salt = salt.as_ref().map(|k| k.bytes()).unwrap_or_default();
        let click = NewClick {
            id: &click_id,
            program_id: &link.program_id,
            partner_id: &link.partner_id,
            link_id: &link.link_id,
            at: now,
            country: country(cf_country.as_deref()),
            referrer_host: referrer_host(referer.as_deref()),
            ip_hash: ip.map(|ip| hmac_sha256_hex(salt, ip.as_bytes())),
            ua_hash: ua.map(|ua| hmac_sha256_hex(salt, ua.as_bytes())),
        };
        if let Err(e) = clicks::insert(&s.db, &click).await {
            worker::console_error!("click {} not recorded: {e}", click.id);
        }
    });
    Ok(Response::empty()?.with_status(302).with_headers(out))
}
