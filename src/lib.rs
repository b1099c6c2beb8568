//! Refport's Worker shell: adapters around the pure core (`refport-core`).
//! `fetch` routes to the JSON API (`/api/v1/...`) or the branded-link redirect; `scheduled`
//! runs the cron (approvals and payouts).

pub mod http;
pub mod redirect;
pub mod state;
pub mod store;

use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let path = req.path();
    if path.starts_with("/api/") {
        return Ok(http::handle(req, env, ctx, state::now_ms()).await);
    }
    Ok(redirect::handle(req, env, ctx).await)
}

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}
