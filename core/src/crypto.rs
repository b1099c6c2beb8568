//! Hashing helpers: API keys are stored as SHA-256 hex; IPs and user agents as keyed hashes.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use subtle::ConstantTimeEq;

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The HMAC state after absorbing `key` (its inner and outer pads: two SHA-256 blocks), kept per
/// thread for the last few keys and cloned per message: the redirect signs every click with the
/// same two keys, and this is a third of each MAC's work on a short message.
fn keyed(key: &[u8]) -> Option<Hmac<Sha256>> {
    const KEPT: usize = 4;
    thread_local! {
        static KEYED: RefCell<Vec<(Vec<u8>, Hmac<Sha256>)>> = const { RefCell::new(Vec::new()) };
    }
    KEYED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, m)) = cache.iter().find(|(k, _)| ct_eq(k, key)) {
            return Some(m.clone());
        }
        let m = Hmac::<Sha256>::new_from_slice(key).ok()?;
        if cache.len() >= KEPT {
            cache.remove(0);
        }
        cache.push((key.to_vec(), m.clone()));
        Some(m)
    })
}

/// HMAC-SHA256 hex of `msg` under `key` (used for salted IP / user-agent hashes).
pub fn hmac_sha256_hex(key: &[u8], msg: &[u8]) -> String {
    match keyed(key) {
        Some(mut m) => {
            m.update(msg);
            hex::encode(m.finalize().into_bytes())
        }
        // HMAC accepts keys of any length; this arm is unreachable in practice.
        None => sha256_hex(msg),
    }
}

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    match keyed(key) {
        Some(mut m) => {
            parts.iter().for_each(|p| m.update(p));
            m.finalize().into_bytes().into()
        }
        // HMAC accepts keys of any length; this arm is unreachable in practice.
        None => {
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
        // The kept keyed states: more keys than are kept, each asked twice, same answers.
        let fresh = |k: &[u8], m: &[u8]| {
            let mut h = Hmac::<Sha256>::new_from_slice(k).unwrap();
            h.update(m);
            hex::encode(h.finalize().into_bytes())
        };
        for round in 0..2 {
            for k in 0..6u8 {
                let key = [k; 40];
                let msg = [round, k];
                assert_eq!(hmac_sha256_hex(&key, &msg), fresh(&key, &msg));
                assert_eq!(hex::encode(hmac_sha256(&key, &[&msg[..1], &msg[1..]])), fresh(&key, &msg));
            }
        }
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(looks_like_api_key("rp_live_0123456789abcdefXYZ"));
        assert!(!looks_like_api_key("rp_live_short"));
        assert!(!looks_like_api_key("sk_live_0123456789abcdefXYZ"));
    }
}
