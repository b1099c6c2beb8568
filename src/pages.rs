//! Pages that need the Worker before the static asset: the partner portal's iframe page
//! (`/embed/referrals`, built from `web/portal`; its API is `http/portal.rs`) gets a
//! Content-Security-Policy whose `frame-ancestors` are the program's allowed hosts, which only
//! the Worker knows (from the embed token). Everything else under `[assets]` is served without
//! invoking the wasm.

use crate::http::{headers, respond};
use crate::state::{now_ms, AppState};
use crate::store::programs;
use refport_core::token::verify_embed;
use refport_core::weburl::HttpUrl;
use worker::{Env, Headers, Method, Request, Response};

const ERROR_PAGE: &str = "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
<title>Link expired</title><body style=\"font:16px system-ui;margin:3rem auto;max-width:30rem;color:#1f2937;padding:0 1rem\">\
<h1 style=\"font-size:1.4rem\">This page can't be shown</h1><p id=reason>The portal link is invalid or has expired. \
Reload the page that embeds it to get a fresh one.</p></body></html>";

fn html(status: u16, body: &str) -> Response {
    let h = headers(&[
        ("content-type", "text/html; charset=utf-8"),
        ("cache-control", "no-store"),
        ("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors *"),
    ]);
    respond(status, h, body)
}

/// Where Stripe sends a partner back after onboarding when the caller gave no URL of its own:
/// a page that needs no token (an account link outlives any embed token).
const ONBOARDING_PAGE: &str = "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
<title>Payouts</title><body style=\"font:16px system-ui;margin:3rem auto;max-width:30rem;color:#1f2937;padding:0 1rem\">\
<h1 style=\"font-size:1.4rem\">Thanks!</h1><p>Your payout details were sent to Stripe. You can close this tab and return \
to the partner portal; payouts show as enabled once Stripe confirms them.</p></body></html>";

/// `/embed/*`: the portal page (`/embed/referrals`) and the Stripe onboarding return page.
pub async fn portal(req: Request, env: Env) -> Response {
    if req.path() == "/embed/onboarding" {
        return html(200, ONBOARDING_PAGE);
    }
    match serve_portal(req, env).await {
        Ok(r) => r,
        Err(e) => {
            worker::console_error!("portal page: {e}");
            html(500, ERROR_PAGE)
        }
    }
}

async fn serve_portal(req: Request, env: Env) -> worker::Result<Response> {
    let url = HttpUrl::parse(&req.inner().url()).map_err(|e| worker::Error::RustError(format!("request URL: {e}")))?;
    let token = form_urlencoded::parse(url.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let state = AppState::load(&env)?;
    let secret = state.secrets.embed_token.as_ref().map(|s| s.bytes()).unwrap_or_default();
    let Ok(claims) = verify_embed(secret, &token, now_ms()) else {
        return Ok(html(401, ERROR_PAGE));
    };
    let program = match programs::get(&state.db, &claims.program_id).await {
        Ok(Some(p)) => p,
        _ => return Ok(html(401, ERROR_PAGE)),
    };
    let assets = state.assets()?;
    // A GET Request rather than `fetch(url, None)`, whose optional worker RequestInit would
    // link that type's conversion code (~10 KB of wasm) for nothing.
    let asset_url = format!("{}://{}{}", url.scheme(), url.host(), url.path());
    let mut asset = assets.fetch_request(Request::new(&asset_url, Method::Get)?).await?;
    if asset.status_code() != 200 {
        return Ok(asset);
    }
    let body = asset.bytes().await?;
    let h = Headers::new();
    h.set("content-type", "text/html; charset=utf-8")?;
    h.set("cache-control", "no-store")?;
    h.set("referrer-policy", "no-referrer")?;
    h.set("x-content-type-options", "nosniff")?;
    h.set(
        "content-security-policy",
        &format!(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; {}",
            refport_core::program::frame_ancestors(&program.settings.allowed_hosts)
        ),
    )?;
    Ok(Response::from_bytes(body)?.with_headers(h))
}

/// The first-party click script (`web-script/refport.js`): on the merchant's landing page it
/// stores `refport_id` from the URL as a first-party cookie for the program's window.
const CLICK_SCRIPT: &str = include_str!("../web-script/refport.js");

pub fn click_script() -> Response {
    let h = headers(&[
        ("content-type", "application/javascript; charset=utf-8"),
        ("cache-control", "public, max-age=3600"),
        ("access-control-allow-origin", "*"),
        ("x-content-type-options", "nosniff"),
    ]);
    respond(200, h, CLICK_SCRIPT)
}
