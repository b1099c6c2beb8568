//! What a Stripe transfer attempt's answer means for a payout, decided without I/O.
//!
//! Stripe documents three facts this module encodes:
//! - A request that got no answer, or a 5xx, has an unknown outcome: the transfer may exist
//!   (https://docs.stripe.com/error-low-level#server-errors). Refport never resends blindly: it
//!   first looks the transfer up by its `transfer_group` (the payout id), and only when none
//!   exists resends, under a fresh idempotency key derived from the payout and its attempt
//!   number ([`idempotency_key`]), because Stripe replays a saved 500 for the old key and prunes
//!   keys after 24 hours (https://docs.stripe.com/api/idempotent_requests).
//! - Some refusals concern the whole platform account, not the partner: authentication (401),
//!   permissions (403), rate limits (429, and 400 with code `rate_limit`), a platform balance
//!   too low (`balance_insufficient`) (https://docs.stripe.com/error-codes,
//!   https://docs.stripe.com/rate-limits). They stop the run's payouts and fail nobody.
//! - Others concern the destination account (`insufficient_capabilities_for_transfer`,
//!   `account_invalid`, `transfers_not_allowed`, an unknown destination...): that payout fails
//!   once, the partner's payouts are disabled with the reason, and a later `account.updated`
//!   re-enables them.
//!
//! `Stripe-Should-Retry` (https://docs.stripe.com/error-low-level#idempotency) overrides the
//! status-based guess when Stripe sends it.

/// A Stripe answer that was not a success, as the shell read it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status; `None` when no answer arrived (timeout, network error).
    pub status: Option<u16>,
    /// `error.type` (`invalid_request_error`, `api_error`, `rate_limit_error`...).
    pub kind: Option<String>,
    /// `error.code` (`balance_insufficient`, `rate_limit`, `lock_timeout`...).
    pub code: Option<String>,
    /// The `Stripe-Should-Retry` header, when present.
    pub should_retry: Option<bool>,
    /// The `Retry-After` header in seconds, when present.
    pub retry_after_secs: Option<i64>,
}

/// What to do with the payout and the rest of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The transfer may exist: keep the payout in flight, reconcile it by `transfer_group`
    /// before any resend. `stop_run`: Stripe looks unavailable, send nothing more this run.
    Unknown { stop_run: bool },
    /// Refused for the whole platform, nothing was created: the money stays owed, nobody
    /// fails, and payouts pause until `resume_after_ms` from now (or a `balance.available`
    /// event, for `Balance`).
    AccountWide { cause: AccountCause, resume_after_ms: i64 },
    /// The destination cannot receive this transfer: fail the payout once, disable the
    /// partner's payouts with `reason` until Stripe reports the account fixed.
    Partner { reason: String },
    /// The same key was sent with other parameters: a Refport bug. Keep the payout in flight
    /// for an operator; never release money a transfer may have paid.
    KeyMisuse,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountCause {
    Auth,
    Balance,
    RateLimit,
}

impl AccountCause {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountCause::Auth => "stripe_auth",
            AccountCause::Balance => "balance_insufficient",
            AccountCause::RateLimit => "rate_limited",
        }
    }
}

/// Pause after a rate limit when Stripe sends no `Retry-After`: until the next cron run.
pub const RATE_LIMIT_PAUSE_MS: i64 = 60_000;
/// Pause after `balance_insufficient`, unless a `balance.available` event resumes earlier.
pub const BALANCE_PAUSE_MS: i64 = 60 * 60_000;
/// Pause after an authentication or permission error (a revoked or rolled key): an hour.
pub const AUTH_PAUSE_MS: i64 = 60 * 60_000;

/// An in-flight payout is reconciled only once its last attempt is this old: long past any
/// request's timeout, so the lookup by `transfer_group` sees a transfer that was created.
pub const RECONCILE_AFTER_MS: i64 = 5 * 60_000;

pub fn classify(r: &Refusal) -> Verdict {
    let code = r.code.as_deref().unwrap_or("");
    let kind = r.kind.as_deref().unwrap_or("");
    let Some(status) = r.status else {
        return Verdict::Unknown { stop_run: true };
    };
    if status >= 500 {
        return Verdict::Unknown { stop_run: true };
    }
    if kind == "idempotency_error" && code != "idempotency_key_in_use" {
        return Verdict::KeyMisuse;
    }
    if status == 409 {
        // The same key is still executing (`idempotency_key_in_use`), or a lock: the outcome is
        // whatever that other request does.
        return Verdict::Unknown { stop_run: false };
    }
    let pause = |cause: AccountCause, default_ms: i64| Verdict::AccountWide {
        cause,
        resume_after_ms: r.retry_after_secs.map(|s| s.clamp(1, 86_400) * 1000).unwrap_or(default_ms),
    };
    if status == 429 || code == "rate_limit" || code == "lock_timeout" || kind == "rate_limit_error" {
        return pause(AccountCause::RateLimit, RATE_LIMIT_PAUSE_MS);
    }
    if status == 401 || status == 403 || kind == "authentication_error" || kind == "permission_error" {
        return pause(AccountCause::Auth, AUTH_PAUSE_MS);
    }
    if code == "balance_insufficient" {
        return pause(AccountCause::Balance, BALANCE_PAUSE_MS);
    }
    if r.should_retry == Some(true) {
        // Stripe says the same request may succeed later: not this partner's fault.
        return pause(AccountCause::RateLimit, RATE_LIMIT_PAUSE_MS);
    }
    let reason = if code.is_empty() { format!("stripe_{status}") } else { code.to_string() };
    Verdict::Partner { reason }
}

/// The `Idempotency-Key` of a payout's `attempt`-th transfer request (1-based). The first is the
/// payout id itself (what earlier versions sent, so a payout in flight across an upgrade keeps
/// its key); each resend after a reconciliation found no transfer gets a fresh one.
pub fn idempotency_key(payout_id: &str, attempt: i64) -> String {
    if attempt <= 1 {
        payout_id.to_string()
    } else {
        format!("{payout_id}-a{attempt}")
    }
}

/// A transfer found by `transfer_group` settles the payout only if it is the payout's: same
/// destination, amount and currency.
pub fn transfer_matches(
    payout: (&str, i64, &str),
    transfer_destination: Option<&str>,
    transfer_amount: i64,
    transfer_currency: &str,
) -> bool {
    let (dest, amount, currency) = payout;
    transfer_destination == Some(dest) && transfer_amount == amount && transfer_currency.eq_ignore_ascii_case(currency)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(status: Option<u16>, kind: &str, code: &str) -> Refusal {
        Refusal {
            status,
            kind: Some(kind.into()).filter(|k: &String| !k.is_empty()),
            code: Some(code.into()).filter(|c: &String| !c.is_empty()),
            ..Refusal::default()
        }
    }

    #[test]
    fn unknown_outcomes() {
        assert_eq!(classify(&refusal(None, "", "")), Verdict::Unknown { stop_run: true });
        assert_eq!(classify(&refusal(Some(500), "api_error", "")), Verdict::Unknown { stop_run: true });
        assert_eq!(classify(&refusal(Some(503), "", "")), Verdict::Unknown { stop_run: true });
        assert_eq!(
            classify(&refusal(Some(409), "idempotency_error", "idempotency_key_in_use")),
            Verdict::Unknown { stop_run: false }
        );
    }

    #[test]
    fn account_wide_refusals_fail_nobody() {
        for (status, kind, code, cause) in [
            (401, "invalid_request_error", "", AccountCause::Auth),
            (401, "authentication_error", "", AccountCause::Auth),
            (403, "permission_error", "", AccountCause::Auth),
            (429, "rate_limit_error", "lock_timeout", AccountCause::RateLimit),
            (429, "rate_limit_error", "", AccountCause::RateLimit),
            (400, "invalid_request_error", "rate_limit", AccountCause::RateLimit),
            (400, "invalid_request_error", "balance_insufficient", AccountCause::Balance),
        ] {
            match classify(&refusal(Some(status), kind, code)) {
                Verdict::AccountWide { cause: c, resume_after_ms } => {
                    assert_eq!(c, cause, "{status} {code}");
                    assert!(resume_after_ms > 0);
                }
                other => panic!("{status} {code}: {other:?}"),
            }
        }
    }

    #[test]
    fn retry_after_sets_the_pause() {
        let mut r = refusal(Some(429), "rate_limit_error", "");
        r.retry_after_secs = Some(30);
        assert_eq!(classify(&r), Verdict::AccountWide { cause: AccountCause::RateLimit, resume_after_ms: 30_000 });
    }

    #[test]
    fn partner_refusals() {
        for code in
            ["insufficient_capabilities_for_transfer", "account_invalid", "transfers_not_allowed", "amount_too_large"]
        {
            assert_eq!(
                classify(&refusal(Some(400), "invalid_request_error", code)),
                Verdict::Partner { reason: code.into() }
            );
        }
        assert_eq!(
            classify(&refusal(Some(404), "invalid_request_error", "")),
            Verdict::Partner { reason: "stripe_404".into() }
        );
    }

    #[test]
    fn should_retry_header_wins_over_status() {
        let mut r = refusal(Some(400), "invalid_request_error", "account_invalid");
        r.should_retry = Some(true);
        assert!(matches!(classify(&r), Verdict::AccountWide { .. }));
    }

    #[test]
    fn key_misuse_is_kept_in_flight() {
        assert_eq!(classify(&refusal(Some(400), "idempotency_error", "")), Verdict::KeyMisuse);
    }

    #[test]
    fn keys_are_fresh_per_attempt_and_stable_for_the_first() {
        assert_eq!(idempotency_key("po_1", 1), "po_1");
        assert_eq!(idempotency_key("po_1", 0), "po_1");
        assert_eq!(idempotency_key("po_1", 2), "po_1-a2");
        assert_ne!(idempotency_key("po_1", 2), idempotency_key("po_1", 3));
    }

    #[test]
    fn matching_transfer() {
        assert!(transfer_matches(("acct_1", 500, "usd"), Some("acct_1"), 500, "USD"));
        assert!(!transfer_matches(("acct_1", 500, "usd"), Some("acct_2"), 500, "usd"));
        assert!(!transfer_matches(("acct_1", 500, "usd"), Some("acct_1"), 501, "usd"));
        assert!(!transfer_matches(("acct_1", 500, "usd"), Some("acct_1"), 500, "eur"));
        assert!(!transfer_matches(("acct_1", 500, "usd"), None, 500, "usd"));
    }
}
