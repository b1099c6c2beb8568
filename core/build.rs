//! Compiles the ISO 3166-1 alpha-2 country codes of the maintained `isocountry` crate into one
//! string of sorted two-letter codes (about 500 bytes: no table of string slices beside it), so
//! the Worker's wasm carries the codes, not the crate's names.

use std::io::Write;

fn main() {
    let mut codes: Vec<&str> = isocountry::CountryCode::iter().map(|c| c.alpha2()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert!(codes.iter().all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())), "alpha-2 codes");
    let out = std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("countries.rs");
    let mut f = std::fs::File::create(out).expect("countries.rs");
    writeln!(f, "/// ISO 3166-1 alpha-2 codes, sorted, concatenated (generated from `isocountry` by build.rs).")
        .expect("write");
    writeln!(f, "pub const ALPHA2: &str = {:?};", codes.concat()).expect("write");
    println!("cargo:rerun-if-changed=build.rs");
}
