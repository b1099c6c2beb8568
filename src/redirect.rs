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

use crate::bot;
use crate::click_buffer;
use crate::http::{headers, respond};
use crate::metrics::{self, Counter};
use crate::state::{self, now_ms, random, AppState};
use crate::store::clicks::NewClick;
use crate::store::link_cache::{self, CachedLink, Lookup};
use refport_core::click::{attribution_cookie, classify, country, has_ad_click_id, referrer_host, sub_ids, Visit};
use refport_core::click_id::{self, ClickFlags};
use refport_core::ids;
use refport_core::link::{redirect_location, split_url};
use worker::{Context, Env, Headers, Method, Request, Response};

const NOT_FOUND_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Link not found</title>\
<body style=\"font:16px system-ui;margin:4rem auto;max-width:32rem;color:#1f2937\">\
<h1>Link not found</h1><p>This referral link does not exist or was removed.</p>";

pub async fn handle(req: Request, env: Env, ctx: Context) -> Response {
    match serve(req, env, ctx).await {
        Ok(r) => r,
        Err(e) => failed(e),
    }
}

/// A redirect answered by the isolate alone, its link in the isolate's cache: no future, no
/// promise, no microtask (`crate::fetch` returns the response as is). `None`: the link must be
/// resolved first (KV, D1), which `handle` does.
pub fn warm(req: &Request, env: &Env, ctx: &Context) -> Option<Response> {
    let step = || -> worker::Result<Option<Response>> {
        let (url, host) = match parse(req)? {
            Ok(found) => found,
            Err(answer) => return Ok(Some(answer)),
        };
        let (path, query) = split_url(&url);
        let now = now_ms();
        let Some(cached) = link_cache::isolate_get(&host, key_of(path), now) else {
            return Ok(None);
        };
        metrics::add(Counter::redirects, 1);
        metrics::add(Counter::redirect_isolate_cache_hits, 1);
        match cached {
            Some(link) => answer(req, env, ctx, link, query, now).map(Some),
            None => Ok(Some(not_found())),
        }
    };
    match step() {
        Ok(answer) => answer,
        Err(e) => Some(failed(e)),
    }
}

fn failed(e: worker::Error) -> Response {
    worker::console_error!("redirect: {e}");
    plain(503, "Service temporarily unavailable")
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

/// The request's URL and host when it is a redirect's (GET or HEAD of a well-formed key on a
/// host); otherwise the answer (405, 404).
fn parse(req: &Request) -> worker::Result<Result<(String, String), Response>> {
    // The raw method: workers-rs reads methods it does not know (QUERY, TRACE...) as GET.
    let raw = req.inner().method();
    if raw != "GET" && raw != "HEAD" {
        return Ok(Err(plain(405, "Method not allowed")));
    }
    // One read of the URL, split by the callers (no URL parser on the hot path): the key is the
    // path after its `/`, the query what follows `?`.
    let url = req.inner().url();
    let host = req.headers().get("host")?.unwrap_or_default();
    let host = host.split(':').next().unwrap_or("").to_ascii_lowercase();
    if !is_key(key_of(split_url(&url).0)) || host.is_empty() {
        return Ok(Err(not_found()));
    }
    Ok(Ok((url, host)))
}

fn key_of(path: &str) -> &str {
    path.strip_prefix('/').unwrap_or("")
}

async fn serve(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let (url, host) = match parse(&req)? {
        Ok(found) => found,
        Err(answer) => return Ok(answer),
    };
    let (path, query) = split_url(&url);
    let key = key_of(path);
    let now = now_ms();
    metrics::add(Counter::redirects, 1);
    let link = match link_cache::isolate_get(&host, key, now) {
        Some(Some(l)) => {
            metrics::add(Counter::redirect_isolate_cache_hits, 1);
            l
        }
        Some(None) => {
            metrics::add(Counter::redirect_isolate_cache_hits, 1);
            return Ok(not_found());
        }
        None => match resolve(&AppState::load(&env)?, &ctx, &host, key, now).await? {
            Some(l) => l,
            None => return Ok(not_found()),
        },
    };
    answer(&req, &env, &ctx, link, query, now)
}

/// The 302 for a live link: the bot filter, the click id, the cookie; the click buffered for the
/// queue (`click_buffer`). Nothing here waits.
fn answer(
    req: &Request,
    env: &Env,
    ctx: &Context,
    link: CachedLink,
    query: Option<&str>,
    now: i64,
) -> worker::Result<Response> {
    let method = req.method();
    let headers = req.headers();
    // The click id's key: read once per isolate, like every secret.
    let (secrets, _) = state::settings(env);
    // The partner's sub-IDs (`sub1`..`sub3`): forwarded and stored; the click URL's other
    // parameters are neither.
    let subs = query.map(sub_ids).unwrap_or_default();
    let ua = headers.get("user-agent")?;
    let out = Headers::new();
    out.set("cache-control", "private, no-store")?;
    out.set("referrer-policy", "no-referrer-when-downgrade")?;
    let visit =
        Visit { method_is_get: method == Method::Get, user_agent: ua.as_deref(), verified_bot: bot::verified_bot(req) };
    if classify(visit, bot::on_bot_list).is_err() || !link.attributable {
        // Redirected (with its sub-IDs), not counted, no cookie.
        out.set("location", &redirect_location(&link.url, None, &subs))?;
        return Ok(Response::empty()?.with_status(302).with_headers(out));
    }

    let ip = headers.get("cf-connecting-ip")?;
    let referer = headers.get("referer")?;
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
    out.set("location", &redirect_location(&link.url, Some(&click_id), &subs))?;
    out.set("set-cookie", &attribution_cookie(&click_id, link.window_days, link.cookie_domain.as_deref()))?;

    let cf_country = req.cf().and_then(|cf| cf.country()).or(headers.get("cf-ipcountry")?);
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
    Ok(Response::empty()?.with_status(302).with_headers(out))
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
