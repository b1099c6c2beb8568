//! Outgoing HTTP from the Worker (Stripe, merchant webhooks, the email API): requests with a
//! timeout, so no caller ever waits on a peer that does not answer.

use futures_util::future::{select, Either};
use std::time::Duration;
use worker::{web_sys, AbortController, Delay, Fetch, Headers, Method, Request, Response};

/// POSTs `body` to `url` with `headers`; the error says what went wrong, for logs and retries.
pub async fn post(url: &str, headers: &[(&str, &str)], body: String, timeout: Duration) -> Result<Response, String> {
    send(Method::Post, url, headers, Some(body), timeout).await
}

/// Sends one request with a timeout; the error says what went wrong, for logs and retries.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
    timeout: Duration,
) -> Result<Response, String> {
    let h = Headers::new();
    for (k, v) in headers {
        h.set(k, v).map_err(|e| e.to_string())?;
    }
    // web_sys's RequestInit, set as `Request::new_with_init` would set it: worker's own
    // RequestInit converts through code for its Cloudflare `cf` options (~10 KB of wasm).
    let init = web_sys::RequestInit::new();
    if !headers.is_empty() {
        init.set_headers(&h.0);
    }
    init.set_method(method.as_ref());
    init.set_redirect(web_sys::RequestRedirect::Follow);
    if let Some(body) = body {
        init.set_body(&body.into());
    }
    let req: Request = web_sys::Request::new_with_str_and_init(url, &init)
        .map_err(|e| e.as_string().unwrap_or_else(|| "invalid URL or options for Request".to_string()))?
        .into();
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(req);
    let send = fetch.send_with_signal(&signal);
    let delay = Delay::from(timeout);
    futures_util::pin_mut!(send);
    futures_util::pin_mut!(delay);
    match select(send, delay).await {
        Either::Left((Ok(r), _)) => Ok(r),
        Either::Left((Err(e), _)) => Err(format!("request failed: {e}")),
        Either::Right(_) => {
            controller.abort();
            Err(format!("no answer within {}s", timeout.as_secs()))
        }
    }
}
