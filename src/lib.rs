//! Refport's Worker shell: adapters around the pure core (`refport-core`).
//! `fetch` answers warm redirects at once and routes the rest to the JSON API (`/api/v1/...`)
//! or the branded-link redirect; `scheduled` runs the cron (approvals and payouts).

pub mod click_buffer;
pub mod clicks_queue;
pub mod cron;
pub mod edge;
pub mod email;
pub mod email_lists;
pub mod http;
pub mod metrics;
pub mod outbound;
pub mod pages;
pub mod payout_queue;
pub mod redirect;
pub mod retention;
pub mod state;
pub mod store;
pub mod stripe;
pub mod webhook_delivery;

use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsValue};
use worker::wasm_bindgen_futures::future_to_promise;
use worker::{
    event, Context, Env, IntoResponse, MessageBatch, Request, Response, Result, ScheduleContext, ScheduledEvent,
};

/// The fetch entry (what the `fetch` event attribute would generate, by hand): a redirect whose
/// link the isolate has cached is answered synchronously, the `Response` returned as is (no
/// future, no promise, no microtask on the hottest path); every other request runs as a future,
/// as before.
#[wasm_bindgen]
pub fn fetch(req: worker::web_sys::Request, env: Env, ctx: worker::worker_sys::Context) -> JsValue {
    let ctx = Context::new(ctx);
    let target = edge::Target::read(&req);
    let path = target.path();
    if !app_path(path) {
        if let Some(answer) = redirect::warm(&req, &target, &env, &ctx) {
            return answer;
        }
        return future_to_promise(async move { Ok(redirect::handle(req, target, env, ctx).await) }).into();
    }
    let path = path.to_string();
    let req = Request::from(req);
    future_to_promise(async move { Ok(into_js(route(req, env, ctx, path).await)) }).into()
}

fn app_path(path: &str) -> bool {
    path.starts_with("/api/") || path == "/refport.js" || path.starts_with("/embed/")
}

async fn route(req: Request, env: Env, ctx: Context, path: String) -> Response {
    if path.starts_with("/api/") {
        return http::handle(req, env, ctx, state::now_ms()).await;
    }
    if path == "/refport.js" {
        return pages::click_script();
    }
    // The partner portal's iframe page (`/embed/referrals`): the URL merchants embed, kept stable.
    pages::portal(req, env).await
}

pub(crate) fn into_js(r: Response) -> JsValue {
    match r.into_raw() {
        Ok(raw) => raw.into(),
        Err(e) => {
            let e: Box<dyn std::error::Error> = e.into();
            worker::console_error!("response: {e}");
            let init = worker::web_sys::ResponseInit::new();
            init.set_status(500);
            worker::web_sys::Response::new_with_opt_str_and_init(Some("Internal Server Error"), &init)
                .map(JsValue::from)
                .unwrap_or(JsValue::NULL)
        }
    }
}

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let now = state::now_ms();
    let result = match state::AppState::load(&env) {
        Ok(s) => cron::run_once(&s, now).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(o) => worker::console_log!("cron: {}", serde_json::to_string(&o).unwrap_or_default()),
        Err(e) => worker::console_error!("cron failed: {e:?}"),
    }
}

/// Both queues land here: the payouts queue (its name contains `payout`, `refport-payouts` in
/// wrangler.toml) or the clicks queue (every other name). Each consumer acks or retries its own
/// messages; an error that reaches this point retries the whole batch.
#[event(queue)]
async fn queue(batch: MessageBatch<serde_json::Value>, env: Env, _ctx: Context) -> Result<()> {
    let now = state::now_ms();
    let state = state::AppState::load(&env)?;
    let result = if batch.queue().contains("payout") {
        payout_queue::consume(&state, &batch, now).await
    } else {
        clicks_queue::consume(&state, &batch, now).await
    };
    if let Err(e) = result {
        worker::console_error!("queue {}: {e:?}", batch.queue());
        batch.retry_all();
    }
    Ok(())
}
