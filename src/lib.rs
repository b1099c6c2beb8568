//! Refport's Worker shell: adapters around the pure core (`refport-core`).
//! `fetch` routes to the JSON API (`/api/v1/...`) or the branded-link redirect; `scheduled`
//! runs the cron (approvals and payouts).

pub mod bot;
pub mod click_buffer;
pub mod clicks_queue;
pub mod cron;
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

use worker::{event, Context, Env, MessageBatch, Request, Response, Result, ScheduleContext, ScheduledEvent};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let path = req.path();
    if path.starts_with("/api/") {
        return Ok(http::handle(req, env, ctx, state::now_ms()).await);
    }
    if path == "/refport.js" {
        return Ok(pages::click_script());
    }
    // The partner portal's iframe page (`/embed/referrals`): the URL merchants embed, kept stable.
    if path.starts_with("/embed/") {
        return Ok(pages::portal(req, env).await);
    }
    Ok(redirect::handle(req, env, ctx).await)
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
