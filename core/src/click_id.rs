//! Signed click ids: a click id that carries its link and its time under a MAC, so a lead that
//! presents it is attributed without reading the click's row (which the clicks queue may not
//! have written yet, and which retention deletes after the attribution window).
//!
//! Shape: `clk_` + the 26-character time-ordered id of [`crate::ids::new_id`] (48-bit
//! millisecond time, 80 random bits) + a 16-character MAC + the body of the link id (what
//! follows `link_`). The MAC is the first 80 bits of HMAC-SHA256 under a key derived from the
//! deployment's `IP_HASH_SALT`, over the time-ordered part and the link id, in Crockford
//! base32. The id stays unguessable (80 random bits) and unforgeable (80-bit MAC): changing
//! the link or the time breaks the MAC. Ids sort by time like every other id, so retention
//! can delete by id range.
//!
//! An id without a valid MAC (an id issued before this scheme, a hand-made one, a key rotated
//! since) is not rejected here: the shell falls back to looking the click's row up.

use crate::crypto::{ct_eq, hmac_sha256};
use crate::ids;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters of the time-ordered part.
const STAMP: usize = 26;
/// Characters of the MAC (80 bits).
const MAC: usize = 16;
/// The longest link-id body a signed id embeds (`ids::is_valid` allows 64).
const MAX_LINK_BODY: usize = 64;
/// The longest click id body: legacy ids are up to 64 characters, signed ones up to this.
pub const MAX_BODY: usize = STAMP + MAC + MAX_LINK_BODY;

/// The MAC key for click ids, derived from the deployment's salt (domain-separated, so the
/// visitor hashes made with the same salt say nothing about it).
pub fn derive_key(secret: &[u8]) -> [u8; 32] {
    hmac_sha256(secret, &[b"refport click id v1"])
}

fn mac(key: &[u8; 32], stamp: &str, link_id: &str) -> String {
    let d = hmac_sha256(key, &[stamp.as_bytes(), b"|", link_id.as_bytes()]);
    let v = d[..10].iter().fold(0u128, |acc, b| (acc << 8) | *b as u128);
    (0..MAC).rev().map(|i| CROCKFORD[((v >> (i * 5)) & 31) as usize] as char).collect()
}

fn link_body(link_id: &str) -> Option<&str> {
    let body = link_id.strip_prefix(ids::LINK)?.strip_prefix('_')?;
    (ids::is_valid(ids::LINK, link_id) && body.len() <= MAX_LINK_BODY).then_some(body)
}

/// A new signed click id for a click on `link_id` at `now`; `None` when the link id is not a
/// valid link id (never the case for links the API made).
pub fn issue(key: &[u8; 32], link_id: &str, now: i64, random: [u8; 10]) -> Option<String> {
    let body = link_body(link_id)?;
    let id = ids::new_id(ids::CLICK, now, random);
    let stamp = &id[ids::CLICK.len() + 1..];
    let mac = mac(key, stamp, link_id);
    Some(format!("{id}{mac}{body}"))
}

/// What a valid signed click id proves: the link it was issued for and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedClick {
    pub link_id: String,
    /// Milliseconds since the epoch, UTC.
    pub at: i64,
}

/// The link and time of a signed click id whose MAC verifies under `key`; `None` otherwise
/// (compared in constant time).
pub fn verify(key: &[u8; 32], id: &str) -> Option<SignedClick> {
    let body = id.strip_prefix(ids::CLICK)?.strip_prefix('_')?;
    if body.len() <= STAMP + MAC || body.len() > MAX_BODY || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (stamp, rest) = body.split_at(STAMP);
    let (given, link) = rest.split_at(MAC);
    let link_id = format!("{}_{link}", ids::LINK);
    if !ct_eq(mac(key, stamp, &link_id).as_bytes(), given.as_bytes()) {
        return None;
    }
    Some(SignedClick { link_id, at: time_of(stamp)? })
}

/// The millisecond time of a 26-character time-ordered id body (its first 10 characters).
fn time_of(stamp: &str) -> Option<i64> {
    stamp.bytes().take(10).try_fold(0i64, |acc, b| {
        let v = CROCKFORD.iter().position(|c| *c == b.to_ascii_uppercase())? as i64;
        Some((acc << 5) | v)
    })
}

/// Whether `s` has the shape of a click id (legacy or signed): what the track API accepts
/// before looking it up.
pub fn is_click_id(s: &str) -> bool {
    match s.strip_prefix(ids::CLICK).and_then(|r| r.strip_prefix('_')) {
        Some(body) => !body.is_empty() && body.len() <= MAX_BODY && body.bytes().all(|b| b.is_ascii_alphanumeric()),
        None => false,
    }
}

/// The smallest id of a click made at `at` or later: ids sort by time, so every click id
/// (legacy or signed) below it was made earlier. Retention deletes `id < cutoff_id(t)`.
pub fn cutoff_id(at: i64) -> String {
    ids::new_id(ids::CLICK, at, [0; 10])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: [u8; 32] = [7; 32];
    const T: i64 = 1_764_036_000_123;

    #[test]
    fn round_trip() {
        let id = issue(&KEY, "link_01JZ0000000000000000000000", T, [9; 10]).unwrap();
        assert!(id.starts_with("clk_"));
        assert_eq!(id.len(), 4 + 26 + 16 + 26);
        assert!(is_click_id(&id));
        assert_eq!(verify(&KEY, &id), Some(SignedClick { link_id: "link_01JZ0000000000000000000000".into(), at: T }));
        // Another key, another link, another time: no.
        assert_eq!(verify(&[8; 32], &id), None);
        let forged = id.replacen("01JZ", "01JY", 1);
        assert_eq!(verify(&KEY, &forged), None);
        let mut other_time = id.clone();
        other_time.replace_range(4..5, if &id[4..5] == "0" { "1" } else { "0" });
        assert_eq!(verify(&KEY, &other_time), None);
        // Hand-made link ids embed too.
        let demo = issue(&KEY, "link_demo", T, [1; 10]).unwrap();
        assert_eq!(verify(&KEY, &demo).map(|c| c.link_id), Some("link_demo".into()));
        assert_eq!(issue(&KEY, "pn_x", T, [1; 10]), None);
        assert_eq!(issue(&KEY, "link_a-b", T, [1; 10]), None);
    }

    #[test]
    fn legacy_ids_are_click_ids_but_not_signed() {
        let legacy = ids::new_id(ids::CLICK, T, [3; 10]);
        assert!(is_click_id(&legacy));
        assert_eq!(verify(&KEY, &legacy), None);
        assert!(is_click_id("clk_demo"));
        assert!(!is_click_id("clk_"));
        assert!(!is_click_id("link_x"));
        assert!(!is_click_id(&format!("clk_{}", "A".repeat(MAX_BODY + 1))));
    }

    #[test]
    fn derived_key_depends_on_the_secret() {
        assert_ne!(derive_key(b"a"), derive_key(b"b"));
        assert_eq!(derive_key(b"a"), derive_key(b"a"));
    }

    proptest! {
        #[test]
        fn signed_ids_verify_and_sort(a in 0i64..(1i64 << 47), b in 0i64..(1i64 << 47), ra: [u8; 10], rb: [u8; 10],
                                      link in "[A-Za-z0-9]{1,64}") {
            let link_id = format!("link_{link}");
            let x = issue(&KEY, &link_id, a, ra).unwrap();
            let y = issue(&KEY, &link_id, b, rb).unwrap();
            prop_assert_eq!(verify(&KEY, &x), Some(SignedClick { link_id: link_id.clone(), at: a }));
            if a != b {
                prop_assert_eq!(a < b, x < y);
            }
            prop_assert!(cutoff_id(a) <= x);
            prop_assert!(cutoff_id(a + 1) > x);
        }

        #[test]
        fn any_change_breaks_the_mac(ra: [u8; 10], pos in 4usize..72, c in "[0-9A-Z]") {
            let id = issue(&KEY, "link_01JZ0000000000000000000000", T, ra).unwrap();
            let mut bytes = id.clone().into_bytes();
            prop_assume!(bytes[pos] != c.as_bytes()[0]);
            bytes[pos] = c.as_bytes()[0];
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(verify(&KEY, &changed), None);
        }
    }
}
