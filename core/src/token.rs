//! Signed tokens: embed tokens for the partner dashboard widget, and webhook signatures (Stripe's
//! incoming `Stripe-Signature`, Refport's outgoing `Refport-Signature`, same format).
//!
//! # Embed tokens
//!
//! `POST /api/v1/embed-tokens` returns `{token, expires_at}`. A token is
//!
//! ```text
//! v1.<base64url(payload)>.<base64url(HMAC-SHA256(secret, "v1." + base64url(payload)))>
//! ```
//!
//! base64url without padding, where `payload` is the UTF-8 text `program_id|partner_id|expires_at`
//! (`expires_at` in decimal UTC milliseconds). Ids never contain `|` (they are generated
//! identifiers); a claim with a `|` in an id would produce a token that never verifies. The MAC
//! covers the version prefix and the encoded payload, and is checked (in constant time, via
//! [`Mac::verify_slice`]) before the payload is even decoded. Verification needs no storage read.
//! Tokens live at most [`MAX_TTL_MS`] (2 h).
//!
//! [`verify_embed`] proves the token was issued by us and is unexpired; the caller must still
//! compare [`EmbedClaims::program_id`] with the program being accessed (a token for another
//! program is refused with [`EmbedClaims::is_for_program`]).
//!
//! # Webhook signatures
//!
//! Header value `t=TIMESTAMP,v1=HEX[,v1=HEX...][,v0=...]`, where `v1` is the lowercase hex
//! HMAC-SHA256 of `TIMESTAMP + "." + raw body`, keyed with the endpoint secret's bytes as-is
//! (`whsec_...` included), exactly as Stripe's libraries do. See [`verify_stripe_signature`] and
//! [`sign_payload`].

use base64ct::{Base64UrlUnpadded, Encoding as _};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::Invalid;

type HmacSha256 = Hmac<Sha256>;

/// base64url without padding (RFC 4648 section 5), canonical encodings only (`base64ct`).
fn b64url_encode(bytes: impl AsRef<[u8]>) -> String {
    Base64UrlUnpadded::encode_string(bytes.as_ref())
}

fn b64url_decode(s: &str) -> Result<Vec<u8>, base64ct::Error> {
    Base64UrlUnpadded::decode_vec(s)
}

/// Longest lifetime of an embed token: 2 hours.
pub const MAX_TTL_MS: i64 = 2 * 3600 * 1000;

/// Lifetime of an embed token when the request does not ask for one: 1 hour.
pub const DEFAULT_TTL_MS: i64 = 3600 * 1000;

/// Tokens longer than this are refused before any decoding (ours are ~150 characters).
pub const MAX_TOKEN_LEN: usize = 1024;

/// Stripe's default webhook tolerance, in seconds.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

const VERSION: &str = "v1";

/// The signed content of an embed token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbedClaims {
    pub program_id: String,
    pub partner_id: String,
    /// UTC milliseconds; the token is refused from this instant on.
    pub expires_at: i64,
}

impl EmbedClaims {
    /// Whether the token was issued for `program_id` (compare this before serving anything).
    pub fn is_for_program(&self, program_id: &str) -> bool {
        self.program_id == program_id
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token of ours: wrong shape, version, encoding or content.
    Malformed,
    /// Well-formed but the MAC does not match (tampered, or another secret).
    BadSignature,
    /// Authentic but `now >= expires_at`.
    Expired,
}

impl TokenError {
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed_token",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "token_expired",
        }
    }
}

/// HMAC-SHA256 accepts keys of any length, so this never returns `None` in practice; it avoids
/// an `unwrap` on the request path all the same.
fn mac(key: &[u8]) -> Option<HmacSha256> {
    <HmacSha256 as Mac>::new_from_slice(key).ok()
}

/// `v1.<b64url(program|partner|exp)>.<b64url(mac)>`; see the module docs.
pub fn sign_embed(secret: &[u8], claims: &EmbedClaims) -> String {
    let payload = format!("{}|{}|{}", claims.program_id, claims.partner_id, claims.expires_at);
    let signed = format!("{VERSION}.{}", b64url_encode(payload.as_bytes()));
    let tag = match mac(secret) {
        Some(mut m) => {
            m.update(signed.as_bytes());
            m.finalize().into_bytes()
        }
        None => return String::new(),
    };
    format!("{signed}.{}", b64url_encode(tag))
}

/// Checks the MAC (constant time), then the payload, then the expiry (`now >= expires_at` is
/// expired). No storage read.
pub fn verify_embed(secret: &[u8], token: &str, now: i64) -> Result<EmbedClaims, TokenError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (signed, tag_b64) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (version, payload_b64) = signed.split_once('.').ok_or(TokenError::Malformed)?;
    if version != VERSION || payload_b64.is_empty() || payload_b64.contains('.') {
        return Err(TokenError::Malformed);
    }
    let tag = b64url_decode(tag_b64).map_err(|_| TokenError::Malformed)?;
    let mut m = mac(secret).ok_or(TokenError::BadSignature)?;
    m.update(signed.as_bytes());
    m.verify_slice(&tag).map_err(|_| TokenError::BadSignature)?;

    let payload = b64url_decode(payload_b64).map_err(|_| TokenError::Malformed)?;
    let payload = std::str::from_utf8(&payload).map_err(|_| TokenError::Malformed)?;
    let mut parts = payload.split('|');
    let (program_id, partner_id, exp) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some(c), None) if !a.is_empty() && !b.is_empty() => (a, b, c),
        _ => return Err(TokenError::Malformed),
    };
    let expires_at: i64 = exp.parse().map_err(|_| TokenError::Malformed)?;
    if now >= expires_at {
        return Err(TokenError::Expired);
    }
    Ok(EmbedClaims { program_id: program_id.to_string(), partner_id: partner_id.to_string(), expires_at })
}

/// Expiry of a new embed token: `now + ttl`, ttl defaulting to [`DEFAULT_TTL_MS`] (1 h), and
/// when given `> 0` and `<= MAX_TTL_MS` (field `ttl_ms`, code `invalid_ttl`).
pub fn embed_expiry(now: i64, requested_ttl_ms: Option<i64>) -> Result<i64, Invalid> {
    let ttl = requested_ttl_ms.unwrap_or(DEFAULT_TTL_MS);
    if ttl <= 0 || ttl > MAX_TTL_MS {
        return Err(Invalid::new(
            "ttl_ms",
            "invalid_ttl",
            format!("ttl must be between 1 and {MAX_TTL_MS} milliseconds (2 hours)"),
        ));
    }
    now.checked_add(ttl).ok_or_else(|| Invalid::new("ttl_ms", "invalid_ttl", "expiry out of range"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigError {
    /// No parseable `t=` in the header.
    MissingTimestamp,
    /// No `v1=` signature in the header (e.g. `v0` only).
    NoSignatures,
    /// No `v1` signature matches the payload with this secret.
    Mismatch,
    /// Authentic, but the timestamp is more than the tolerance away from now (replay).
    OutsideTolerance,
}

impl SigError {
    pub fn as_str(&self) -> &'static str {
        match self {
            SigError::MissingTimestamp => "missing_timestamp",
            SigError::NoSignatures => "no_signatures",
            SigError::Mismatch => "signature_mismatch",
            SigError::OutsideTolerance => "timestamp_outside_tolerance",
        }
    }
}

/// Verifies a `Stripe-Signature` (or `Refport-Signature`) header value against the raw body.
///
/// Order of checks, as Stripe's libraries: timestamp present, at least one `v1`, one `v1`
/// matches (each decoded from hex and compared in constant time with [`Mac::verify_slice`];
/// invalid hex never matches; any of several `v1`s may match, which is how Stripe rolls
/// secrets), then `|now_secs - t| <= tolerance_secs` (stale and far-future timestamps are both
/// refused). Returns the signed timestamp (seconds).
pub fn verify_stripe_signature(
    secret: &str,
    header: &str,
    payload: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<i64, SigError> {
    let mut timestamp: Option<i64> = None;
    let mut signatures: Vec<&str> = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.split_once('=') else {
            continue;
        };
        match key.trim() {
            "t" => {
                if let Ok(t) = value.trim().parse::<i64>() {
                    timestamp = Some(t);
                }
            }
            "v1" => signatures.push(value.trim()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SigError::MissingTimestamp)?;
    if signatures.is_empty() {
        return Err(SigError::NoSignatures);
    }
    let mut m = mac(secret.as_bytes()).ok_or(SigError::Mismatch)?;
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(payload);
    let matched = signatures.iter().any(|sig| match hex::decode(sig) {
        Ok(bytes) => m.clone().verify_slice(&bytes).is_ok(),
        Err(_) => false,
    });
    if !matched {
        return Err(SigError::Mismatch);
    }
    if now_secs.abs_diff(timestamp) > tolerance_secs.max(0).unsigned_abs() {
        return Err(SigError::OutsideTolerance);
    }
    Ok(timestamp)
}

/// The full header value `t=<timestamp>,v1=<hex hmac>` for `payload` signed at `timestamp`
/// (seconds). Used for Refport's outgoing webhooks (`Refport-Signature`) and in tests.
pub fn sign_payload(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let Some(mut m) = mac(secret.as_bytes()) else {
        return String::new();
    };
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(payload);
    format!("t={timestamp},v1={}", hex::encode(m.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"embed-secret-0123456789abcdef";
    const NOW: i64 = 1_795_392_000_000;

    fn claims() -> EmbedClaims {
        EmbedClaims {
            program_id: "prg_abc123".into(),
            partner_id: "ptn_xyz789".into(),
            expires_at: NOW + DEFAULT_TTL_MS,
        }
    }

    /// Re-encodes a token with a modified payload but the original MAC.
    fn with_payload(token: &str, payload: &str) -> String {
        let parts: Vec<&str> = token.split('.').collect();
        format!("{}.{}.{}", parts[0], b64url_encode(payload), parts[2])
    }

    #[test]
    fn round_trip() {
        let c = claims();
        let token = sign_embed(SECRET, &c);
        assert!(token.starts_with("v1."));
        assert_eq!(token.split('.').count(), 3);
        assert!(!token.contains('='));
        assert!(token.len() < MAX_TOKEN_LEN);
        let got = verify_embed(SECRET, &token, NOW).unwrap();
        assert_eq!(got, c);
        assert!(got.is_for_program("prg_abc123"));
        assert!(!got.is_for_program("prg_other"));
        // deterministic
        assert_eq!(sign_embed(SECRET, &c), token);
    }

    #[test]
    fn payload_format() {
        let token = sign_embed(SECRET, &claims());
        let payload = b64url_decode(token.split('.').nth(1).unwrap()).unwrap();
        assert_eq!(String::from_utf8(payload).unwrap(), format!("prg_abc123|ptn_xyz789|{}", NOW + DEFAULT_TTL_MS));
    }

    #[test]
    fn tampered_fields_refused() {
        let c = claims();
        let token = sign_embed(SECRET, &c);
        let exp = c.expires_at;
        for payload in [
            format!("prg_other|ptn_xyz789|{exp}"),
            format!("prg_abc123|ptn_other|{exp}"),
            format!("prg_abc123|ptn_xyz789|{}", exp + 3_600_000),
            format!("prg_abc123|ptn_xyz789|{}", exp - 1),
        ] {
            assert_eq!(
                verify_embed(SECRET, &with_payload(&token, &payload), NOW),
                Err(TokenError::BadSignature),
                "{payload}"
            );
        }
    }

    #[test]
    fn tampered_signature_refused() {
        let token = sign_embed(SECRET, &claims());
        let (head, tag) = token.rsplit_once('.').unwrap();
        let mut bytes = b64url_decode(tag).unwrap();
        bytes[0] ^= 1;
        let forged = format!("{head}.{}", b64url_encode(&bytes));
        assert_eq!(verify_embed(SECRET, &forged, NOW), Err(TokenError::BadSignature));
        // truncated MAC
        let short = format!("{head}.{}", b64url_encode(&bytes[..16]));
        assert_eq!(verify_embed(SECRET, &short, NOW), Err(TokenError::BadSignature));
        // empty MAC
        assert_eq!(verify_embed(SECRET, &format!("{head}."), NOW), Err(TokenError::BadSignature));
        // version changed: v2 not ours
        let v2 = token.replacen("v1.", "v2.", 1);
        assert_eq!(verify_embed(SECRET, &v2, NOW), Err(TokenError::Malformed));
    }

    #[test]
    fn expired_refused() {
        let c = claims();
        let token = sign_embed(SECRET, &c);
        assert!(verify_embed(SECRET, &token, c.expires_at - 1).is_ok());
        assert_eq!(verify_embed(SECRET, &token, c.expires_at), Err(TokenError::Expired));
        assert_eq!(verify_embed(SECRET, &token, c.expires_at + 1), Err(TokenError::Expired));
    }

    #[test]
    fn other_secret_refused() {
        let token = sign_embed(b"another-secret", &claims());
        assert_eq!(verify_embed(SECRET, &token, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn garbage_refused() {
        let huge = "a".repeat(1_000_000);
        let huge_dots = format!("v1.{}.{}", "A".repeat(5_000), "B".repeat(5_000));
        for s in [
            "",
            ".",
            "..",
            "...",
            "v1",
            "v1.",
            "v1..",
            "nodots",
            "v1.!!!.@@@",
            "v1.abc.def.ghi",
            "v1.a.b",
            "v1.====.====",
            "v1.\u{0}.\u{0}",
            "v1.é.é",
            huge.as_str(),
            huge_dots.as_str(),
        ] {
            assert!(verify_embed(SECRET, s, NOW).is_err(), "{s:.40}");
        }
    }

    #[test]
    fn malformed_payload_with_valid_mac_refused() {
        // A payload we never produce, correctly MACed (as if the secret leaked): still refused.
        let sign_raw = |payload: &str| {
            let signed = format!("v1.{}", b64url_encode(payload));
            let mut m = mac(SECRET).unwrap();
            m.update(signed.as_bytes());
            format!("{signed}.{}", b64url_encode(m.finalize().into_bytes()))
        };
        for p in ["a|b", "a|b|c", "a|b|1|2", "|b|99999999999999", "a||99999999999999", "a|b|"] {
            assert_eq!(verify_embed(SECRET, &sign_raw(p), NOW), Err(TokenError::Malformed), "{p}");
        }
        assert!(verify_embed(SECRET, &sign_raw("a|b|99999999999999"), NOW).is_ok());
    }

    #[test]
    fn expiry_bounds() {
        assert_eq!(embed_expiry(NOW, None), Ok(NOW + 3_600_000));
        assert_eq!(embed_expiry(NOW, Some(MAX_TTL_MS)), Ok(NOW + MAX_TTL_MS));
        assert_eq!(embed_expiry(NOW, Some(1)), Ok(NOW + 1));
        for bad in [0, -1, MAX_TTL_MS + 1, i64::MAX, i64::MIN] {
            let e = embed_expiry(NOW, Some(bad)).unwrap_err();
            assert_eq!(e.code, "invalid_ttl");
            assert_eq!(e.field, "ttl_ms");
        }
        assert!(embed_expiry(i64::MAX - 10, None).is_err());
    }

    #[test]
    fn error_codes() {
        assert_eq!(TokenError::Malformed.as_str(), "malformed_token");
        assert_eq!(TokenError::BadSignature.as_str(), "bad_signature");
        assert_eq!(TokenError::Expired.as_str(), "token_expired");
        assert_eq!(SigError::MissingTimestamp.as_str(), "missing_timestamp");
        assert_eq!(SigError::NoSignatures.as_str(), "no_signatures");
        assert_eq!(SigError::Mismatch.as_str(), "signature_mismatch");
        assert_eq!(SigError::OutsideTolerance.as_str(), "timestamp_outside_tolerance");
    }

    // ---- Stripe ----

    const WHSEC: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"checkout.session.completed"}"#;
    const T: i64 = 1_795_392_000;

    /// Independent computation with the hmac crate, as Stripe documents it.
    fn reference_sig(secret: &str, t: i64, body: &[u8]) -> String {
        let mut signed = format!("{t}.").into_bytes();
        signed.extend_from_slice(body);
        let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        m.update(&signed);
        hex::encode(m.finalize().into_bytes())
    }

    #[test]
    fn stripe_known_vector() {
        let expected = reference_sig(WHSEC, T, BODY);
        assert_eq!(expected.len(), 64);
        let header = sign_payload(WHSEC, T, BODY);
        assert_eq!(header, format!("t={T},v1={expected}"));
        assert_eq!(verify_stripe_signature(WHSEC, &header, BODY, T, 300), Ok(T));
        // Stripe's real header shape, with v0 and spaces
        let header = format!("t={T}, v1={expected}, v0=deadbeef");
        assert_eq!(verify_stripe_signature(WHSEC, &header, BODY, T + 10, 300), Ok(T));
    }

    #[test]
    fn stripe_fixed_vector() {
        // HMAC-SHA256(key="whsec_test_secret", msg="1795392000.{}"), computed independently with
        // `printf '1795392000.{}' | openssl dgst -sha256 -hmac whsec_test_secret`.
        let sig = "2179231995130c0f636e5b6d202d023660930c0bce2c91a885ec3a581c863b28";
        assert_eq!(reference_sig(WHSEC, T, b"{}"), sig);
        let header = format!("t={T},v1={sig}");
        assert_eq!(verify_stripe_signature(WHSEC, &header, b"{}", T, 300), Ok(T));
        assert_eq!(sign_payload(WHSEC, T, b"{}"), header);
    }

    #[test]
    fn stripe_second_of_several_matches() {
        let good = reference_sig(WHSEC, T, BODY);
        let other = reference_sig("whsec_old_secret", T, BODY);
        let header = format!("t={T},v1={other},v1={good}");
        assert_eq!(verify_stripe_signature(WHSEC, &header, BODY, T, 300), Ok(T));
        let header = format!("t={T},v1=nothex,v1={good}");
        assert_eq!(verify_stripe_signature(WHSEC, &header, BODY, T, 300), Ok(T));
    }

    #[test]
    fn stripe_tolerance() {
        let header = sign_payload(WHSEC, T, BODY);
        assert_eq!(verify_stripe_signature(WHSEC, &header, BODY, T + 300, 300), Ok(T));
        assert_eq!(verify_stripe_signature(WHSEC, &header, BODY, T + 301, 300), Err(SigError::OutsideTolerance));
        assert_eq!(verify_stripe_signature(WHSEC, &header, BODY, T - 300, 300), Ok(T));
        assert_eq!(verify_stripe_signature(WHSEC, &header, BODY, T - 301, 300), Err(SigError::OutsideTolerance));
        assert_eq!(verify_stripe_signature(WHSEC, &header, BODY, i64::MIN, 300), Err(SigError::OutsideTolerance));
    }

    #[test]
    fn stripe_mismatch() {
        let header = sign_payload("whsec_wrong", T, BODY);
        assert_eq!(verify_stripe_signature(WHSEC, &header, BODY, T, 300), Err(SigError::Mismatch));
        let header = sign_payload(WHSEC, T, BODY);
        assert_eq!(verify_stripe_signature(WHSEC, &header, b"{\"id\":\"evt_2\"}", T, 300), Err(SigError::Mismatch));
        // timestamp swapped: signature was for T
        let sig = reference_sig(WHSEC, T, BODY);
        let header = format!("t={},v1={sig}", T + 1);
        assert_eq!(verify_stripe_signature(WHSEC, &header, BODY, T, 300), Err(SigError::Mismatch));
        let header = format!("t={T},v1=");
        assert_eq!(verify_stripe_signature(WHSEC, &header, BODY, T, 300), Err(SigError::Mismatch));
    }

    #[test]
    fn stripe_header_shapes() {
        let sig = reference_sig(WHSEC, T, BODY);
        for h in [format!("v1={sig}"), format!("t=abc,v1={sig}"), String::new(), "garbage".into()] {
            assert_eq!(verify_stripe_signature(WHSEC, &h, BODY, T, 300), Err(SigError::MissingTimestamp), "{h}");
        }
        let h = format!("t={T},v0={sig}");
        assert_eq!(verify_stripe_signature(WHSEC, &h, BODY, T, 300), Err(SigError::NoSignatures));
        assert_eq!(verify_stripe_signature(WHSEC, &format!("t={T}"), BODY, T, 300), Err(SigError::NoSignatures));
    }

    /// `base64ct` answers as the `base64` crate's `URL_SAFE_NO_PAD` engine did (used before).
    fn same_as_base64_crate(s: &str) -> Result<(), TestCaseError> {
        use base64::Engine as _;
        let theirs = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok();
        prop_assert_eq!(b64url_decode(s).ok(), theirs.clone(), "{:?}", s);
        if let Some(bytes) = theirs {
            prop_assert_eq!(b64url_encode(&bytes), base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes));
        }
        Ok(())
    }

    #[test]
    fn base64url_edge_cases() {
        for s in [
            "", "A", "AA", "AB", "AAA", "AAB", "AAAA", "AA==", "AA=", "+/", "-_", "-_8", "Zm9v", "Zm9vYg", "Zm9vYh",
            " Zm9v",
        ] {
            same_as_base64_crate(s).unwrap();
        }
    }

    proptest! {
        #[test]
        fn base64url_agrees_with_base64_crate(s in "[A-Za-z0-9_+/=-]{0,13}") {
            same_as_base64_crate(&s)?;
        }

        #[test]
        fn base64url_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(b64url_decode(&b64url_encode(&bytes)).unwrap(), bytes.clone());
            same_as_base64_crate(&b64url_encode(&bytes))?;
        }

        #[test]
        fn arbitrary_strings_never_verify(s in any::<String>()) {
            prop_assert!(verify_embed(SECRET, &s, NOW).is_err());
        }

        #[test]
        fn token_shaped_strings_never_verify(
            p in proptest::collection::vec(any::<u8>(), 0..200),
            t in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let s = format!("v1.{}.{}", b64url_encode(&p), b64url_encode(&t));
            prop_assert!(verify_embed(SECRET, &s, NOW).is_err());
        }

        #[test]
        fn embed_round_trips(
            prog in "[a-zA-Z0-9_]{1,40}",
            partner in "[a-zA-Z0-9_]{1,40}",
            now in -1_000_000_000_000_000i64..1_000_000_000_000_000i64,
            ttl in 1i64..=MAX_TTL_MS,
        ) {
            let exp = embed_expiry(now, Some(ttl)).unwrap();
            let c = EmbedClaims { program_id: prog, partner_id: partner, expires_at: exp };
            let token = sign_embed(SECRET, &c);
            prop_assert_eq!(verify_embed(SECRET, &token, now), Ok(c));
            prop_assert_eq!(verify_embed(SECRET, &token, exp), Err(TokenError::Expired));
        }

        #[test]
        fn stripe_arbitrary_headers_never_panic(h in any::<String>(), now in any::<i64>()) {
            let _ = verify_stripe_signature(WHSEC, &h, BODY, now, 300);
        }
    }
}
