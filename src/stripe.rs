//! The small Stripe client Refport needs (accounts, account links, transfers), over the Worker's
//! fetch: form encoding with bracketed keys, Bearer secret key, `Idempotency-Key`, a timeout,
//! and Stripe's error JSON turned into a typed error that says whether a retry may succeed.

use serde::Deserialize;
use std::time::Duration;

/// Per-request timeout. A timed-out transfer may still have executed: the caller keeps the payout
/// `processing` and retries with the same idempotency key.
const TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub enum StripeError {
    /// Stripe refused the request for good (4xx other than 409/429): not retried.
    Permanent { status: u16, kind: String, code: Option<String>, message: String },
    /// 5xx, 429, 409 (same key in flight), timeout or network failure: retry with the same key.
    Transient(String),
    /// Refport is not configured for Stripe.
    NotConfigured,
}

impl std::fmt::Display for StripeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StripeError::Permanent { status, code, message, .. } => {
                write!(f, "stripe {status} {}: {message}", code.as_deref().unwrap_or("error"))
            }
            StripeError::Transient(m) => write!(f, "stripe unavailable: {m}"),
            StripeError::NotConfigured => f.write_str("STRIPE_SECRET_KEY is not set"),
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Account {
    pub id: String,
    #[serde(default)]
    pub payouts_enabled: bool,
}

#[derive(Debug, Deserialize)]
pub struct AccountLink {
    pub url: String,
    pub expires_at: i64,
}

#[derive(Debug, Deserialize)]
pub struct Transfer {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub destination: Option<String>,
}

pub struct Stripe {
    base: String,
    key: String,
}

/// `application/x-www-form-urlencoded` of (bracketed key, value) pairs.
pub fn form(params: &[(&str, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

impl Stripe {
    pub fn new(base: &str, key: &str) -> Stripe {
        Stripe { base: base.trim_end_matches('/').to_string(), key: key.to_string() }
    }

    pub fn from_state(state: &crate::state::AppState) -> Result<Stripe, StripeError> {
        let key = state.secrets.stripe_key.as_ref().ok_or(StripeError::NotConfigured)?;
        Ok(Stripe::new(&state.config.stripe_api_base, key.expose()))
    }

    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        params: &[(&str, String)],
        idempotency_key: &str,
    ) -> Result<T, StripeError> {
        let auth = format!("Bearer {}", self.key);
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
            ("idempotency-key", idempotency_key),
        ];
        let url = format!("{}{}", self.base, path);
        let mut resp =
            crate::outbound::post(&url, &headers, form(params), TIMEOUT).await.map_err(StripeError::Transient)?;
        let status = resp.status_code();
        let text = resp.text().await.map_err(|e| StripeError::Transient(e.to_string()))?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&text).map_err(|e| StripeError::Transient(format!("unparseable answer: {e}")));
        }
        let detail = serde_json::from_str::<ErrorBody>(&text).ok().map(|b| b.error);
        let message = detail.as_ref().and_then(|d| d.message.clone()).unwrap_or_else(|| format!("HTTP {status}"));
        if status >= 500 || status == 429 || status == 409 {
            return Err(StripeError::Transient(message));
        }
        Err(StripeError::Permanent {
            status,
            kind: detail.as_ref().and_then(|d| d.kind.clone()).unwrap_or_default(),
            code: detail.and_then(|d| d.code),
            message,
        })
    }

    /// An Express account able to receive transfers. The idempotency key makes two concurrent
    /// onboardings of one partner create one account.
    pub async fn create_account(&self, partner_id: &str, email: &str) -> Result<Account, StripeError> {
        self.post(
            "/v1/accounts",
            &[
                ("type", "express".into()),
                ("email", email.into()),
                ("capabilities[transfers][requested]", "true".into()),
                ("metadata[partner_id]", partner_id.into()),
            ],
            &format!("acct-{partner_id}"),
        )
        .await
    }

    pub async fn account_link(
        &self,
        account: &str,
        refresh_url: &str,
        return_url: &str,
        key: &str,
    ) -> Result<AccountLink, StripeError> {
        self.post(
            "/v1/account_links",
            &[
                ("account", account.into()),
                ("refresh_url", refresh_url.into()),
                ("return_url", return_url.into()),
                ("type", "account_onboarding".into()),
            ],
            key,
        )
        .await
    }

    /// A transfer to a connected account; `Idempotency-Key` = the payout id, so every retry of
    /// one payout is the same transfer.
    pub async fn transfer(
        &self,
        payout_id: &str,
        amount: i64,
        currency: &str,
        destination: &str,
        program_id: &str,
        partner_id: &str,
    ) -> Result<Transfer, StripeError> {
        self.post(
            "/v1/transfers",
            &[
                ("amount", amount.to_string()),
                ("currency", currency.into()),
                ("destination", destination.into()),
                ("transfer_group", payout_id.into()),
                ("description", format!("Refport payout {payout_id}")),
                ("metadata[payout_id]", payout_id.into()),
                ("metadata[program_id]", program_id.into()),
                ("metadata[partner_id]", partner_id.into()),
            ],
            payout_id,
        )
        .await
    }
}
