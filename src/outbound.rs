//! Outgoing HTTP from the Worker (Stripe, merchant webhooks, the email API): requests with a
//! timeout, so no caller ever waits on a peer that does not answer.

use futures_util::future::{select, Either};
use std::time::Duration;
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, Response};

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
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(h).with_body(body.map(Into::into));
    let req = Request::new_with_init(url, &init).map_err(|e| e.to_string())?;
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
