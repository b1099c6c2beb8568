//! Prefixed, time-ordered identifiers (`prog_`, `pn_`, `link_`, `clk_`, `cus_`, `cm_`, `po_`, ...).
//!
//! An id is `{prefix}_{26 chars}`: a ULID-style Crockford base32 string of a 48-bit millisecond
//! timestamp and 80 random bits. Ids therefore sort by creation time, which is what the list
//! endpoints' cursors rely on (`ORDER BY id DESC`, `WHERE id < cursor`), and a click id carries
//! 80 bits of randomness, so it is unguessable. The randomness is an argument: the core has no I/O.

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

pub const PROGRAM: &str = "prog";
pub const PARTNER: &str = "pn";
pub const LINK: &str = "link";
pub const CLICK: &str = "clk";
pub const CUSTOMER: &str = "cus";
pub const COMMISSION: &str = "cm";
pub const PAYOUT: &str = "po";
pub const API_KEY: &str = "key";
pub const EVENT: &str = "evt";
pub const REFUND: &str = "rf";
pub const WEBHOOK: &str = "we";
pub const GROUP: &str = "grp";
pub const COUPON: &str = "cpn";

/// A new id: `prefix_` + 10 time chars + 16 random chars.
pub fn new_id(prefix: &str, now_ms: i64, random: [u8; 10]) -> String {
    let t = (now_ms.max(0) as u128) & ((1u128 << 48) - 1);
    let r = random.iter().fold(0u128, |acc, b| (acc << 8) | *b as u128);
    let v = (t << 80) | r;
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    for i in (0..26).rev() {
        out.push(CROCKFORD[((v >> (i * 5)) & 31) as usize] as char);
    }
    out
}

/// Checks that `s` is an id with the given prefix: `prefix_` then 1 to 64 ASCII letters and
/// digits. Lenient on the body so hand-made ids (seed data, imports) stay valid; strict on the
/// prefix so an id of one kind is never accepted for another.
pub fn is_valid(prefix: &str, s: &str) -> bool {
    match s.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')) {
        Some(body) => !body.is_empty() && body.len() <= 64 && body.bytes().all(|b| b.is_ascii_alphanumeric()),
        None => false,
    }
}

/// Random characters from an alphabet, for generated link keys and API key secrets. Uses
/// rejection-free modulo on bytes; `alphabet.len()` should divide 256 or be small enough that
/// the bias is irrelevant (base62 for link keys: bias < 0.4%, harmless for a non-secret key).
pub fn random_chars(alphabet: &[u8], random: &[u8]) -> String {
    random.iter().map(|b| alphabet[*b as usize % alphabet.len()] as char).collect()
}

pub const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shape() {
        let id = new_id(CLICK, 1_764_036_000_000, [7; 10]);
        assert!(id.starts_with("clk_"));
        assert_eq!(id.len(), 4 + 26);
        assert!(is_valid(CLICK, &id));
        assert!(!is_valid(LINK, &id));
        assert!(!is_valid(CLICK, "clk_"));
        assert!(!is_valid(CLICK, "clk_a-b"));
        assert!(!is_valid(CLICK, "clkx_abc"));
        assert!(is_valid(PROGRAM, "prog_demo"));
    }

    proptest! {
        #[test]
        fn ids_sort_by_time(a in 0i64..(1i64 << 47), b in 0i64..(1i64 << 47), ra: [u8; 10], rb: [u8; 10]) {
            prop_assume!(a != b);
            let (x, y) = (new_id(PAYOUT, a, ra), new_id(PAYOUT, b, rb));
            prop_assert_eq!(a < b, x < y);
        }

        #[test]
        fn random_part_distinguishes(t in 0i64..(1i64 << 47), ra: [u8; 10], rb: [u8; 10]) {
            prop_assume!(ra != rb);
            prop_assert_ne!(new_id(CLICK, t, ra), new_id(CLICK, t, rb));
        }
    }
}
