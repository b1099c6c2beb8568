//! Money: integer minor units paired with an ISO 4217 currency. Never floats.

use serde::Serialize;
use std::fmt;

/// Largest amount (in minor units) accepted anywhere: well inside 2^53 so that D1/JS numbers
/// carry it exactly, and far inside i64 so sums of many amounts never overflow.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000; // 10^15 minor units

/// An ISO 4217 currency, lower-case as Stripe writes it, with its minor-unit exponent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

// The tables are space-separated codes in one string each: a `&[&str]` would add a pointer and
// a length per code to the Worker's wasm.
/// Stripe's zero-decimal currencies (amounts are whole units).
const ZERO_DECIMAL: &str = "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf";
/// Three-decimal currencies (1 unit = 1000 minor units).
const THREE_DECIMAL: &str = "bhd jod kwd omr tnd";
/// Two-decimal currencies Stripe settles in (ISO 4217, lower-case).
const TWO_DECIMAL: &str = "\
    aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bmd bnd \
    bob brl bsd bwp byn bzd cad cdf chf cny cop crc cve czk dkk dop \
    dzd egp etb eur fjd fkp gbp gel gip gmd gtq gyd hkd hnl htg huf \
    idr ils inr isk jmd kes kgs khr kyd kzt lak lbp lkr lrd lsl mad \
    mdl mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr \
    nzd pab pen pgk php pkr pln qar ron rsd rub sar sbd scr sek sgd \
    shp sle sos srd std szl thb tjs top try ttd twd tzs uah usd uyu \
    uzs wst xcd yer zar zmw\
";

fn listed(table: &str, code: &str) -> bool {
    table.split(' ').any(|c| c == code)
}

impl Currency {
    /// Parses a currency code (case-insensitive on input, stored lower-case).
    pub fn parse(s: &str) -> Option<Currency> {
        let lower = s.to_ascii_lowercase();
        let exponent = if listed(TWO_DECIMAL, &lower) {
            2
        } else if listed(ZERO_DECIMAL, &lower) {
            0
        } else if listed(THREE_DECIMAL, &lower) {
            3
        } else {
            return None;
        };
        let b = lower.as_bytes();
        Some(Currency { code: [b[0], b[1], b[2]], exponent })
    }

    pub fn code(&self) -> &str {
        // The bytes come from one of the ASCII tables above.
        std::str::from_utf8(&self.code).unwrap_or("xxx")
    }

    /// Number of decimal digits of the minor unit: 2 for USD, 0 for JPY, 3 for KWD.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }

    /// Human formatting, e.g. `12.34 USD`, `1200 JPY`, `1.500 KWD`.
    pub fn format(&self, minor: i64) -> String {
        format!("{} {}", self.decimal(minor), self.code().to_ascii_uppercase())
    }

    /// The amount in major units as decimal text, without floats: `12.34`, `-0.05`, `1200`
    /// (JPY), `1.500` (KWD).
    pub fn decimal(&self, minor: i64) -> String {
        let e = self.exponent as u32;
        if e == 0 {
            return minor.to_string();
        }
        let div = 10u64.pow(e);
        let sign = if minor < 0 { "-" } else { "" };
        let abs = minor.unsigned_abs();
        format!("{sign}{}.{:0width$}", abs / div, abs % div, width = e as usize)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl crate::wire::FromJson for Currency {
    fn from_json(v: crate::wire::Value) -> Result<Self, crate::wire::Error> {
        use serde::de::Error as _;
        let s = String::from_json(v)?;
        Currency::parse(&s).ok_or_else(|| crate::wire::Error::custom(format!("unknown currency code `{s}`")))
    }
}

crate::from_json! {
    /// An amount of money: minor units and currency. May be negative (clawbacks).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
    pub struct Money {
        pub minor: i64,
        pub currency: Currency,
    }
}

/// A non-negative amount in minor units within [`MAX_AMOUNT`]: what every input amount is parsed to.
pub fn parse_amount(v: i64) -> Option<i64> {
    (0..=MAX_AMOUNT).contains(&v).then_some(v)
}

/// `value * num / den`, rounded half to even, computed in i128 so it never overflows for
/// amounts within [`MAX_AMOUNT`]. `den` must be positive; `value` and `num` non-negative.
pub fn mul_div_half_even(value: i64, num: i64, den: i64) -> i64 {
    debug_assert!(den > 0);
    let p = value as i128 * num as i128;
    let d = den as i128;
    let q = p.div_euclid(d);
    let r = p.rem_euclid(d);
    let twice = 2 * r;
    let q = if twice > d || (twice == d && q % 2 != 0) { q + 1 } else { q };
    q as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn currencies_and_exponents() {
        assert_eq!(Currency::parse("USD").unwrap().exponent(), 2);
        assert_eq!(Currency::parse("jpy").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("kwd").unwrap().exponent(), 3);
        assert_eq!(Currency::parse("usd").unwrap().code(), "usd");
        assert!(Currency::parse("xyz").is_none());
        assert!(Currency::parse("us").is_none());
        assert!(Currency::parse("").is_none());
        assert!(Currency::parse("usdd").is_none());
        assert!(Currency::parse("usd ").is_none());
        assert!(Currency::parse("usd aed").is_none());
        for table in [ZERO_DECIMAL, THREE_DECIMAL, TWO_DECIMAL] {
            for code in table.split(' ') {
                assert!(code.len() == 3 && code.bytes().all(|b| b.is_ascii_lowercase()), "{code:?}");
                assert_eq!(Currency::parse(&code.to_ascii_uppercase()).unwrap().code(), code);
            }
        }
        assert_eq!(TWO_DECIMAL.split(' ').count(), 118);
    }

    #[test]
    fn formatting() {
        assert_eq!(Currency::parse("usd").unwrap().format(1234), "12.34 USD");
        assert_eq!(Currency::parse("usd").unwrap().format(-5), "-0.05 USD");
        assert_eq!(Currency::parse("jpy").unwrap().format(1200), "1200 JPY");
        assert_eq!(Currency::parse("kwd").unwrap().format(1500), "1.500 KWD");
        assert_eq!(Currency::parse("usd").unwrap().decimal(i64::MIN), "-92233720368547758.08");
        assert_eq!(Currency::parse("eur").unwrap().decimal(100), "1.00");
        assert_eq!(Currency::parse("jpy").unwrap().decimal(-3), "-3");
    }

    #[test]
    fn half_even() {
        assert_eq!(mul_div_half_even(25, 1, 10), 2); // 2.5 -> 2
        assert_eq!(mul_div_half_even(35, 1, 10), 4); // 3.5 -> 4
        assert_eq!(mul_div_half_even(36, 1, 10), 4);
        assert_eq!(mul_div_half_even(34, 1, 10), 3);
        assert_eq!(mul_div_half_even(MAX_AMOUNT, 10_000, 10_000), MAX_AMOUNT);
    }

    #[test]
    fn amounts() {
        assert_eq!(parse_amount(0), Some(0));
        assert_eq!(parse_amount(-1), None);
        assert_eq!(parse_amount(MAX_AMOUNT + 1), None);
    }

    proptest! {
        #[test]
        fn half_even_is_within_half_unit(v in 0i64..MAX_AMOUNT, n in 0i64..=10_000, d in 1i64..=10_000) {
            let r = mul_div_half_even(v, n, d) as i128;
            let exact2 = 2 * v as i128 * n as i128; // 2 * exact * d
            let diff = (2 * r * d as i128 - exact2).abs();
            prop_assert!(diff <= d as i128);
        }
    }
}
