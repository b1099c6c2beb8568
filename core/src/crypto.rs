//! Hashing helpers: API keys are stored as SHA-256 hex; IPs and user agents as keyed hashes.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// HMAC-SHA256 hex of `msg` under `key` (used for salted IP / user-agent hashes).
pub fn hmac_sha256_hex(key: &[u8], msg: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(msg);
            hex::encode(m.finalize().into_bytes())
        }
        // HMAC accepts keys of any length; this arm is unreachable in practice.
        Err(_) => sha256_hex(msg),
    }
}

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut m) => {
            parts.iter().for_each(|p| m.update(p));
            m.finalize().into_bytes().into()
        }
        // HMAC accepts keys of any length; this arm is unreachable in practice.
        Err(_) => {
            let mut h = Sha256::new();
            parts.iter().for_each(|p| h.update(p));
            h.finalize().into()
        }
    }
}

/// Constant-time equality of two byte strings (length may leak, content does not).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// API keys: `rp_live_` + 32 base62 characters (~190 bits).
pub const API_KEY_PREFIX: &str = "rp_live_";

pub fn looks_like_api_key(s: &str) -> bool {
    s.strip_prefix(API_KEY_PREFIX)
        .is_some_and(|r| r.len() >= 16 && r.len() <= 128 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        // RFC 4231 test case 2
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(looks_like_api_key("rp_live_0123456789abcdefXYZ"));
        assert!(!looks_like_api_key("rp_live_short"));
        assert!(!looks_like_api_key("sk_live_0123456789abcdefXYZ"));
    }
}
