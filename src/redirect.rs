//! The hot path: `GET https://{branded-domain}/{key}` -> 302 to the destination with
//! `refport_id` appended and the attribution cookie set. A warm isolate answers from memory,
//! else KV; D1 only on a KV miss (see `store::link_cache`). The click leaves after the
//! response with the isolate's other clicks of the last few milliseconds, as one `sendBatch` on
//! the clicks queue (`crate::click_buffer`), which a consumer writes to D1 in batches
//! (`crate::clicks_queue`); with an `ANALYTICS` binding it is also a data point.
//! The click id is signed (`refport_core::click_id`, v2): a lead presenting it is attributed
//! before the queue has written the row, and it is the same for the same visitor (salted IP and
//! user agent) on the same link in the same hour, so the consumer counts repeated visits once
//! (the visitor still gets the redirect and a cookie that attributes). No log line on this path.

use crate::click_buffer;
use crate::edge::{self, Method, Target, Visit};
use crate::http::{headers, respond};
use crate::into_js;
use crate::metrics::{self, Counter};
use crate::state::{self, now_ms, random, AppState};
use crate::store::clicks::NewClick;
use crate::store::link_cache::{self, CachedLink, Lookup};
use refport_core::click::{self, attribution_cookie, classify, country, has_ad_click_id, referrer_host, sub_ids};
use refport_core::click_id::{self, ClickFlags};
use refport_core::ids;
use refport_core::link::redirect_location;
use wasm_bindgen::JsValue;
use worker::{web_sys, Context, Env};

const NOT_FOUND_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Link not found</title>\
<body style=\"font:16px system-ui;margin:4rem auto;max-width:32rem;color:#1f2937\">\
<h1>Link not found</h1><p>This referral link does not exist or was removed.</p>";

/// A redirect whose link the isolate has not cached (or not a redirect at all: 405, 404).
pub async fn handle(req: web_sys::Request, target: Target, env: Env, ctx: Context) -> JsValue {
    match serve(&req, &target, env, ctx).await {
        Ok(r) => r,
        Err(e) => failed(e),
    }
}

/// A redirect answered by the isolate alone, its link in the isolate's cache: no future, no
/// promise, no microtask (`crate::fetch` returns the response as is). `None`: the link must be
/// resolved first (KV, D1), which `handle` does.
pub fn warm(req: &web_sys::Request, target: &Target, env: &Env, ctx: &Context) -> Option<JsValue> {
    let step = || -> worker::Result<Option<JsValue>> {
        let key = match parse(target) {
            Ok(key) => key,
            Err(answer) => return Ok(Some(answer)),
        };
        let now = now_ms();
        let Some(cached) = link_cache::isolate_get(&target.host, key, now) else {
            return Ok(None);
        };
        metrics::add(Counter::redirects, 1);
        metrics::add(Counter::redirect_isolate_cache_hits, 1);
        match cached {
            Some(link) => answer(req, target, env, ctx, link, now).map(Some),
            None => Ok(Some(not_found())),
        }
    };
    match step() {
        Ok(answer) => answer,
        Err(e) => Some(failed(e)),
    }
}

fn failed(e: worker::Error) -> JsValue {
    worker::console_error!("redirect: {e}");
    plain(503, "Service temporarily unavailable")
}

fn plain(status: u16, text: &str) -> JsValue {
    into_js(respond(
        status,
        headers(&[("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store")]),
        text,
    ))
}

fn not_found() -> JsValue {
    into_js(respond(
        404,
        headers(&[("content-type", "text/html; charset=utf-8"), ("cache-control", "no-store")]),
        NOT_FOUND_PAGE,
    ))
}

fn store_error(e: crate::store::StoreError) -> worker::Error {
    worker::Error::RustError(e.to_string())
}

fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= refport_core::link::MAX_KEY_LEN
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The link's key when the request is a redirect's (GET or HEAD of a well-formed key on a
/// host); otherwise the answer (405, 404). No URL parser on the hot path: the key is the path
/// after its `/`.
fn parse(target: &Target) -> Result<&str, JsValue> {
    if target.method == Method::Other {
        return Err(plain(405, "Method not allowed"));
    }
    let key = target.path().strip_prefix('/').unwrap_or("");
    if !is_key(key) || target.host.is_empty() {
        return Err(not_found());
    }
    Ok(key)
}

async fn serve(req: &web_sys::Request, target: &Target, env: Env, ctx: Context) -> worker::Result<JsValue> {
    let key = match parse(target) {
        Ok(key) => key,
        Err(answer) => return Ok(answer),
    };
    let host = target.host.as_str();
    let now = now_ms();
    metrics::add(Counter::redirects, 1);
    let link = match link_cache::isolate_get(host, key, now) {
        Some(Some(l)) => {
            metrics::add(Counter::redirect_isolate_cache_hits, 1);
            l
        }
        Some(None) => {
            metrics::add(Counter::redirect_isolate_cache_hits, 1);
            return Ok(not_found());
        }
        None => match resolve(&AppState::load(&env)?, &ctx, host, key, now).await? {
            Some(l) => l,
            None => return Ok(not_found()),
        },
    };
    answer(req, target, &env, &ctx, link, now)
}

/// The 302 for a live link: the bot filter, the click id, the cookie; the click buffered for the
/// queue (`click_buffer`). Nothing here waits.
fn answer(
    req: &web_sys::Request,
    target: &Target,
    env: &Env,
    ctx: &Context,
    link: CachedLink,
    now: i64,
) -> worker::Result<JsValue> {
    let query = target.query();
    let Visit { user_agent: ua, ip, referer, country: cf_country, verified_bot, on_bot_list } = Visit::read(req);
    // The click id's key: read once per isolate, like every secret.
    let (secrets, _) = state::settings(env);
    // The partner's sub-IDs (`sub1`..`sub3`): forwarded and stored; the click URL's other
    // parameters are neither. Only a GET counts (parse let GET and HEAD through).
    let subs = query.map(sub_ids).unwrap_or_default();
    let visit = click::Visit { method_is_get: target.method == Method::Get, user_agent: ua.as_deref(), verified_bot };
    if classify(visit, |_| on_bot_list).is_err() || !link.attributable {
        // Redirected (with its sub-IDs), not counted, no cookie.
        return Ok(edge::redirect(&redirect_location(&link.url, None, &subs), None));
    }

    let referrer = referrer_host(referer.as_deref());
    let click_id = match secrets.click_key() {
        // The same visitor on the same link within the same hour (with the same flags) gets the
        // same id: the clicks consumer folds its repeated visits into one click.
        Some(k) => {
            let visitor = click_id::visitor(&k, ip.as_deref(), ua.as_deref());
            let flags = ClickFlags {
                ad_click: query.is_some_and(has_ad_click_id),
                // Only while the program's banned_referrer rule is on (the cached list is empty
                // otherwise): the lead judges the flag by the rule's action then.
                banned_referrer: refport_core::fraud::referrer_banned(referrer.as_deref(), &link.banned_referrers),
            };
            click_id::issue_v2(&k, &link.link_id, now, &visitor, flags)
        }
        None => None,
    };
    let click_id = match click_id {
        Some(id) => id,
        // No key (no IP_HASH_SALT): an unsigned random id, looked up by its row. Fails closed:
        // no click id (and no cookie) from a failed random source.
        None => ids::new_id(ids::CLICK, now, random::<10>()?),
    };
    let location = redirect_location(&link.url, Some(&click_id), &subs);
    let cookie = attribution_cookie(&click_id, link.window_days, link.cookie_domain.as_deref());
    let [sub1, sub2, sub3] = subs;
    let click = NewClick {
        id: click_id,
        program_id: link.program_id,
        partner_id: link.partner_id,
        link_id: link.link_id,
        at: now,
        country: country(cf_country.as_deref()),
        referrer_host: referrer,
        ip_hash: None,
        ua_hash: None,
        sub1,
        sub2,
        sub3,
    };
    if let Some(dataset) = state::analytics(env) {
        // Not awaited and never blocking: a failed data point costs the merchant a dashboard
        // sample, never the click.
        let _ = analytics_point(&dataset, &click);
    }
    // Sent after the response with the isolate's other clicks (`click_buffer`).
    click_buffer::push(env, ctx, click_buffer::Pending { click, ip, ua });
    Ok(edge::redirect(&location, Some(&cookie)))
}

/// The link behind `host/key` from KV, or D1 on a KV miss (refilling KV after the response);
/// remembered by the isolate either way. `None`: no such live link.
async fn resolve(
    state: &AppState,
    ctx: &Context,
    host: &str,
    key: &str,
    now: i64,
) -> worker::Result<Option<CachedLink>> {
    metrics::add(Counter::redirect_kv_reads, 1);
    let found = match link_cache::get(&state.links, host, key).await.map_err(store_error)? {
        Lookup::Hit(l) => Some(l),
        Lookup::Unknown => None,
        Lookup::Miss => {
            metrics::add(Counter::redirect_d1_queries, 1);
            let found = link_cache::load(&state.db, host, key).await.map_err(store_error)?;
            let (h, k, v) = (host.to_string(), key.to_string(), found.clone());
            state.in_background(ctx, move |s| async move {
                if let Err(e) = link_cache::put(&s.links, &h, &k, v.as_ref()).await {
                    worker::console_error!("kv refill: {e}");
                }
            });
            found
        }
    };
    link_cache::isolate_put(host, key, found.as_ref(), now);
    Ok(found)
}

/// The click as a Workers Analytics Engine data point: blobs program, partner, link, country,
/// referrer host; one double (1, a count); indexed (sampled) by link.
fn analytics_point(dataset: &worker::AnalyticsEngineDataset, c: &NewClick) -> worker::Result<()> {
    let point = worker::AnalyticsEngineDataPointBuilder::new()
        .indexes([c.link_id.as_str()])
        .add_blob(c.program_id.as_str())
        .add_blob(c.partner_id.as_str())
        .add_blob(c.link_id.as_str())
        .add_blob(c.country.as_deref().unwrap_or(""))
        .add_blob(c.referrer_host.as_deref().unwrap_or(""))
        .add_double(1.0)
        .build();
    dataset.write_data_point(&point)
}
