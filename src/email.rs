//! Outgoing email through a configurable HTTP email API: `POST {EMAIL_API_URL}` with JSON
//! `{to, subject, text, html}` and `Authorization: Bearer {EMAIL_API_KEY}`. Locally and in tests
//! the URL points at a sink on 127.0.0.1. Unset URL: nothing is sent (the caller says so).

use crate::state::AppState;
use serde_json::json;

pub struct Email<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub text: String,
    pub html: String,
}

/// Sends; answers whether the email API accepted it (2xx). Failures are logged, never raised:
/// the invitation exists either way and can be re-sent.
pub async fn send(state: &AppState, e: &Email<'_>) -> bool {
    let Some(url) = &state.config.email_api_url else {
        return false;
    };
    let auth = state.secrets.email_api_key.as_ref().map(|k| format!("Bearer {}", k.expose()));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let body = json!({"to": e.to, "subject": e.subject, "text": e.text, "html": e.html}).to_string();
    let result = crate::outbound::post(url, &headers, body, std::time::Duration::from_secs(10))
        .await
        .map(|r| (200..300).contains(&r.status_code()));
    match result {
        Ok(ok) => ok,
        Err(err) => {
            worker::console_error!("email to the email API failed: {err}");
            false
        }
    }
}
