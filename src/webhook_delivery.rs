//! Outgoing webhooks: delivering the outbox to merchant endpoints, signed like Stripe's
//! (`Refport-Signature: t=...,v1=hex HMAC-SHA256 of "t.body"`), at least once, retried with
//! backoff by the cron, each attempt recorded in the endpoint's delivery log
//! (`store::webhook_deliveries`). The endpoints API is `http/webhook_endpoints.rs`.

use crate::http::error::ApiResult;
use crate::state::{now_ms, AppState};
use crate::store::webhook_deliveries;
use base64ct::Encoding as _;
use refport_core::crypto::hmac_sha256_hex;
use refport_core::time::rfc3339;
use refport_core::token::sign_payload;
use std::time::Duration;
use worker::Context;

/// Backoff after the n-th failed attempt (1m, 5m, 30m, 2h, 6h, 12h, 24h); then `failed`.
const BACKOFF_MS: [i64; 7] = [60_000, 300_000, 1_800_000, 7_200_000, 21_600_000, 43_200_000, 86_400_000];
pub const MAX_ATTEMPTS: i64 = BACKOFF_MS.len() as i64 + 1;
/// Deliveries per invocation (one fetch + one D1 write each, plus the lease).
pub const PER_RUN: u32 = 10;
/// How long an attempt holds its delivery (so the cron and a request don't send it twice).
const LEASE_MS: i64 = 60_000;
const TIMEOUT: Duration = Duration::from_secs(10);

/// The endpoint's signing secret, derived (never stored): `whsec_` + base64url(HMAC(key, id)).
pub fn endpoint_secret(state: &AppState, endpoint_id: &str) -> Option<String> {
    let key = state.secrets.webhook_signing.as_ref()?;
    let mac = hex::decode(hmac_sha256_hex(key.bytes(), endpoint_id.as_bytes())).ok()?;
    Some(format!("whsec_{}", base64ct::Base64UrlUnpadded::encode_string(&mac)))
}

/// Delivers up to `limit` due deliveries; answers how many were delivered.
pub async fn deliver_due(state: &AppState, now: i64, limit: u32) -> ApiResult<usize> {
    Ok(deliver_due_counted(state, now, limit).await?.0)
}

/// Like [`deliver_due`], also answering the subrequests it made (the due query, then a lease,
/// a POST and a record per delivery): at most `1 + 3 * limit`.
pub async fn deliver_due_counted(state: &AppState, now: i64, limit: u32) -> ApiResult<(usize, usize)> {
    deliver(state, webhook_deliveries::due(&state.db, now, limit, None).await?, now).await
}

/// `POST /api/v1/webhook-deliveries/{id}/resend`: makes the delivery due again (whatever its
/// status: one more attempt, same event id and body, signed anew) and attempts it now.
pub async fn resend(state: &AppState, id: &str, now: i64) -> ApiResult<()> {
    webhook_deliveries::requeue(&state.db, id, now).await?;
    deliver(state, webhook_deliveries::due(&state.db, now, 1, Some(id)).await?, now).await?;
    Ok(())
}

async fn deliver(state: &AppState, due: Vec<webhook_deliveries::Due>, now: i64) -> ApiResult<(usize, usize)> {
    let db = &state.db;
    let mut subrequests = 1;
    let mut delivered = 0;
    for d in due {
        // Lease it: whoever moves next_attempt_at first sends it.
        subrequests += 1;
        if !webhook_deliveries::lease(db, &d.id, now + LEASE_MS, now).await? {
            continue;
        }
        subrequests += 2;
        let body = format!(
            "{{\"id\":{},\"type\":{},\"created_at\":{},\"data\":{}}}",
            serde_json::to_string(&d.event_id)?,
            serde_json::to_string(&d.event_type)?,
            serde_json::to_string(&rfc3339(d.created_at))?,
            d.payload
        );
        let result = match endpoint_secret(state, &d.endpoint_id) {
            Some(secret) => post(&d.url, &body, &sign_payload(&secret, now / 1000, body.as_bytes()), &d.event_id).await,
            None => Err("WEBHOOK_SIGNING_KEY is not set".to_string()),
        };
        let attempts = d.attempts + 1;
        match result {
            Ok(status) if (200..300).contains(&status) => {
                delivered += 1;
                webhook_deliveries::delivered(db, &d.id, attempts, status, now).await?;
            }
            other => {
                let (status, error) = match other {
                    Ok(s) => (Some(s), format!("endpoint answered {s}")),
                    Err(e) => (None, e),
                };
                let next = BACKOFF_MS.get((attempts - 1) as usize).map(|b| now + b);
                webhook_deliveries::attempt_failed(db, &d.id, attempts, status, &error, next).await?;
            }
        }
    }
    Ok((delivered, subrequests))
}

async fn post(url: &str, body: &str, signature: &str, event_id: &str) -> Result<u16, String> {
    let headers = [
        ("content-type", "application/json"),
        ("user-agent", "Refport-Webhooks/1"),
        ("refport-signature", signature),
        ("refport-event-id", event_id),
    ];
    crate::outbound::post(url, &headers, body.to_string(), TIMEOUT).await.map(|r| r.status_code())
}

/// After a change that emitted events: try delivering right away, after the response.
pub fn deliver_soon(ctx: &Context, state: &AppState) {
    state.in_background(ctx, |s| async move {
        if let Err(e) = deliver_due(&s, now_ms(), 5).await {
            worker::console_error!("webhook delivery: {e:?}");
        }
    });
}
