//! The small Stripe client Refport needs (accounts, account links, transfers), over the Worker's
//! fetch: form encoding with bracketed keys, Bearer secret key, `Idempotency-Key`, a timeout,
//! and Stripe's error JSON turned into a typed error that says whether a retry may succeed.

use refport_core::transfer::Refusal;
use refport_core::wire::FromJson;
use std::time::Duration;
use worker::Method;

/// The Stripe API version every request pins (`Stripe-Version`), so an account's default version
/// never changes the shapes Refport reads. The one place it is set.
pub const STRIPE_VERSION: &str = "2025-08-27.basil";

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

refport_core::from_json! {
    struct ErrorBody {
        error: ErrorDetail,
    }
}

refport_core::from_json! {
    struct ErrorDetail {
        kind as "type": Option<String>,
        code: Option<String>,
        message: Option<String>,
    }
}

refport_core::from_json! {
    #[derive(Debug)]
    pub struct Account {
        pub id: String,
        pub payouts_enabled: bool = default,
        pub country: Option<String>,
        pub capabilities: Option<Capabilities>,
        /// The bank accounts (and cards) Stripe pays the account out to; returned to the platform
        /// that controls the account.
        pub external_accounts: Option<List<ExternalAccount>>,
    }
}

refport_core::from_json! {
    /// A bank account or debit card of a connected account; `fingerprint` is the same for the same
    /// account number across every connected account of the platform.
    #[derive(Debug, Default)]
    pub struct ExternalAccount {
        pub fingerprint: Option<String>,
        pub default_for_currency: Option<bool>,
    }
}

refport_core::from_json! {
    #[derive(Debug, Default)]
    pub struct Capabilities {
        pub transfers: Option<String>,
    }
}

impl Account {
    /// The account can receive transfers now: payouts enabled and `transfers` active.
    pub fn can_receive(&self) -> bool {
        let transfers = self.capabilities.as_ref().and_then(|c| c.transfers.as_deref());
        self.payouts_enabled && transfers.is_none_or(|t| t == "active")
    }

    /// The fingerprint of the external account payouts go to: the default one, else the first.
    pub fn payout_fingerprint(&self) -> Option<String> {
        let list = &self.external_accounts.as_ref()?.data;
        let default = list.iter().find(|e| e.default_for_currency == Some(true) && e.fingerprint.is_some());
        default.or_else(|| list.iter().find(|e| e.fingerprint.is_some()))?.fingerprint.clone()
    }
}

#[derive(Debug)]
pub struct List<T> {
    pub data: Vec<T>,
}

impl<T: FromJson> FromJson for List<T> {
    fn from_json(v: refport_core::wire::Value) -> Result<Self, refport_core::wire::Error> {
        let mut m = refport_core::wire::object(v, "struct List")?;
        let data = m.remove("data").map(Vec::from_json).unwrap_or_else(|| refport_core::wire::absent("data"))?;
        Ok(List { data })
    }
}

refport_core::from_json! {
    #[derive(Debug)]
    pub struct AccountLink {
        pub url: String,
        pub expires_at: i64,
    }
}

refport_core::from_json! {
    #[derive(Debug)]
    pub struct Transfer {
        pub id: String,
        pub amount: i64,
        pub currency: String,
        pub destination: Option<String>,
        pub amount_reversed: i64 = default,
    }
}

/// A failed Stripe call with everything the payout path classifies it by.
#[derive(Debug)]
pub struct Refused {
    pub refusal: Refusal,
    pub message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.refusal.status {
            Some(s) => write!(f, "stripe {s} {}: {}", self.refusal.code.as_deref().unwrap_or("error"), self.message),
            None => write!(f, "stripe unavailable: {}", self.message),
        }
    }
}

impl From<Refused> for StripeError {
    fn from(r: Refused) -> Self {
        match r.refusal.status {
            Some(status) if status < 500 && status != 429 && status != 409 => StripeError::Permanent {
                status,
                kind: r.refusal.kind.unwrap_or_default(),
                code: r.refusal.code,
                message: r.message,
            },
            _ => StripeError::Transient(r.message),
        }
    }
}

/// A request that got no usable answer (network failure, timeout, unreadable body).
fn no_answer(message: String) -> Refused {
    Refused { refusal: Refusal::default(), message }
}

pub struct Stripe {
    base: String,
    key: String,
    timeout: Duration,
}

/// `application/x-www-form-urlencoded` of (bracketed key, value) pairs.
pub fn form(params: &[(&str, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

impl Stripe {
    pub fn new(base: &str, key: &str) -> Stripe {
        Stripe { base: base.trim_end_matches('/').to_string(), key: key.to_string(), timeout: TIMEOUT }
    }

    pub fn from_state(state: &crate::state::AppState) -> Result<Stripe, StripeError> {
        let key = state.secrets.stripe_key.as_ref().ok_or(StripeError::NotConfigured)?;
        let mut s = Stripe::new(&state.config.stripe_api_base, key.expose());
        s.timeout = Duration::from_millis(state.config.stripe_timeout_ms as u64);
        Ok(s)
    }

    /// One Stripe request: form body for POST, `Stripe-Version` pinned, a timeout; an error
    /// answer keeps its status, type, code and the retry headers.
    async fn call<T: FromJson>(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        idempotency_key: Option<&str>,
    ) -> Result<T, Refused> {
        let text = self.call_text(method, path, params, idempotency_key).await?;
        refport_core::wire::from_text(text.as_bytes()).map_err(|e| no_answer(format!("unparseable answer: {e}")))
    }

    /// `call` up to the text of a 2xx answer: not generic, so the request code exists once
    /// rather than once per answer type.
    async fn call_text(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        idempotency_key: Option<&str>,
    ) -> Result<String, Refused> {
        let auth = format!("Bearer {}", self.key);
        let mut headers = vec![("authorization", auth.as_str()), ("stripe-version", STRIPE_VERSION)];
        let (url, body) = if method == Method::Post {
            headers.push(("content-type", "application/x-www-form-urlencoded"));
            (format!("{}{}", self.base, path), Some(form(params)))
        } else if params.is_empty() {
            (format!("{}{}", self.base, path), None)
        } else {
            (format!("{}{}?{}", self.base, path, form(params)), None)
        };
        if let Some(k) = idempotency_key {
            headers.push(("idempotency-key", k));
        }
        let mut resp = crate::outbound::send(method, &url, &headers, body, self.timeout).await.map_err(no_answer)?;
        let status = resp.status_code();
        let header = |name: &str| resp.headers().get(name).ok().flatten();
        let should_retry = header("stripe-should-retry").map(|v| v.eq_ignore_ascii_case("true"));
        let retry_after_secs = header("retry-after").and_then(|v| v.trim().parse::<i64>().ok());
        let text = resp.text().await.map_err(|e| no_answer(e.to_string()))?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let detail = refport_core::wire::from_text::<ErrorBody>(text.as_bytes()).ok().map(|b| b.error);
        let message = detail.as_ref().and_then(|d| d.message.clone()).unwrap_or_else(|| format!("HTTP {status}"));
        Err(Refused {
            refusal: Refusal {
                status: Some(status),
                kind: detail.as_ref().and_then(|d| d.kind.clone()),
                code: detail.and_then(|d| d.code),
                should_retry,
                retry_after_secs,
            },
            message,
        })
    }

    async fn post<T: FromJson>(
        &self,
        path: &str,
        params: &[(&str, String)],
        idempotency_key: &str,
    ) -> Result<T, StripeError> {
        Ok(self.call(Method::Post, path, params, Some(idempotency_key)).await?)
    }

    /// The platform's own account (`GET /v1/account`): its country decides cross-border onboarding.
    pub async fn platform_account(&self) -> Result<Account, StripeError> {
        Ok(self.call(Method::Get, "/v1/account", &[], None).await?)
    }

    /// A connected account's current state (`GET /v1/accounts/{id}`): the truth an
    /// `account.updated` event only hints at (events arrive late and out of order).
    pub async fn account(&self, id: &str) -> Result<Account, Refused> {
        self.call(Method::Get, &format!("/v1/accounts/{id}"), &[], None).await
    }

    /// An Express account able to receive transfers. The idempotency key makes two concurrent
    /// onboardings of one partner create one account.
    ///
    /// A partner in another country than the platform gets the `recipient` service agreement with
    /// its country set (cross-border transfers need it:
    /// https://docs.stripe.com/connect/service-agreement-types); a same-country partner gets the
    /// `full` agreement, for which Stripe requires `card_payments` with `transfers`.
    pub async fn create_account(
        &self,
        partner_id: &str,
        email: &str,
        country: &str,
        platform_country: &str,
    ) -> Result<Account, StripeError> {
        let mut params: Vec<(&str, String)> = vec![
            ("type", "express".into()),
            ("email", email.into()),
            ("country", country.to_ascii_uppercase()),
            ("capabilities[transfers][requested]", "true".into()),
            ("metadata[partner_id]", partner_id.into()),
        ];
        if country.eq_ignore_ascii_case(platform_country) {
            params.push(("capabilities[card_payments][requested]", "true".into()));
        } else {
            params.push(("tos_acceptance[service_agreement]", "recipient".into()));
        }
        self.post("/v1/accounts", &params, &format!("acct-{partner_id}-{}", country.to_ascii_lowercase())).await
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

    /// A transfer to a connected account, `transfer_group` = the payout id (what reconciliation
    /// looks it up by) and `Idempotency-Key` derived from the payout and its attempt number.
    #[allow(clippy::too_many_arguments)]
    pub async fn transfer(
        &self,
        payout_id: &str,
        attempt: i64,
        amount: i64,
        currency: &str,
        destination: &str,
        program_id: &str,
        partner_id: &str,
    ) -> Result<Transfer, Refused> {
        let key = refport_core::transfer::idempotency_key(payout_id, attempt);
        self.call(
            Method::Post,
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
            Some(&key),
        )
        .await
    }

    /// The transfers of a payout (`GET /v1/transfers?transfer_group=`), newest first.
    pub async fn transfers_of(&self, payout_id: &str) -> Result<Vec<Transfer>, Refused> {
        let list: List<Transfer> = self
            .call(Method::Get, "/v1/transfers", &[("transfer_group", payout_id.into()), ("limit", "10".into())], None)
            .await?;
        Ok(list.data)
    }

    // ---- the merchant's payments (zero-code tracking, `src/http/stripe_tracking.rs`): read as
    // JSON values, parsed by `refport_core::stripe_tracking`.

    async fn get_value(&self, path: &str, params: &[(&str, String)]) -> Result<serde_json::Value, Refused> {
        self.call(Method::Get, path, params, None).await
    }

    /// A promotion code (`GET /v1/promotion_codes/{id}`): its customer-facing `code`.
    pub async fn promotion_code(&self, id: &str) -> Result<serde_json::Value, Refused> {
        self.get_value(&format!("/v1/promotion_codes/{id}"), &[]).await
    }

    /// An invoice as Stripe has it now (`GET /v1/invoices/{id}`).
    pub async fn invoice(&self, id: &str) -> Result<serde_json::Value, Refused> {
        self.get_value(&format!("/v1/invoices/{id}"), &[]).await
    }

    /// The balance transaction of a payment intent's charge (`GET /v1/payment_intents/{id}`
    /// with `latest_charge.balance_transaction` expanded): what settled in the merchant's balance.
    pub async fn settlement_of(&self, payment_intent: &str) -> Result<serde_json::Value, Refused> {
        let pi = self
            .get_value(
                &format!("/v1/payment_intents/{payment_intent}"),
                &[("expand[]", "latest_charge.balance_transaction".into())],
            )
            .await?;
        Ok(pi["latest_charge"]["balance_transaction"].clone())
    }

    /// The invoice payments matching `filter` (`GET /v1/invoice_payments`), since API
    /// 2025-03-31 the only link between an invoice and its payment intents.
    pub async fn invoice_payments(&self, filter: &[(&str, String)]) -> Result<Vec<serde_json::Value>, Refused> {
        let mut params = filter.to_vec();
        params.push(("limit", "10".into()));
        let list: List<serde_json::Value> = self.call(Method::Get, "/v1/invoice_payments", &params, None).await?;
        Ok(list.data)
    }

    /// The refunds of a charge or payment intent (`GET /v1/refunds?charge=` or
    /// `?payment_intent=`): a `charge.refunded` event's charge does not carry them since API
    /// 2022-11-15. At most 100, newest first.
    pub async fn refunds_of(&self, filter: (&str, &str)) -> Result<Vec<serde_json::Value>, Refused> {
        let params = [(filter.0, filter.1.to_string()), ("limit", "100".to_string())];
        let list: List<serde_json::Value> = self.call(Method::Get, "/v1/refunds", &params, None).await?;
        Ok(list.data)
    }
}
