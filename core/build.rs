//! Compiles the ISO 3166-1 alpha-2 country codes of the maintained `isocountry` crate into a
//! sorted table (about 500 bytes), so the Worker's wasm carries the codes, not the crate's names.

use std::io::Write;

fn main() {
    let mut codes: Vec<&str> = isocountry::CountryCode::iter().map(|c| c.alpha2()).collect();
    codes.sort_unstable();
    codes.dedup();
    let out = std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("countries.rs");
    let mut f = std::fs::File::create(out).expect("countries.rs");
    writeln!(f, "/// ISO 3166-1 alpha-2 codes, sorted (generated from `isocountry` by build.rs).").expect("write");
    writeln!(f, "pub const ALPHA2: [&str; {}] = {:?};", codes.len(), codes).expect("write");
    println!("cargo:rerun-if-changed=build.rs");
}
