//! Signed click ids: a click id that carries its link and its time under a MAC, so a lead that
//! presents it is attributed without reading the click's row (which the clicks queue may not
//! have written yet, and which retention deletes after the attribution window).
//!
//! Shape: `clk_` + a 26-character time-ordered stamp (10 characters of 48-bit millisecond
//! time, 16 characters of 80 more bits) + a 16-character MAC + the body of the link id (what
//! follows `link_`), in Crockford base32. The MAC is the first 80 bits of HMAC-SHA256 under a
//! key derived from the deployment's `IP_HASH_SALT` (`derive_key`). Ids sort by time like every
//! other id, so retention can delete by id range (`cutoff_id`).
//!
//! Two versions, told apart by the MAC's input (domain-separated), both verified:
//! - **v2** (issued now, `issue_v2`): the stamp's time is the start of the click's UTC hour
//!   bucket and its 80 bits are deterministic: 75 bits of the visitor value ([`visitor`]: an
//!   HMAC of the visitor's IP and user agent under the key) and 5 flag bits ([`ClickFlags`]).
//!   MAC over `v2|` + stamp + `|` + link id. So the same visitor on the same link in the same
//!   hour bucket with the same flags gets the same id, which is the row key that folds repeated
//!   visits into one click (`src/store/clicks.rs`), and a lead can read the flags from the id
//!   before the click's row exists. The id stays unforgeable (80-bit MAC) and says nothing of
//!   the IP or user agent without the key; it is no longer unguessable by someone who knows the
//!   id of the same visitor, link and hour, which is that visitor's own cookie.
//! - **v1** (cookies issued before v2): the stamp is the click's millisecond time and 80 random
//!   bits; MAC over stamp + `|` + link id. It verifies without visit information.
//!
//! An id without a valid MAC (an id issued before signing, a hand-made one, a key rotated
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

/// The MAC of a v1 id: over the stamp and the link id.
fn mac(key: &[u8; 32], stamp: &str, link_id: &str) -> String {
    mac_of(key, &[stamp.as_bytes(), b"|", link_id.as_bytes()])
}

/// The MAC of a v2 id: the same, after `v2|` (no v1 input starts so: a stamp is alphanumeric).
fn mac_v2(key: &[u8; 32], stamp: &str, link_id: &str) -> String {
    mac_of(key, &[b"v2|", stamp.as_bytes(), b"|", link_id.as_bytes()])
}

fn mac_of(key: &[u8; 32], parts: &[&[u8]]) -> String {
    let d = hmac_sha256(key, parts);
    let v = d[..10].iter().fold(0u128, |acc, b| (acc << 8) | *b as u128);
    (0..MAC).rev().map(|i| CROCKFORD[((v >> (i * 5)) & 31) as usize] as char).collect()
}

fn link_body(link_id: &str) -> Option<&str> {
    let body = link_id.strip_prefix(ids::LINK)?.strip_prefix('_')?;
    (ids::is_valid(ids::LINK, link_id) && body.len() <= MAX_LINK_BODY).then_some(body)
}

/// A v1 signed click id (random stamp bits) for a click on `link_id` at `now`; `None` when the
/// link id is not a valid link id. No longer issued by the redirect (see [`issue_v2`]); v1 ids
/// in cookies still verify.
pub fn issue(key: &[u8; 32], link_id: &str, now: i64, random: [u8; 10]) -> Option<String> {
    let body = link_body(link_id)?;
    let id = ids::new_id(ids::CLICK, now, random);
    let stamp = &id[ids::CLICK.len() + 1..];
    let mac = mac(key, stamp, link_id);
    Some(format!("{id}{mac}{body}"))
}

/// An hour in milliseconds: the bucket of v2 ids, and how long repeated visits of the same
/// visitor to the same link fold into one click.
pub const HOUR_MS: i64 = 3_600_000;
/// Bits of the visitor value in a v2 stamp (the other 5 of its 80 bits are flags).
const VISITOR_BITS: u32 = 75;
const FLAG_BITS: u32 = 5;
/// The largest time a stamp holds (48 bits of milliseconds).
const MAX_TIME: i64 = (1 << 48) - 1;

/// The start of the UTC hour bucket of `at`.
pub fn bucket(at: i64) -> i64 {
    at - at.rem_euclid(HOUR_MS)
}

/// Facts about a click that a v2 id carries, authenticated by its MAC, for fraud rules at lead
/// time (before the click's row exists). Bits 2 to 4 of the flag field are reserved (zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClickFlags {
    /// The request URL carried an ad platform's click id (`crate::click::has_ad_click_id`).
    pub ad_click: bool,
    /// The click came from a referrer the program bans.
    pub banned_referrer: bool,
}

impl ClickFlags {
    fn bits(self) -> u128 {
        (self.ad_click as u128) | ((self.banned_referrer as u128) << 1)
    }

    fn from_bits(bits: u128) -> ClickFlags {
        ClickFlags { ad_click: bits & 1 == 1, banned_referrer: bits & 2 == 2 }
    }
}

/// A visitor as v2 ids carry it: 75 bits of an HMAC of the visitor's IP and user agent under
/// the click key. Equal for the same IP and user agent, unrelated otherwise; says nothing about
/// either without the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Visitor(u128);

/// The visitor value of a request from `ip` (`CF-Connecting-IP`) with user agent `ua`; an
/// absent one counts as empty. The IP is length-prefixed, so no (ip, ua) pair collides with
/// another by moving bytes between them.
pub fn visitor(key: &[u8; 32], ip: Option<&str>, ua: Option<&str>) -> Visitor {
    let (ip, ua) = (ip.unwrap_or(""), ua.unwrap_or(""));
    let d = hmac_sha256(key, &[b"visitor|", &(ip.len() as u64).to_be_bytes(), ip.as_bytes(), ua.as_bytes()]);
    let v = d[..10].iter().fold(0u128, |acc, b| (acc << 8) | *b as u128);
    Visitor(v >> (80 - VISITOR_BITS))
}

/// What a v2 id carries beyond its link and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Visit {
    pub visitor: Visitor,
    pub flags: ClickFlags,
}

/// The v2 signed click id of `visitor` on `link_id` in the hour bucket of `now`, with `flags`:
/// the same inputs in the same bucket give the same id. `None` when the link id is not a valid
/// link id (never the case for links the API made) or `now` is outside the stamp's range.
pub fn issue_v2(key: &[u8; 32], link_id: &str, now: i64, visitor: &Visitor, flags: ClickFlags) -> Option<String> {
    let body = link_body(link_id)?;
    if !(0..=MAX_TIME).contains(&now) {
        return None;
    }
    let bits = (visitor.0 << FLAG_BITS) | flags.bits();
    let mut random = [0u8; 10];
    for (i, b) in random.iter_mut().enumerate() {
        *b = (bits >> (8 * (9 - i))) as u8;
    }
    let id = ids::new_id(ids::CLICK, bucket(now), random);
    let stamp = &id[ids::CLICK.len() + 1..];
    let mac = mac_v2(key, stamp, link_id);
    Some(format!("{id}{mac}{body}"))
}

/// What a valid signed click id proves: the link it was issued for, when, and (v2 ids) the
/// visitor and flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedClick {
    pub link_id: String,
    /// Milliseconds since the epoch, UTC: the click's time (v1), the start of its hour (v2).
    pub at: i64,
    /// `None` for v1 ids.
    pub visit: Option<Visit>,
}

/// The link, time and (v2) visit of a signed click id whose MAC verifies under `key`; `None`
/// otherwise (compared in constant time).
pub fn verify(key: &[u8; 32], id: &str) -> Option<SignedClick> {
    let body = id.strip_prefix(ids::CLICK)?.strip_prefix('_')?;
    if body.len() <= STAMP + MAC || body.len() > MAX_BODY || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (stamp, rest) = body.split_at(STAMP);
    let (given, link) = rest.split_at(MAC);
    let link_id = format!("{}_{link}", ids::LINK);
    let value = decode(stamp)?;
    let at = (value >> 80) as i64;
    // Each MAC compared in constant time; the v1 MAC is computed only when the v2 one did not
    // match, which tells a timer only what holding a valid id already tells its holder.
    if ct_eq(mac_v2(key, stamp, &link_id).as_bytes(), given.as_bytes()) {
        let bits = value & ((1u128 << 80) - 1);
        let visit =
            Visit { visitor: Visitor(bits >> FLAG_BITS), flags: ClickFlags::from_bits(bits & ((1 << FLAG_BITS) - 1)) };
        return Some(SignedClick { link_id, at, visit: Some(visit) });
    }
    ct_eq(mac(key, stamp, &link_id).as_bytes(), given.as_bytes()).then_some(SignedClick { link_id, at, visit: None })
}

/// The v2 id of the same visitor, link and flags as `signed` in the hour bucket of
/// `bucket_at` (the previous bucket's: `signed.at - HOUR_MS`); `None` for a v1 id.
pub fn sibling(key: &[u8; 32], signed: &SignedClick, bucket_at: i64) -> Option<String> {
    let visit = signed.visit?;
    issue_v2(key, &signed.link_id, bucket_at, &visit.visitor, visit.flags)
}

/// The 128-bit value of a 26-character stamp (48-bit time, 80 bits); `None` on a character
/// outside Crockford base32 or bits beyond 128.
fn decode(stamp: &str) -> Option<u128> {
    stamp.bytes().try_fold(0u128, |acc, b| {
        let c = CROCKFORD.iter().position(|c| *c == b.to_ascii_uppercase())? as u128;
        (acc >> 123 == 0).then_some((acc << 5) | c)
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

/// The id prefix shared by every v2 click of `signed`'s visitor in the hour starting at
/// `bucket_at`, whatever the link and the flags: `clk_`, the hour and the visitor (the first 25
/// characters of the stamp; the 26th holds the flags). Ids sort by it, so a primary-key range
/// scan finds the visitor's clicks of that hour on any link. `None` for v1 ids.
pub fn visitor_hour_prefix(signed: &SignedClick, bucket_at: i64) -> Option<String> {
    let visit = signed.visit?;
    let mut random = [0u8; 10];
    let bits = visit.visitor.0 << FLAG_BITS;
    for (i, b) in random.iter_mut().enumerate() {
        *b = (bits >> (8 * (9 - i))) as u8;
    }
    let id = ids::new_id(ids::CLICK, bucket(bucket_at), random);
    Some(id[..ids::CLICK.len() + STAMP].to_string())
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
        assert_eq!(
            verify(&KEY, &id),
            Some(SignedClick { link_id: "link_01JZ0000000000000000000000".into(), at: T, visit: None })
        );
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

    const LINK: &str = "link_01JZ0000000000000000000000";

    fn v(ip: &str, ua: &str) -> Visitor {
        visitor(&KEY, Some(ip), Some(ua))
    }

    #[test]
    fn v2_round_trip() {
        let me = v("203.0.113.7", "Mozilla/5.0");
        let flags = ClickFlags { ad_click: true, banned_referrer: false };
        let id = issue_v2(&KEY, LINK, T, &me, flags).unwrap();
        assert_eq!(id.len(), 4 + 26 + 16 + 26);
        assert!(is_click_id(&id));
        let hour = T - T.rem_euclid(HOUR_MS);
        assert_eq!(bucket(T), hour);
        let signed = verify(&KEY, &id).unwrap();
        assert_eq!(signed, SignedClick { link_id: LINK.into(), at: hour, visit: Some(Visit { visitor: me, flags }) });
        // The whole hour gives the same id; the next hour another one, its sibling.
        assert_eq!(issue_v2(&KEY, LINK, hour, &me, flags).as_ref(), Some(&id));
        assert_eq!(issue_v2(&KEY, LINK, hour + HOUR_MS - 1, &me, flags).as_ref(), Some(&id));
        let next = issue_v2(&KEY, LINK, hour + HOUR_MS, &me, flags).unwrap();
        assert_ne!(next, id);
        assert_eq!(sibling(&KEY, &verify(&KEY, &next).unwrap(), hour).as_ref(), Some(&id));
        assert_eq!(sibling(&KEY, &signed, T).as_ref(), Some(&id));
        // Cutoffs and ordering by time hold (the bucket's start is the id's time).
        assert!(cutoff_id(hour) <= id && cutoff_id(hour + 1) > id && id < next);
        // Another key: no. A v1 id has no sibling.
        assert_eq!(verify(&[8; 32], &id), None);
        let v1 = issue(&KEY, LINK, T, [9; 10]).unwrap();
        assert_eq!(sibling(&KEY, &verify(&KEY, &v1).unwrap(), T), None);
        // Invalid links and times.
        assert_eq!(issue_v2(&KEY, "pn_x", T, &me, flags), None);
        assert_eq!(issue_v2(&KEY, LINK, -1, &me, flags), None);
        assert_eq!(issue_v2(&KEY, LINK, 1 << 48, &me, flags), None);
    }

    #[test]
    fn hour_prefixes_span_links_and_flags() {
        let (ann, bob) = (v("192.0.2.1", "UA"), v("192.0.2.2", "UA"));
        let t = 1_764_036_000_000 + 1_234_567;
        let ad = ClickFlags { ad_click: true, banned_referrer: false };
        let a1 = issue_v2(&KEY, "link_01JZ0000000000000000000000", t, &ann, ClickFlags::default()).unwrap();
        let a2 = issue_v2(&KEY, "link_01JZ0000000000000000000001", t + 60_000, &ann, ad).unwrap();
        let b1 = issue_v2(&KEY, "link_01JZ0000000000000000000000", t, &bob, ClickFlags::default()).unwrap();
        let p = visitor_hour_prefix(&verify(&KEY, &a1).unwrap(), t).unwrap();
        assert_eq!(p.len(), 4 + 25);
        assert!(a1.starts_with(&p) && a2.starts_with(&p) && !b1.starts_with(&p));
        // another hour, another prefix; a v1 id has none
        let later = visitor_hour_prefix(&verify(&KEY, &a1).unwrap(), t + HOUR_MS).unwrap();
        assert!(!a1.starts_with(&later) && later > p);
        let legacy = issue(&KEY, "link_01JZ0000000000000000000000", t, [9; 10]).unwrap();
        assert_eq!(visitor_hour_prefix(&verify(&KEY, &legacy).unwrap(), t), None);
    }

    #[test]
    fn visitors() {
        assert_eq!(v("1.2.3.4", "a"), v("1.2.3.4", "a"));
        assert_ne!(v("1.2.3.4", "a"), v("1.2.3.5", "a"));
        assert_ne!(v("1.2.3.4", "a"), v("1.2.3.4", "b"));
        // Bytes moved between the IP and the user agent give another visitor.
        assert_ne!(v("1.2.3.4", "5a"), v("1.2.3.45", "a"));
        // Absent is empty.
        assert_eq!(visitor(&KEY, None, None), v("", ""));
        assert_ne!(visitor(&[8; 32], Some("1.2.3.4"), Some("a")), v("1.2.3.4", "a"));
        assert!(v("1.2.3.4", "a").0 < 1 << VISITOR_BITS);
    }

    #[test]
    fn v1_and_v2_macs_are_apart() {
        // A v2 id whose MAC is replaced by the v1 MAC of the same stamp and link verifies as v1:
        // no visit, so no flags a v1 MAC could be made to vouch for.
        let id =
            issue_v2(&KEY, LINK, T, &v("1.1.1.1", "x"), ClickFlags { ad_click: true, banned_referrer: true }).unwrap();
        let stamp = &id[4..30];
        let as_v1 = format!("clk_{stamp}{}{}", mac(&KEY, stamp, LINK), &LINK[5..]);
        assert_eq!(verify(&KEY, &as_v1).map(|s| s.visit), Some(None));
        assert_ne!(as_v1, id);
    }

    proptest! {
        #[test]
        fn signed_ids_verify_and_sort(a in 0i64..(1i64 << 47), b in 0i64..(1i64 << 47), ra: [u8; 10], rb: [u8; 10],
                                      link in "[A-Za-z0-9]{1,64}") {
            let link_id = format!("link_{link}");
            let x = issue(&KEY, &link_id, a, ra).unwrap();
            let y = issue(&KEY, &link_id, b, rb).unwrap();
            prop_assert_eq!(verify(&KEY, &x), Some(SignedClick { link_id: link_id.clone(), at: a, visit: None }));
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

        #[test]
        fn v2_ids_round_trip(at in 0i64..(1i64 << 47), ip in "[0-9.:a-f]{0,39}", ua in ".{0,80}",
                             ad: bool, banned: bool, link in "[A-Za-z0-9]{1,64}") {
            let link_id = format!("link_{link}");
            let me = visitor(&KEY, Some(&ip), Some(&ua));
            let flags = ClickFlags { ad_click: ad, banned_referrer: banned };
            let id = issue_v2(&KEY, &link_id, at, &me, flags).unwrap();
            let signed = verify(&KEY, &id).unwrap();
            prop_assert_eq!(&signed, &SignedClick { link_id: link_id.clone(), at: bucket(at), visit: Some(Visit { visitor: me, flags }) });
            prop_assert!(is_click_id(&id));
            // the sibling of its own bucket is itself; of the previous bucket, that bucket's id
            prop_assert_eq!(sibling(&KEY, &signed, at), Some(id.clone()));
            let prev = sibling(&KEY, &signed, signed.at - HOUR_MS);
            if signed.at >= HOUR_MS {
                prop_assert_eq!(prev, issue_v2(&KEY, &link_id, at - HOUR_MS, &me, flags));
            }
            prop_assert!(cutoff_id(bucket(at)) <= id);
            prop_assert!(cutoff_id(bucket(at) + 1) > id);
        }

        #[test]
        fn v1_ids_still_verify_without_visit(at in 0i64..(1i64 << 47), r: [u8; 10], link in "[A-Za-z0-9]{1,64}") {
            let link_id = format!("link_{link}");
            let id = issue(&KEY, &link_id, at, r).unwrap();
            prop_assert_eq!(verify(&KEY, &id), Some(SignedClick { link_id, at, visit: None }));
        }

        #[test]
        fn any_change_breaks_a_v2_id(ip in "[0-9.]{7,15}", ad: bool, pos in 4usize..72, c in "[0-9A-Za-z]") {
            let id = issue_v2(&KEY, LINK, T, &v(&ip, "ua"), ClickFlags { ad_click: ad, banned_referrer: false }).unwrap();
            let mut bytes = id.clone().into_bytes();
            prop_assume!(bytes[pos] != c.as_bytes()[0]);
            bytes[pos] = c.as_bytes()[0];
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(verify(&KEY, &changed), None);
        }

        #[test]
        fn distinct_inputs_give_distinct_ids(ip1 in "[0-9.]{7,15}", ip2 in "[0-9.]{7,15}", ua1 in "[a-z]{0,8}", ua2 in "[a-z]{0,8}",
                                             l1 in "[A-Z0-9]{1,8}", l2 in "[A-Z0-9]{1,8}", t1 in 0i64..(1i64 << 47), t2 in 0i64..(1i64 << 47),
                                             f1 in 0u8..4, f2 in 0u8..4) {
            let flags = |f: u8| ClickFlags { ad_click: f & 1 == 1, banned_referrer: f & 2 == 2 };
            let a = issue_v2(&KEY, &format!("link_{l1}"), t1, &v(&ip1, &ua1), flags(f1)).unwrap();
            let b = issue_v2(&KEY, &format!("link_{l2}"), t2, &v(&ip2, &ua2), flags(f2)).unwrap();
            let same = (ip1 == ip2 && ua1 == ua2) && l1 == l2 && bucket(t1) == bucket(t2) && f1 == f2;
            prop_assert_eq!(same, a == b);
        }

        #[test]
        fn every_visitor_flag_and_bucket_changes_the_id(t in 0i64..(1i64 << 47), ip in "[0-9.]{7,15}") {
            let me = v(&ip, "ua");
            let base = issue_v2(&KEY, LINK, t, &me, ClickFlags::default()).unwrap();
            let ad = issue_v2(&KEY, LINK, t, &me, ClickFlags { ad_click: true, banned_referrer: false }).unwrap();
            let banned = issue_v2(&KEY, LINK, t, &me, ClickFlags { ad_click: false, banned_referrer: true }).unwrap();
            let later = issue_v2(&KEY, LINK, t + HOUR_MS, &me, ClickFlags::default()).unwrap();
            let other = issue_v2(&KEY, LINK, t, &v(&ip, "ub"), ClickFlags::default()).unwrap();
            let all = [&base, &ad, &banned, &later, &other];
            for (i, x) in all.iter().enumerate() {
                for y in &all[i + 1..] {
                    prop_assert_ne!(x, y);
                }
            }
            prop_assert!(verify(&KEY, &ad).unwrap().visit.unwrap().flags.ad_click);
            prop_assert!(!verify(&KEY, &base).unwrap().visit.unwrap().flags.ad_click);
        }
    }
}
