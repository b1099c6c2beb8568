//! Stripe Connect onboarding of partners: an Express account (created once) and a fresh account
//! link. Stripe's answers about the account arrive as incoming webhooks (`stripe_webhooks.rs`).

use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{ok, optional_body, partners, Call};
use crate::state::AppState;
use crate::store;
use crate::stripe::{Stripe, StripeError};
use serde_json::json;
use worker::{Request, Response};

fn stripe_error(e: StripeError) -> ApiError {
    match e {
        StripeError::NotConfigured => {
            ApiError::unprocessable("stripe_not_configured", "Stripe is not configured for this deployment")
        }
        StripeError::Permanent { message, .. } => {
            ApiError::unprocessable("stripe_error", format!("Stripe refused: {message}"))
        }
        StripeError::Transient(m) => {
            worker::console_error!("stripe: {m}");
            ApiError::conflict("stripe_unavailable", "Stripe did not answer; try again")
        }
    }
}

refport_core::from_json! {
    deny_unknown_fields
    #[derive(Default)]
    struct OnboardIn {
        return_url: Option<String>,
        refresh_url: Option<String>,
        /// ISO 3166-1 alpha-2, used when the partner has none (the portal asks for it).
        country: Option<String>,
    }
}

fn https_url(field: &'static str, s: &str) -> ApiResult<String> {
    let u = refport_core::weburl::HttpUrl::parse(s).map_err(|_| {
        ApiError::Invalid(refport_core::error::Invalid::new(
            field,
            "invalid_url",
            format!("{field} must be an absolute https URL"),
        ))
    })?;
    let local = matches!(u.host(), "127.0.0.1" | "localhost");
    if u.scheme() != "https" && !(u.scheme() == "http" && local) {
        return Err(refport_core::error::Invalid::new(
            field,
            "invalid_url",
            format!("{field} must be an absolute https URL"),
        )
        .into());
    }
    Ok(u.to_string())
}

/// `POST /api/v1/partners/{id}/stripe/onboard` -> `{url, expires_at, account_id}`.
pub async fn onboard(req: &mut Request, c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let partner = partners::load(c, id).await?;
    onboard_partner(req, &c.state, &partner, c.now).await
}

/// Creates the partner's Express account if it has none and answers an account link. Shared by
/// the management API and the partner portal.
pub async fn onboard_partner(
    req: &mut Request,
    state: &AppState,
    partner: &store::partners::Partner,
    now: i64,
) -> ApiResult<Response> {
    let input: OnboardIn = optional_body(req).await?;
    let origin = refport_core::weburl::HttpUrl::parse(&req.inner().url()).map(|u| u.origin()).unwrap_or_default();
    let return_url =
        https_url("return_url", &input.return_url.unwrap_or_else(|| format!("{origin}/embed/onboarding?status=done")))?;
    let refresh_url = https_url(
        "refresh_url",
        &input.refresh_url.unwrap_or_else(|| format!("{origin}/embed/onboarding?status=refresh")),
    )?;
    // Validated whether or not it is used (an account that exists keeps its country).
    let asked_country =
        input.country.as_deref().map(|c| refport_core::partner::parse_country("country", c)).transpose()?;
    if partner.status == refport_core::partner::PartnerStatus::Banned {
        return Err(ApiError::conflict("partner_banned", "a banned partner cannot be onboarded"));
    }
    let stripe = Stripe::from_state(state).map_err(stripe_error)?;
    let account = match &partner.stripe_account_id {
        Some(a) => a.clone(),
        None => {
            // Cross-border partners need the `recipient` service agreement with their country set
            // (https://docs.stripe.com/connect/cross-border-payouts); a partner without a country
            // is taken to be in the platform's.
            let country = match asked_country {
                Some(c) => Some(c),
                None => partner
                    .country
                    .as_deref()
                    .map(|c| refport_core::partner::parse_country("country", c))
                    .transpose()?,
            };
            let platform = stripe.platform_account().await.map_err(stripe_error)?;
            let platform_country = platform.country.unwrap_or_else(|| "US".into()).to_ascii_uppercase();
            let country = country.unwrap_or_else(|| platform_country.clone());
            let a = stripe
                .create_account(&partner.id, &partner.email, &country, &platform_country)
                .await
                .map_err(stripe_error)?;
            // First writer wins; the account idempotency key makes a racing twin get the same id.
            store::partners::set_stripe_account_once(&state.db, &partner.id, &a.id, &country, now).await?;
            let p = store::partners::get(&state.db, &partner.id).await?.ok_or(ApiError::NotFound("partner"))?;
            p.stripe_account_id.unwrap_or(a.id)
        }
    };
    // Account links are single-use and carry no money: every request gets a fresh one.
    let key = format!("link-{}-{}", partner.id, hex_token()?);
    let link = stripe.account_link(&account, &refresh_url, &return_url, &key).await.map_err(stripe_error)?;
    ok(
        &json!({"url": link.url, "expires_at": refport_core::time::rfc3339(link.expires_at * 1000), "account_id": account}),
    )
}

fn hex_token() -> Result<String, crate::state::RandomUnavailable> {
    Ok(hex::encode(crate::state::random::<16>()?))
}
